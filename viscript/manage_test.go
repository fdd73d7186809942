package viscript

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/viscript/control"
)

func startReq(name string, args ...string) control.StartRequest {
	return control.StartRequest{Name: name, Args: args, UseDefault: len(args) == 0}
}

// TestStartRefusesSecondCopy: a second start of a running app is refused
// with an error naming the running ID, unless forced or the catalog allows
// more instances; an exited app does not count.
func TestStartRefusesSecondCopy(t *testing.T) {
	e := newEnv(t)
	tstest.CheckLeaks(t)
	two := e.cfg.Apps["sleep"]
	two.Instances = 2
	e.cfg.Apps["sleep2"] = two
	s := e.open()
	ctx := context.Background()

	first := e.start(s, "sleep", "")
	_, err := s.Start(ctx, startReq("sleep"))
	if !errors.Is(err, control.ErrAlreadyRunning) {
		t.Fatalf("second start: %v, want ErrAlreadyRunning", err)
	}
	for _, want := range []string{fmt.Sprintf("as ID %d", first.ID), "--force", fmt.Sprintf("restart %d", first.ID)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if list, _ := s.List(ctx); len(list) != 1 {
		t.Errorf("a refused start left an entry: %+v", list)
	}
	forced, err := s.Start(ctx, control.StartRequest{Name: "sleep", UseDefault: true, Force: true})
	e.procs.add(forced.Pid)
	if err != nil || forced.State != control.StateRunning {
		t.Fatalf("forced start: %+v, %v", forced, err)
	}

	for i := 0; i < 2; i++ {
		info, err := s.Start(ctx, startReq("sleep2"))
		e.procs.add(info.Pid)
		if err != nil {
			t.Fatalf("instance %d of 2: %v", i+1, err)
		}
	}
	if _, err := s.Start(ctx, startReq("sleep2")); !errors.Is(err, control.ErrAlreadyRunning) || !strings.Contains(err.Error(), "instances = 2") {
		t.Fatalf("third of instances = 2: %v", err)
	}

	// Once stopped, it may be started again.
	if _, err := s.Shutdown(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Shutdown(ctx, forced.ID); err != nil {
		t.Fatal(err)
	}
	again, err := s.Start(ctx, startReq("sleep"))
	e.procs.add(again.Pid)
	if err != nil {
		t.Fatalf("start after shutdown: %v", err)
	}
}

// TestStartArgsAppend: arguments are appended to default_args; Replace
// replaces them.
func TestStartArgsAppend(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	ctx := context.Background()
	info, err := s.Start(ctx, control.StartRequest{Name: "print", Args: []string{"7"}})
	e.procs.add(info.Pid)
	if err != nil || !reflect.DeepEqual(info.Args, []string{"print", "5000", "7"}) {
		t.Fatalf("appended: %+v, %v", info.Args, err)
	}
	info, err = s.Start(ctx, control.StartRequest{Name: "print", Args: []string{"print", "10"}, Replace: true, Force: true})
	e.procs.add(info.Pid)
	if err != nil || !reflect.DeepEqual(info.Args, []string{"print", "10"}) {
		t.Fatalf("replaced: %+v, %v", info.Args, err)
	}
	// The program really got them: 10 bytes, not 5000.
	tstest.WaitFor(t, "print output", func() bool {
		c, _ := s.Logs(ctx, info.ID, 0, 8192)
		return len(c.Data) == 10
	})
}

func TestStartUnknownSuggests(t *testing.T) {
	e := newEnv(t)
	e.cfg.Apps["socks-server"] = e.cfg.Apps["sleep"]
	s := e.open()
	_, err := s.Start(context.Background(), control.StartRequest{Name: "meshnet-socks-server", Args: []string{"sockssrv0"}})
	if !errors.Is(err, control.ErrUnknownApp) || !strings.Contains(err.Error(), "did you mean socks-server?") {
		t.Fatalf("err = %v, want ErrUnknownApp suggesting socks-server", err)
	}
	_, err = s.Start(context.Background(), control.StartRequest{Name: "zzz"})
	if !errors.Is(err, control.ErrUnknownApp) || !strings.Contains(err.Error(), "the catalog has: always, busy") {
		t.Fatalf("err = %v, want the catalog listed", err)
	}
}

// TestStartAfter: an app after another waits until that one answers a
// signal ping; missing or non-signal dependencies fail with ErrNotReady
// and say why.
func TestStartAfter(t *testing.T) {
	e := newEnv(t)
	tstest.CheckLeaks(t)
	late := e.cfg.Apps["sleep"]
	late.After = []string{"sigd"}
	late.AfterTimeout = 30 * time.Second
	e.cfg.Apps["late"] = late
	onSleep := late
	onSleep.After = []string{"sleepd"}
	e.cfg.Apps["on-sleep"] = onSleep
	crashy := e.cfg.Apps["exit1"]
	crashy.Restart = RestartAlways
	e.cfg.Apps["crashy"] = crashy
	bounded := late
	bounded.After, bounded.AfterTimeout = []string{"crashy"}, 300*time.Millisecond
	e.cfg.Apps["bounded"] = bounded
	s := e.open()
	e.run(s)
	ctx := context.Background()

	_, err := s.Start(ctx, startReq("late"))
	if !errors.Is(err, control.ErrNotReady) || !strings.Contains(err.Error(), `after "sigd", which is not running`) {
		t.Fatalf("start with its dependency down: %v", err)
	}
	e.start(s, "sleepd", "")
	_, err = s.Start(ctx, startReq("on-sleep"))
	if !errors.Is(err, control.ErrNotReady) || !strings.Contains(err.Error(), "is not a signal client") {
		t.Fatalf("start after a non-signal app: %v", err)
	}

	// A dependency that keeps crashing never answers: the wait is bounded.
	crash := e.start(s, "crashy", "")
	_, err = s.Start(ctx, startReq("bounded"))
	if !errors.Is(err, control.ErrNotReady) {
		t.Fatalf("start after a crash-looping app: %v", err)
	}
	if _, err := s.Shutdown(ctx, crash.ID); err != nil {
		t.Fatal(err)
	}

	// Started right after its dependency: Start waits for the dependency's
	// signal client instead of failing.
	dep := e.start(s, "sigd", "")
	info, err := s.Start(ctx, startReq("late"))
	e.procs.add(info.Pid)
	if err != nil {
		t.Fatalf("start after a running signal client: %v", err)
	}
	if !s.sig.Connected(dep.ID) {
		t.Error("late started before its dependency answered")
	}
}

func TestRemove(t *testing.T) {
	e := newEnv(t)
	s := e.open()
	ctx := context.Background()
	run := e.start(s, "sleep", "")
	if err := s.Remove(ctx, run.ID); !errors.Is(err, control.ErrAppRunning) || !strings.Contains(err.Error(), fmt.Sprintf("sd %d", run.ID)) {
		t.Fatalf("remove running: %v", err)
	}
	if _, err := s.Shutdown(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, run.ID); err != nil {
		t.Fatalf("remove exited: %v", err)
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Fatalf("still listed: %+v", list)
	}
	if err := s.Remove(ctx, run.ID); !errors.Is(err, control.ErrNoSuchApp) {
		t.Fatalf("remove twice: %v", err)
	}
	// The ID is not handed out again, also after a reopen.
	s.Close()
	s = e.open()
	if next := e.start(s, "sleep", ""); next.ID != run.ID+1 {
		t.Fatalf("ID after remove: %d, want %d", next.ID, run.ID+1)
	}
}

func TestReload(t *testing.T) {
	e := newEnv(t)
	next := map[string]AppSpec{}
	var loadErr error
	e.cfg.LoadCatalog = func() (map[string]AppSpec, error) { return next, loadErr }
	s := e.open()
	ctx := context.Background()
	running := e.start(s, "sleep", "")

	for n, spec := range catalog() {
		next[n] = spec
	}
	delete(next, "busy")
	changed := next["sleep"]
	changed.DefaultArgs = []string{"print", "3"}
	next["sleep"] = changed
	next["fresh"] = next["sleepd"]
	r, err := s.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := control.ReloadResult{Added: []string{"fresh"}, Removed: []string{"busy"}, Changed: []string{"sleep"}}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("Reload = %+v, want %+v", r, want)
	}
	if got := appInfo(t, s, running.ID); got.State != control.StateRunning || got.Pid != running.Pid {
		t.Errorf("reload touched a running app: %+v", got)
	}
	if _, err := s.Start(ctx, startReq("busy")); !errors.Is(err, control.ErrUnknownApp) {
		t.Errorf("removed entry still starts: %v", err)
	}
	e.start(s, "fresh", "")
	if info, err := s.Restart(ctx, running.ID); err != nil || !reflect.DeepEqual(info.Args, []string{"sleep"}) {
		// A restart keeps the args the app was started with.
		t.Errorf("restart after reload: %+v, %v", info.Args, err)
	} else {
		e.procs.add(info.Pid)
	}

	// A bad catalog is refused and the old one stays.
	next["bad"] = AppSpec{Path: helperBin, After: []string{"nowhere"}}
	if _, err := s.Reload(ctx); err == nil || !strings.Contains(err.Error(), "apps.bad.after") {
		t.Fatalf("reload of a bad catalog: %v", err)
	}
	loadErr = errors.New("config.toml:3: boom")
	if _, err := s.Reload(ctx); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("reload with a load error: %v", err)
	}
	if cat, _ := s.Catalog(ctx); !slices.ContainsFunc(cat, func(c control.CatalogEntry) bool { return c.Name == "fresh" }) {
		t.Error("failed reloads replaced the catalog")
	}
	// Without a loader: a clear error.
	e2 := newEnv(t)
	s2 := e2.open()
	if _, err := s2.Reload(ctx); !errors.Is(err, ErrNoReload) {
		t.Errorf("reload without loader: %v", err)
	}
}

// TestAutostart: Run starts the autostart apps in after order, and after a
// restart of viscript does not start a second copy of adopted daemons.
func TestAutostart(t *testing.T) {
	e := newEnv(t)
	tstest.CheckLeaks(t)
	base := e.cfg.Apps["sigd"]
	base.Autostart = true
	e.cfg.Apps["a-late"] = AppSpec{Path: helperBin, DefaultArgs: []string{"signal"}, Daemon: true,
		Autostart: true, After: []string{"z-first"}, AfterTimeout: 30 * time.Second, StopTimeout: 2 * time.Second}
	e.cfg.Apps["z-first"] = base
	e.cfg.Autostart = true
	s := e.open()
	stop := e.run(s)
	byName := func(s *Supervisor) map[string][]control.AppInfo {
		m := map[string][]control.AppInfo{}
		list, _ := s.List(context.Background())
		for _, a := range list {
			m[a.Name] = append(m[a.Name], a)
		}
		return m
	}
	tstest.WaitFor(t, "both autostart apps running", func() bool {
		m := byName(s)
		return len(m["a-late"]) == 1 && m["a-late"][0].State == control.StateRunning
	})
	m := byName(s)
	if len(m) != 2 || len(m["z-first"]) != 1 || m["z-first"][0].ID > m["a-late"][0].ID {
		t.Fatalf("autostarted %+v; want z-first, then a-late", m)
	}
	e.track(s)
	stop() // daemons keep running

	s = e.open()
	e.run(s)
	// Both were adopted; autostart must not add copies. Wait until the
	// autostart pass is certainly over: a-late's dependency answers.
	tstest.WaitFor(t, "adopted signal clients", func() bool {
		return s.sig.Connected(m["z-first"][0].ID) && s.sig.Connected(m["a-late"][0].ID)
	})
	if got := byName(s); len(got["z-first"]) != 1 || len(got["a-late"]) != 1 {
		t.Fatalf("after restart: %+v", got)
	}
}

// TestLimits: limits are set in the app's own process (same pid: the shim
// execs the program).
func TestLimits(t *testing.T) {
	e := newEnv(t)
	lim := e.cfg.Apps["sleep"]
	lim.Limits = Limits{NoFile: 123, Memory: "3G"}
	e.cfg.Apps["limited"] = lim
	s := e.open()
	info := e.start(s, "limited", "")
	var nofile, as unix.Rlimit
	tstest.WaitFor(t, "the shim to exec the program", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", info.Pid))
		return err == nil && !strings.Contains(string(b), "exec-shim")
	})
	if err := unix.Prlimit(info.Pid, unix.RLIMIT_NOFILE, nil, &nofile); err != nil {
		t.Fatal(err)
	}
	if err := unix.Prlimit(info.Pid, unix.RLIMIT_AS, nil, &as); err != nil {
		t.Fatal(err)
	}
	if nofile.Cur != 123 || nofile.Max != 123 || as.Cur != 3<<30 || as.Max != 3<<30 {
		t.Fatalf("limits in the app: nofile %+v, as %+v", nofile, as)
	}
	if got := appInfo(t, s, info.ID); got.State != control.StateRunning || got.Pid != info.Pid {
		t.Fatalf("app after shim: %+v", got)
	}
}

// TestUser runs an app as nobody (root only).
func TestUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root; run the tests as root to cover user = ...")
	}
	e := newEnv(t)
	// A copy of the helper that nobody can reach: the test's own temporary
	// directories (0700 when made) opened up.
	dir := t.TempDir()
	bin := filepath.Join(dir, "sigapp")
	data, err := os.ReadFile(helperBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	spec := e.cfg.Apps["sleep"]
	spec.Path = bin
	spec.User = "nobody"
	e.cfg.Apps["as-nobody"] = spec
	spec.User = "no-such-user-here"
	e.cfg.Apps["as-ghost"] = spec
	s := e.open()
	info := e.start(s, "as-nobody", "")
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", info.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nUid:\t65534\t65534\t65534\t65534\n") {
		t.Fatalf("app does not run as nobody:\n%s", b)
	}
	_, err = s.Start(context.Background(), startReq("as-ghost"))
	if !errors.Is(err, ErrStartFailed) || !strings.Contains(err.Error(), `apps.as-ghost.user`) {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestValidateCatalog(t *testing.T) {
	ok := AppSpec{Path: "/bin/true"}
	tests := []struct {
		name string
		apps map[string]AppSpec
		key  string // "" = valid
	}{
		{"fine", map[string]AppSpec{"a": ok, "b": {After: []string{"a"}, Instances: 3, User: "nobody", Limits: Limits{NoFile: 1024, Memory: "256M"}}}, ""},
		{"after unknown", map[string]AppSpec{"a": {After: []string{"x"}}}, "apps.a.after"},
		{"after self", map[string]AppSpec{"a": {After: []string{"a"}}}, "apps.a.after"},
		{"after twice", map[string]AppSpec{"a": ok, "b": {After: []string{"a", "a"}}}, "apps.b.after"},
		{"cycle", map[string]AppSpec{"a": {After: []string{"b"}}, "b": {After: []string{"c"}}, "c": {After: []string{"a"}}}, "apps.a.after"},
		{"instances", map[string]AppSpec{"a": {Instances: -1}}, "apps.a.instances"},
		{"instances big", map[string]AppSpec{"a": {Instances: 5000}}, "apps.a.instances"},
		{"user", map[string]AppSpec{"a": {User: "bad user"}}, "apps.a.user"},
		{"nofile", map[string]AppSpec{"a": {Limits: Limits{NoFile: 3}}}, "apps.a.limits.nofile"},
		{"memory", map[string]AppSpec{"a": {Limits: Limits{Memory: "lots"}}}, "apps.a.limits.memory"},
		{"memory small", map[string]AppSpec{"a": {Limits: Limits{Memory: "100K"}}}, "apps.a.limits.memory"},
		{"all", map[string]AppSpec{"all": ok}, "apps.all"},
		{"after_timeout", map[string]AppSpec{"a": {AfterTimeout: -time.Second}}, "apps.a.after_timeout"},
	}
	for _, tt := range tests {
		err := ValidateCatalog(tt.apps)
		var ce *ConfigError
		switch {
		case tt.key == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.key != "" && (!errors.As(err, &ce) || ce.Key != tt.key):
			t.Errorf("%s: %v, want an error for %s", tt.name, err, tt.key)
		}
	}
	if err := ValidateCatalog(tests[4].apps); !strings.Contains(fmt.Sprint(err), "a -> b -> c -> a") {
		t.Errorf("cycle error does not show the cycle: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]uint64{"": 0, "1": 1, "256M": 256 << 20, "256MiB": 256 << 20, "2g": 2 << 30, "512KB": 512 << 10, "1T": 1 << 40, "100B": 100}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"x", "-1", "0", "1.5G", "M", "99999999999999999999", "16777216T"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

func TestStartOrder(t *testing.T) {
	apps := map[string]AppSpec{"web": {After: []string{"node", "db"}}, "node": {After: []string{"manager"}}, "manager": {}, "db": {}, "x": {}}
	got := StartOrder(apps, []string{"web", "node", "manager", "db", "x"})
	want := []string{"db", "manager", "node", "web", "x"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("StartOrder = %v, want %v", got, want)
	}
	if got := StartOrder(apps, []string{"web", "db"}); !reflect.DeepEqual(got, []string{"db", "web"}) {
		t.Fatalf("StartOrder of a subset = %v", got)
	}
}

func TestShimArgs(t *testing.T) {
	args, err := ShimArgs(Limits{NoFile: 64, Memory: "1M"}, "/bin/prog", []string{"--x", "--"})
	want := []string{"viscript", "exec-shim", "--nofile=64", "--as=1048576", "--", "/bin/prog", "--x", "--"}
	if err != nil || !reflect.DeepEqual(args, want) {
		t.Fatalf("ShimArgs = %q, %v", args, err)
	}
	for _, bad := range [][]string{{"--nofile=x", "--", "p"}, {"--frob", "--", "p"}, {"--nofile=5"}, {"--"}} {
		if err := RunShim(bad); !errors.Is(err, ErrShimUsage) {
			t.Errorf("RunShim(%q) = %v, want ErrShimUsage", bad, err)
		}
	}
}
