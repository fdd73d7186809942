package viscript

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"github.com/skywire-mesh/skywire/appsignal"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/viscript/control"
)

func TestStartIDsNeverReused(t *testing.T) {
	e, s := openEnv(t)
	var pids []int
	for want := uint64(1); want <= 3; want++ {
		info := e.start(s, "sleep", "")
		if info.ID != want || info.Pid <= 0 || info.State != control.StateRunning {
			t.Fatalf("start %d: got %+v", want, info)
		}
		if !alive(info.Pid) {
			t.Fatalf("app %d: pid %d not alive", info.ID, info.Pid)
		}
		pids = append(pids, info.Pid)
	}
	list, _ := s.List(context.Background())
	if len(list) != 3 || list[0].ID != 1 || list[2].ID != 3 {
		t.Fatalf("List = %+v", list)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("non-daemon pid %d still alive after Close", pid)
		}
	}
	s2 := e.open()
	if got := e.start(s2, "sleep", ""); got.ID != 4 {
		t.Fatalf("after restart of viscript: ID %d, want 4", got.ID)
	}
	// Old entries are still shown, exited.
	if a := appInfo(t, s2, 1); a.State != control.StateExited {
		t.Errorf("app 1 after Close+New: %+v", a)
	}
}

func TestStartErrors(t *testing.T) {
	e, s := openEnv(t)
	_, err := s.Start(context.Background(), control.StartRequest{Name: "nope"})
	if !errors.Is(err, control.ErrUnknownApp) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown app: %v", err)
	}
	info, err := s.Start(context.Background(), control.StartRequest{Name: "missing"})
	if !errors.Is(err, ErrStartFailed) {
		t.Fatalf("missing program: err %v", err)
	}
	if info.State != control.StateFailed || info.ID != 1 || info.ExitInfo == "" {
		t.Fatalf("missing program: info %+v", info)
	}
	// A failed start still used up its ID.
	if got := e.start(s, "sleep", ""); got.ID != 2 {
		t.Fatalf("next ID %d, want 2", got.ID)
	}
	if _, err := s.Shutdown(context.Background(), 99); !errors.Is(err, control.ErrNoSuchApp) {
		t.Fatalf("Shutdown(99): %v", err)
	}
	if _, err := s.Ping(context.Background(), 1); !errors.Is(err, control.ErrNotRunning) {
		t.Fatalf("Ping(failed app): %v", err)
	}
	if _, err := s.Ping(context.Background(), 2); !errors.Is(err, control.ErrNotSignalClient) {
		t.Fatalf("Ping(non-client): %v", err)
	}
}

func TestLockHeld(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	e.open()
	if _, err := New(e.cfg, nil); !errors.Is(err, ErrServerRunning) {
		t.Fatalf("second New: %v, want ErrServerRunning", err)
	}
}

func TestRestartAlwaysAfterKill(t *testing.T) {
	e, s := openEnv(t)
	info := e.start(s, "always", "")
	killedAt := time.Now()
	if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	got := e.waitRestarted("restart after kill -9", s, info.ID, info.Pid)
	if got.Restarts != 1 || got.ID != info.ID {
		t.Fatalf("after restart: %+v", got)
	}
	if got.ExitInfo != "killed by SIGKILL" || got.ExitCode != -1 {
		t.Errorf("last exit: %d %q", got.ExitCode, got.ExitInfo)
	}
	if d := time.Since(killedAt); d < backoffMin {
		t.Errorf("restarted after %s, before the %s backoff", d, backoffMin)
	}
	// Second quick failure: backoff doubled.
	killedAt = time.Now()
	syscall.Kill(got.Pid, syscall.SIGKILL)
	third := e.waitRestarted("second restart", s, info.ID, got.Pid)
	if d := time.Since(killedAt); d < 2*backoffMin {
		t.Errorf("second restart after %s, want >= %s", d, 2*backoffMin)
	}
	if third.Restarts != 2 {
		t.Errorf("restarts %d, want 2", third.Restarts)
	}
	// sd disables the policy.
	res, err := s.Shutdown(context.Background(), info.ID)
	if err != nil || res.Step != control.StopSIGTERM {
		t.Fatalf("Shutdown: %+v %v", res, err)
	}
	if a := appInfo(t, s, info.ID); a.State != control.StateExited {
		t.Fatalf("after sd: %+v", a)
	}
}

func TestOnFailurePolicy(t *testing.T) {
	e, s := openEnv(t)
	ok := e.start(s, "onfail-ok", "")
	bad := e.start(s, "onfail-bad", "")
	plain := e.start(s, "exit1", "")
	tstest.WaitFor(t, "restarts of the failing app", func() bool {
		return appInfo(t, s, bad.ID).Restarts >= 2
	})
	if a := appInfo(t, s, ok.ID); a.State != control.StateExited || a.Restarts != 0 || a.ExitCode != 0 || a.ExitInfo != "exit status 0" {
		t.Errorf("on-failure + exit 0: %+v", a)
	}
	if a := appInfo(t, s, plain.ID); a.State != control.StateExited || a.Restarts != 0 || a.ExitCode != 1 {
		t.Errorf("restart=no + exit 1: %+v", a)
	}
	e.track(s)
	// Stopping a restarting app ends the cycle whatever phase it is in.
	if _, err := s.Shutdown(context.Background(), bad.ID); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	n := appInfo(t, s, bad.ID).Restarts
	time.Sleep(500 * time.Millisecond) // longer than the pending backoff: nothing may happen
	if a := appInfo(t, s, bad.ID); a.Restarts != n || a.State != control.StateExited {
		t.Errorf("restarted after sd: %+v (restarts were %d)", a, n)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		cur, ran    time.Duration
		delay, next time.Duration
	}{
		{0, 0, backoffMin, 2 * backoffMin},
		{backoffMin, time.Second, backoffMin, 200 * time.Millisecond},
		{800 * time.Millisecond, time.Second, 800 * time.Millisecond, 1600 * time.Millisecond},
		{20 * time.Second, time.Second, 20 * time.Second, backoffMax},
		{backoffMax, time.Second, backoffMax, backoffMax},
		{backoffMax, stableRun, backoffMin, 2 * backoffMin}, // stable run resets
	}
	for _, tt := range tests {
		d, n := nextBackoff(tt.cur, tt.ran)
		if d != tt.delay || n != tt.next {
			t.Errorf("nextBackoff(%s, %s) = %s, %s; want %s, %s", tt.cur, tt.ran, d, n, tt.delay, tt.next)
		}
	}
}

func TestWantsRestart(t *testing.T) {
	ok, fail := exitStatus{code: 0}, exitStatus{code: 1, failed: true}
	tests := []struct {
		policy string
		ex     exitStatus
		want   bool
	}{
		{RestartNo, fail, false}, {RestartNo, ok, false},
		{RestartOnFailure, fail, true}, {RestartOnFailure, ok, false},
		{RestartAlways, ok, true}, {RestartAlways, fail, true},
	}
	for _, tt := range tests {
		if got := wantsRestart(tt.policy, tt.ex); got != tt.want {
			t.Errorf("wantsRestart(%s, %+v) = %v", tt.policy, tt.ex, got)
		}
	}
}

func TestShutdownSteps(t *testing.T) {
	e, s := openEnv(t)
	e.run(s)
	tests := []struct {
		app  string
		want control.StopStep
	}{
		{"sig", control.StopSignal},
		{"sleep", control.StopSIGTERM},
		{"ignoreterm-qk", control.StopSIGKILL},
	}
	for _, tt := range tests {
		t.Run(tt.app, func(t *testing.T) {
			info := e.start(s, tt.app, "")
			if tt.want == control.StopSignal {
				tstest.WaitFor(t, "signal client connected", func() bool {
					return appInfo(t, s, info.ID).Connected
				})
				if _, err := s.Ping(context.Background(), info.ID); err != nil {
					t.Fatalf("Ping: %v", err)
				}
			}
			if tt.app == "ignoreterm-qk" {
				// Make sure SIGTERM is ignored before we send it.
				tstest.WaitFor(t, "helper ready", func() bool {
					c, _ := s.Logs(context.Background(), info.ID, 0, 100)
					return strings.Contains(string(c.Data), "ignoring")
				})
			}
			res, err := s.Shutdown(context.Background(), info.ID)
			if err != nil || res.Step != tt.want || res.ID != info.ID {
				t.Fatalf("Shutdown = %+v, %v; want step %s", res, err, tt.want)
			}
			if alive(info.Pid) {
				t.Fatalf("pid %d alive after Shutdown", info.Pid)
			}
			a := appInfo(t, s, info.ID)
			if a.State != control.StateExited {
				t.Fatalf("state after Shutdown: %+v", a)
			}
			if res, err := s.Shutdown(context.Background(), info.ID); err != nil || res.Step != control.StopAlready {
				t.Fatalf("second Shutdown = %+v, %v", res, err)
			}
		})
	}
}

func TestRestartKeepsID(t *testing.T) {
	e, s := openEnv(t)
	info := e.start(s, "sleep", "")
	oldTok := tokenOf(s, info.ID)
	got, err := s.Restart(context.Background(), info.ID)
	if err != nil {
		t.Fatalf("Restart: %v", err)
	}
	e.procs.add(got.Pid)
	if got.ID != info.ID || got.Pid == info.Pid || got.State != control.StateRunning || got.Restarts != 1 {
		t.Fatalf("Restart: %+v (was %+v)", got, info)
	}
	if alive(info.Pid) {
		t.Errorf("old pid %d still alive", info.Pid)
	}
	tok := tokenOf(s, info.ID)
	if len(tok) != 32 || tok == oldTok {
		t.Errorf("token after restart %q (before %q): want a fresh 128-bit hex token", tok, oldTok)
	}
}

func TestReadoptDaemon(t *testing.T) {
	e, s := openEnv(t)
	stop := e.run(s)
	d := e.start(s, "sigd", "")
	n := e.start(s, "sleep", "")
	tstest.WaitFor(t, "signal client connected", func() bool { return appInfo(t, s, d.ID).Connected })
	stop() // Run ends: non-daemons stopped, daemons keep running
	if !alive(d.Pid) {
		t.Fatal("daemon died with viscript")
	}
	if alive(n.Pid) {
		t.Fatal("non-daemon survived viscript")
	}

	s2 := e.open()
	e.run(s2)
	a := appInfo(t, s2, d.ID)
	if a.State != control.StateRunning || a.Pid != d.Pid || a.ID != d.ID {
		t.Fatalf("re-adopted daemon: %+v", a)
	}
	if b := appInfo(t, s2, n.ID); b.State != control.StateExited {
		t.Fatalf("non-daemon after restart: %+v", b)
	}
	tstest.WaitFor(t, "daemon reconnected", func() bool { return appInfo(t, s2, d.ID).Connected })
	if _, err := s2.Ping(context.Background(), d.ID); err != nil {
		t.Fatalf("Ping after re-adoption: %v", err)
	}
	if u, err := s2.Usage(context.Background(), d.ID); err != nil || u.Pid != d.Pid || u.RSSBytes == 0 ||
		u.Reported["goroutines"] == 0 {
		t.Fatalf("Usage of adopted: %+v %v", u, err)
	}
	res, err := s2.Shutdown(context.Background(), d.ID)
	if err != nil || res.Step != control.StopSignal {
		t.Fatalf("Shutdown adopted: %+v %v", res, err)
	}
	if a := appInfo(t, s2, d.ID); a.State != control.StateExited || !strings.Contains(a.ExitInfo, "adopted") {
		t.Fatalf("after shutdown: %+v", a)
	}
}

func TestAdoptedDeathRestarts(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	spec := e.cfg.Apps["sleepd"]
	spec.Restart = RestartAlways
	e.cfg.Apps["sleepd"] = spec
	s := e.open()
	d := e.start(s, "sleepd", "")
	s.Close()
	s2 := e.open()
	syscall.Kill(d.Pid, syscall.SIGKILL)
	got := e.waitRestarted("adopted daemon restarted", s2, d.ID, d.Pid)
	if got.Restarts != 1 {
		t.Errorf("restarts %d", got.Restarts)
	}
}

func TestStalePidNotAdopted(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Skipf("cannot run sleep: %v", err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	pr, _ := newProcReader()
	ticks, err := pr.startTicks(other.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	e.mkStateDir()
	st := stateFile{Version: stateVersion, NextID: 10, Apps: []appRecord{
		{ID: 3, Name: "sleepd", Daemon: true, Pid: other.Process.Pid, StartTicks: ticks + 1, State: control.StateRunning, Token: "t"},
		{ID: 4, Name: "sleepd", Daemon: true, Pid: 0x3ffffff0, StartTicks: 1, State: control.StateRunning, Token: "t"},
		{ID: 5, Name: "sleepd", Daemon: true, Pid: other.Process.Pid, StartTicks: ticks, State: control.StateRunning, Token: "t"},
	}}
	if err := writeState(filepath.Join(e.cfg.StateDir, stateName), st); err != nil {
		t.Fatal(err)
	}
	s := e.open()
	for _, id := range []uint64{3, 4} {
		if a := appInfo(t, s, id); a.State != control.StateExited || a.ExitInfo != "not running after viscript restart" {
			t.Errorf("app %d: %+v", id, a)
		}
	}
	// Same pid and start time: it is adopted (our own sleep stands in).
	if a := appInfo(t, s, 5); a.State != control.StateRunning {
		t.Errorf("matching record not adopted: %+v", a)
	}
	if !alive(other.Process.Pid) {
		t.Fatal("New killed a process it did not own")
	}
	if got := e.start(s, "sleep", ""); got.ID != 10 {
		t.Errorf("next ID %d, want 10", got.ID)
	}
	// Close must not touch the adopted daemon record 5 (a daemon).
	s.Close()
	if !alive(other.Process.Pid) {
		t.Fatal("Close killed an adopted daemon")
	}
}

func TestUsageBusy(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	const window = time.Second
	e.cfg.UsageWindow = window
	s := e.open()
	busy := e.start(s, "busy", "")
	idle := e.start(s, "sleep", "")
	// The machine is shared, so how much CPU the spinning app gets is not
	// ours to choose: the check is that Usage reports the CPU it really
	// got, measured here from /proc with procfs. Usage's window lies
	// inside [t0, t1], so its CPU seconds are at most what the process
	// used in [t0, t1] and at least that minus what all cores could have
	// run outside the window (one tick of slack each way). Wait for a
	// call whose lower bound shows the app ran (one generous deadline).
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	cpu := func() float64 {
		p, err := fs.Proc(busy.Pid)
		if err != nil {
			t.Fatalf("proc %d: %v", busy.Pid, err)
		}
		st, err := p.Stat()
		if err != nil {
			t.Fatalf("proc %d stat: %v", busy.Pid, err)
		}
		return st.CPUTime()
	}
	const slack = 0.02 // two clock ticks
	var u control.Usage
	tstest.WaitFor(t, "a Usage call during which the spinning app got CPU", func() bool {
		c0, t0 := cpu(), time.Now()
		if u, err = s.Usage(context.Background(), busy.ID); err != nil {
			t.Fatalf("Usage: %v", err)
		}
		used, outer := cpu()-c0, time.Since(t0).Seconds()
		if most := (used + slack) / window.Seconds() * 100; u.CPUPercent > most {
			t.Fatalf("busy CPU%% = %.1f: more than the %.3f s it used in %.3f s allows (%.1f%%)", u.CPUPercent, used, outer, most)
		}
		least := (used - slack - (outer-window.Seconds())*float64(runtime.NumCPU())) / outer * 100
		if least < 5 {
			return false // it hardly ran, or the call took too long to tell
		}
		if u.CPUPercent < least {
			t.Fatalf("busy CPU%% = %.1f: it used %.3f s in %.3f s, so at least %.1f%% in the window", u.CPUPercent, used, outer, least)
		}
		return true
	})
	if u.RSSBytes < 100<<10 || u.Threads < 1 || u.FDs < 3 || u.UptimeS < 0 || u.UptimeS > 60 || u.Pid != busy.Pid {
		t.Errorf("busy usage implausible: %+v", u)
	}
	ui, err := s.Usage(context.Background(), idle.ID)
	if err != nil {
		t.Fatalf("Usage idle: %v", err)
	}
	if ui.CPUPercent > 10 {
		t.Errorf("idle CPU%% = %.1f", ui.CPUPercent)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Usage(ctx, busy.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("Usage with cancelled ctx: %v", err)
	}
}

func TestReleaseOwner(t *testing.T) {
	e, s := openEnv(t)
	a := e.start(s, "sleep", "o1")
	d := e.start(s, "sleepd", "o1")
	b := e.start(s, "sleep", "o2")
	if err := s.ReleaseOwner(context.Background(), "o1"); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]control.AppState{a.ID: control.StateExited, d.ID: control.StateRunning, b.ID: control.StateRunning}
	for id, st := range want {
		if got := appInfo(t, s, id); got.State != st {
			t.Errorf("app %d: %s, want %s", id, got.State, st)
		}
	}
	if err := s.ReleaseOwner(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if got := appInfo(t, s, b.ID); got.State != control.StateRunning {
		t.Errorf("empty owner released app %d", b.ID)
	}
}

func TestCorruptState(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	e.mkStateDir()
	path := filepath.Join(e.cfg.StateDir, stateName)
	if err := os.WriteFile(path, []byte(`{"version":1,"next_id":5,"apps":[{"id":`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := e.open()
	if got := e.start(s, "sleep", ""); got.ID != 1 {
		t.Errorf("ID after corrupt table: %d", got.ID)
	}
	matches, _ := filepath.Glob(path + ".corrupt-*")
	if len(matches) != 1 {
		t.Fatalf("corrupt file not moved aside: %v", matches)
	}
}

func TestStatePersisted(t *testing.T) {
	e, s := openEnv(t)
	info := e.start(s, "sleepd", "me")
	data, err := os.ReadFile(filepath.Join(e.cfg.StateDir, stateName))
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseState(data)
	if err != nil {
		t.Fatal(err)
	}
	if st.NextID != 2 || len(st.Apps) != 1 {
		t.Fatalf("state: %+v", st)
	}
	r := st.Apps[0]
	if r.ID != 1 || r.Pid != info.Pid || r.StartTicks == 0 || len(r.Token) != 32 || r.Owner != "me" ||
		!r.Daemon || r.State != control.StateRunning || r.Name != "sleepd" {
		t.Fatalf("record: %+v", r)
	}
	fi, err := os.Stat(e.cfg.StateDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode: %v %v", fi.Mode(), err)
	}
}

func TestAuthorize(t *testing.T) {
	e, s := openEnv(t)
	info := e.start(s, "sleep", "")
	tok := tokenOf(s, info.ID)
	tests := []struct {
		id    uint64
		token string
		want  error
	}{
		{info.ID, tok, nil},
		{info.ID, "wrong", control.ErrUnauthorized},
		{info.ID, "", control.ErrUnauthorized},
		{42, tok, control.ErrNoSuchApp},
	}
	for _, tt := range tests {
		err := s.authorize(helloFor(tt.id, tt.token))
		if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("authorize(%d, %q) = %v, want %v", tt.id, tt.token, err, tt.want)
		}
	}
	s.Shutdown(context.Background(), info.ID)
	if err := s.authorize(helloFor(info.ID, tok)); !errors.Is(err, control.ErrNotRunning) {
		t.Errorf("authorize after exit: %v", err)
	}
}

func TestDefaultStateDir(t *testing.T) {
	t.Setenv("SKYWIRE_STATE_DIR", "/x/y")
	if got := DefaultStateDir(); got != "/x/y" {
		t.Errorf("with env: %s", got)
	}
	t.Setenv("SKYWIRE_STATE_DIR", "")
	t.Setenv("XDG_STATE_HOME", "/xdg")
	want := "/xdg/skywire"
	if os.Geteuid() == 0 {
		want = "/var/lib/skywire"
	}
	if got := DefaultStateDir(); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestValidate(t *testing.T) {
	base := Config{StateDir: "/tmp/x", SelfPath: "/bin/true"}
	tests := []struct {
		name   string
		mutate func(*Config)
		key    string
	}{
		{"ok", func(*Config) {}, ""},
		{"no state dir", func(c *Config) { c.StateDir = "" }, "state_dir"},
		{"tcp without token", func(c *Config) { c.ControlTCP = "127.0.0.1:1" }, "control_token"},
		{"bad restart", func(c *Config) { c.Apps = map[string]AppSpec{"a": {Restart: "sometimes"}} }, "apps.a.restart"},
		{"bad name", func(c *Config) { c.Apps = map[string]AppSpec{"a/b": {}} }, "a/b"},
		{"bad env", func(c *Config) { c.Apps = map[string]AppSpec{"a": {Env: map[string]string{"A=B": "x"}}} }, "apps.a.env"},
		{"negative stop timeout", func(c *Config) { c.Apps = map[string]AppSpec{"a": {StopTimeout: -1}} }, "apps.a.stop_timeout"},
		{"negative log size", func(c *Config) { c.LogMaxBytes = -1 }, "log_max_bytes"},
		{"self path missing", func(c *Config) { c.SelfPath = ""; c.Apps = map[string]AppSpec{"a": {}} }, "apps.a.path"},
	}
	for _, tt := range tests {
		c := base
		tt.mutate(&c)
		err := c.Validate()
		if (tt.key == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.key)) {
			t.Errorf("%s: Validate = %v, want mention of %q", tt.name, err, tt.key)
		}
	}
}

func TestPruneFinished(t *testing.T) {
	e, s := openEnv(t)
	running := e.start(s, "sleepd", "")
	s.mu.Lock()
	for i := 0; i < maxFinished+5; i++ {
		id := s.nextID
		s.nextID++
		s.apps[id] = &app{rec: appRecord{ID: id, Name: "sleep", State: control.StateExited}, exited: closedChan()}
	}
	err := s.saveLocked()
	n, next := len(s.apps), s.nextID
	_, first := s.apps[running.ID+1]
	_, keptRunning := s.apps[running.ID]
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if n != maxFinished+1 || first || !keptRunning {
		t.Fatalf("after prune: %d apps, oldest finished kept %v, running kept %v", n, first, keptRunning)
	}
	if got := e.start(s, "sleep", ""); got.ID != next {
		t.Fatalf("ID after prune %d, want %d", got.ID, next)
	}
}

func TestLaunchEnvironment(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	dir := t.TempDir()
	e.cfg.Apps["env"] = AppSpec{
		Path:        "skywire", // this binary (SelfPath)
		DefaultArgs: []string{"env", "FOO", appsignal.EnvAppID, appsignal.EnvName, appsignal.EnvAddr, EnvConfig},
		Env:         map[string]string{"FOO": "bar"},
		Dir:         dir,
	}
	e.cfg.ConfigPath = "/etc/named/by/the/user.toml"
	t.Setenv(EnvConfig, "/some/other.toml") // what viscript itself inherited loses
	s := e.open()
	info := e.start(s, "env", "")
	var out string
	tstest.WaitFor(t, "env printed", func() bool {
		c, _ := s.Logs(context.Background(), info.ID, 0, 4096)
		out = string(c.Data)
		return strings.Contains(out, "stderr too")
	})
	for _, want := range []string{
		"FOO=bar\n",
		appsignal.EnvAppID + "=1\n",
		appsignal.EnvName + "=env\n",
		appsignal.EnvAddr + "=" + s.SignalAddr() + "\n",
		"cwd=" + dir + "\n",
		EnvConfig + "=/etc/named/by/the/user.toml\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestNoCLIImports: the command layer owns flags and files.
func TestNoCLIImports(t *testing.T) {
	tstest.CheckImports(t, ".", "urfave/cli", "BurntSushi/toml")
}

func TestWithDefaults(t *testing.T) {
	in := Config{StateDir: "/s", LogKeep: 7, Apps: map[string]AppSpec{
		"a": {},
		"b": {StopTimeout: time.Second, Restart: RestartAlways},
	}}
	got := in.withDefaults()
	if got.LogMaxBytes != DefaultLogMaxBytes || got.LogKeep != 7 || got.UsageWindow != DefaultUsageWindow {
		t.Errorf("viscript defaults: %+v", got)
	}
	if a := got.Apps["a"]; a.StopTimeout != DefaultStopTimeout || a.Restart != RestartNo {
		t.Errorf("app a: %+v", a)
	}
	if b := got.Apps["b"]; b.StopTimeout != time.Second || b.Restart != RestartAlways {
		t.Errorf("app b: %+v", b)
	}
	got.Apps["c"] = AppSpec{}
	if _, ok := in.Apps["c"]; ok {
		t.Error("withDefaults shares the caller's catalog map")
	}
}
