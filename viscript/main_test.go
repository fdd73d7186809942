package viscript

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/viscript/control"
)

// helperBin is the testdata/sigapp program, built once in TestMain.
var helperBin string

func TestMain(m *testing.M) {
	tstest.MainWithBuilds(m, tstest.Build{Name: "sigapp", Pkg: "./testdata/sigapp", Path: &helperBin})
}

// catalog is the test catalog: every entry runs the helper.
func catalog() map[string]AppSpec {
	h := func(restart string, daemon bool, args ...string) AppSpec {
		return AppSpec{Path: helperBin, DefaultArgs: args, Restart: restart, Daemon: daemon,
			StopTimeout: 2 * time.Second}
	}
	c := map[string]AppSpec{
		"sleep":         h(RestartNo, false, "sleep"),
		"sleepd":        h(RestartNo, true, "sleep"),
		"always":        h(RestartAlways, false, "sleep"),
		"onfail-ok":     h(RestartOnFailure, false, "exit", "0"),
		"onfail-bad":    h(RestartOnFailure, false, "exit", "1"),
		"exit1":         h(RestartNo, false, "exit", "1"),
		"busy":          h(RestartNo, false, "busy"),
		"sig":           h(RestartNo, false, "signal"),
		"sigd":          h(RestartNo, true, "signal"),
		"print":         h(RestartNo, false, "print", "5000"),
		"missing":       {Path: "/nonexistent/program", StopTimeout: time.Second},
		"ignoreterm":    h(RestartNo, false, "ignoreterm"),
		"ignoreterm-qk": h(RestartNo, false, "ignoreterm"),
	}
	q := c["ignoreterm-qk"]
	q.StopTimeout = 300 * time.Millisecond
	c["ignoreterm-qk"] = q
	return c
}

func testConfig(t testing.TB) Config {
	return Config{StateDir: filepath.Join(t.TempDir(), "state"), Apps: catalog(), SelfPath: helperBin}
}

// procs tracks pids a test must not leave behind.
type procs struct {
	mu   sync.Mutex
	pids map[int]bool
}

// reapAll kills every tracked process group and collects zombies.
func (p *procs) reapAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr, err := newProcReader()
	if err != nil {
		return
	}
	for pid := range p.pids {
		// Only our own children: a reaped pid may belong to someone else now.
		if st, err := pr.stat(pid); err != nil || st.PPID != os.Getpid() {
			continue
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, 0, nil) // ECHILD if already reaped
	}
	p.pids = nil
}

func (p *procs) add(pid int) {
	if pid <= 0 {
		return
	}
	p.mu.Lock()
	if p.pids == nil {
		p.pids = make(map[int]bool)
	}
	p.pids[pid] = true
	p.mu.Unlock()
}

// env is one test's supervisor(s) and the processes they started.
type env struct {
	t     testing.TB
	cfg   Config
	procs *procs
}

func newEnv(t testing.TB) *env {
	e := &env{t: t, cfg: testConfig(t), procs: &procs{}}
	t.Cleanup(e.procs.reapAll)
	return e
}

// openEnv checks for leaks and gives a new env with a supervisor open.
func openEnv(t testing.TB) (*env, *Supervisor) {
	t.Helper()
	tstest.CheckLeaks(t)
	e := newEnv(t)
	return e, e.open()
}

// mkStateDir creates e's state dir, for a test that puts files there
// before the supervisor opens it.
func (e *env) mkStateDir() {
	e.t.Helper()
	if err := os.MkdirAll(e.cfg.StateDir, 0o700); err != nil {
		e.t.Fatal(err)
	}
}

// waitRestarted waits (naming what) until app id of s runs again with a
// pid other than old, and tracks the new pid for cleanup.
func (e *env) waitRestarted(what string, s *Supervisor, id uint64, old int) control.AppInfo {
	e.t.Helper()
	var got control.AppInfo
	tstest.WaitFor(e.t, what, func() bool {
		got = appInfo(e.t, s, id)
		return got.State == control.StateRunning && got.Pid != old && got.Pid > 0
	})
	e.procs.add(got.Pid)
	return got
}

// tokenOf is the token s gave app id.
func tokenOf(s *Supervisor, id uint64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apps[id].rec.Token
}

// open creates a supervisor on e's state dir; cleanup closes it and kills
// whatever it knew about.
func (e *env) open() *Supervisor {
	e.t.Helper()
	s, err := New(e.cfg, tstest.Logger(e.t, ""))
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(func() { e.track(s); s.Close() })
	return s
}

// run serves s until the returned stop func is called (stop waits).
func (e *env) run(s *Supervisor) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			e.track(s)
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("Run: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	// Wait until Run serves: a control request is answered (the signal
	// socket is listening before the control socket).
	tstest.WaitFor(e.t, "Run serving", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := control.Dial(ctx, "unix", s.ControlPath(), "")
		if err != nil {
			return false
		}
		defer c.Close()
		_, err = c.List(ctx)
		return err == nil
	})
	return stop
}

// track records every pid s knows, for cleanup.
func (e *env) track(s *Supervisor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.apps {
		e.procs.add(a.rec.Pid)
	}
}

func (e *env) start(s *Supervisor, name, owner string) control.AppInfo {
	e.t.Helper()
	info, err := s.Start(context.Background(), control.StartRequest{Name: name, UseDefault: true, Owner: owner, Force: true})
	if err != nil {
		e.t.Fatalf("Start(%s): %v", name, err)
	}
	e.procs.add(info.Pid)
	return info
}

func appInfo(t testing.TB, s *Supervisor, id uint64) control.AppInfo {
	t.Helper()
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, a := range list {
		if a.ID == id {
			return a
		}
	}
	t.Fatalf("app %d not listed", id)
	return control.AppInfo{}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	pr, err := newProcReader()
	if err != nil {
		return false
	}
	st, err := pr.stat(pid)
	return err == nil && st.State != "Z"
}
