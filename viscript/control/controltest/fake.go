// Package controltest provides an in-memory control.Controller for tests
// of the control protocol, the shell and anything else that drives a
// viscript supervisor.
package controltest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/skywire-mesh/skywire/viscript/control"
)

// Catalog returns the catalog the tests of the control protocol and of
// the shell share: echo (a program with default args, help text and many
// instances) and node (a daemon restarted always).
func Catalog() []control.CatalogEntry {
	return []control.CatalogEntry{
		{Name: "echo", Desc: "echo server", Path: "/bin/echo", DefaultArgs: []string{"-n", "hi there"}, Help: "Says hi.\nTwice.", Restart: "no", Instances: 100},
		{Name: "node", Desc: "mesh node", Daemon: true, Restart: "always"},
	}
}

// Fake is an in-memory Controller. Apps are records, nothing is executed.
// The zero value is not usable; call New. All methods are safe for
// concurrent use.
type Fake struct {
	mu       sync.Mutex
	catalog  []control.CatalogEntry
	apps     map[uint64]*fakeApp
	nextID   uint64
	errs     map[string]error // method -> forced error
	rtt      time.Duration
	pingHang bool
	stopStep control.StopStep
	calls    []string
	starts   []control.StartRequest
	released []string
	relCh    chan string
	next     []control.CatalogEntry // what Reload installs (SetCatalog)
	hasNext  bool
	exitNext *startExit
}

// SetStartExit makes every app started from now on end right away: the
// next List shows it exited (backoff: waiting for a restart) with code and
// info, and out as its output. SetStartExit(0, "", nil, false) with
// info "" turns it off.
func (f *Fake) SetStartExit(code int, info string, out []byte, backoff bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if info == "" {
		f.exitNext = nil
		return
	}
	f.exitNext = &startExit{code: code, info: info, out: slices.Clone(out), backoff: backoff}
}

type fakeApp struct {
	info  control.AppInfo
	owner string
	logs  []byte
	usage *control.Usage
	dies  *startExit // applied at the next List
}

// startExit is how apps started after SetStartExit end.
type startExit struct {
	code    int
	info    string
	out     []byte
	backoff bool
}

// New returns a Fake whose catalog holds entries.
func New(entries ...control.CatalogEntry) *Fake {
	return &Fake{
		catalog:  slices.Clone(entries),
		apps:     make(map[uint64]*fakeApp),
		errs:     make(map[string]error),
		rtt:      123 * time.Microsecond,
		stopStep: control.StopSignal,
		relCh:    make(chan string, 64),
	}
}

var _ control.Controller = (*Fake)(nil)

// AddApp inserts an app record as if it had been launched earlier and
// returns its ID (info.ID is replaced by the next sequence ID).
func (f *Fake) AddApp(info control.AppInfo, owner string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	info.ID = f.nextID
	f.apps[info.ID] = &fakeApp{info: info, owner: owner}
	return info.ID
}

// SetError makes every later call of method (a control.Method* name)
// fail with err; nil clears it.
func (f *Fake) SetError(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.errs, method)
		return
	}
	f.errs[method] = err
}

// SetPing sets the round-trip time Ping reports; hang makes Ping wait for
// its context and fail with control.ErrTimeout instead.
func (f *Fake) SetPing(rtt time.Duration, hang bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rtt, f.pingHang = rtt, hang
}

// SetStopStep sets the step Shutdown reports for running apps.
func (f *Fake) SetStopStep(s control.StopStep) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopStep = s
}

// SetUsage sets what Usage returns for app id.
func (f *Fake) SetUsage(id uint64, u control.Usage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.apps[id]; ok {
		u.ID = id
		a.usage = &u
	}
}

// AppendLog appends captured output to app id's log.
func (f *Fake) AppendLog(id uint64, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.apps[id]; ok {
		a.logs = append(a.logs, data...)
	}
}

// Calls returns the methods called so far, in order.
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Starts returns the requests Start received, in order.
func (f *Fake) Starts() []control.StartRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.starts)
}

// Released returns the owners ReleaseOwner received, in order.
func (f *Fake) Released() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.released)
}

// ReleasedC receives each owner passed to ReleaseOwner (buffered; sends
// are dropped when it is full).
func (f *Fake) ReleasedC() <-chan string { return f.relCh }

// Owner returns the owner recorded for app id.
func (f *Fake) Owner(id uint64) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.apps[id]; ok {
		return a.owner
	}
	return ""
}

// enterLocked records a call and returns its forced error, if any.
func (f *Fake) enterLocked(method string) error {
	f.calls = append(f.calls, method)
	return f.errs[method]
}

// withApp runs fn on app id under the fake's lock, after appLocked
// (whose error it returns instead).
func withApp[T any](f *Fake, method, op string, id uint64, fn func(a *fakeApp) (T, error)) (T, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := f.appLocked(method, op, id)
	if err != nil {
		var zero T
		return zero, err
	}
	return fn(a)
}

// appLocked records a call of method and returns app id, or the error
// forced for method, or ErrNoSuchApp naming op.
func (f *Fake) appLocked(method, op string, id uint64) (*fakeApp, error) {
	if err := f.enterLocked(method); err != nil {
		return nil, err
	}
	a, ok := f.apps[id]
	if !ok {
		return nil, fmt.Errorf("%s %d: %w", op, id, control.ErrNoSuchApp)
	}
	return a, nil
}

// SetCatalog replaces the catalog (what Reload then reports).
func (f *Fake) SetCatalog(entries ...control.CatalogEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next = slices.Clone(entries)
	f.hasNext = true
}

// SetExited marks app id as ended with exit code and info (state exited,
// or backoff with backoff true).
func (f *Fake) SetExited(id uint64, code int, info string, backoff bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.apps[id]; ok {
		a.info.State, a.info.ExitCode, a.info.ExitInfo, a.info.UptimeS = control.StateExited, code, info, 0
		if backoff {
			a.info.State = control.StateBackoff
		}
	}
}

// Catalog implements control.Controller.
func (f *Fake) Catalog(ctx context.Context) ([]control.CatalogEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enterLocked(control.MethodCatalog); err != nil {
		return nil, err
	}
	return slices.Clone(f.catalog), nil
}

// Start implements control.Controller.
func (f *Fake) Start(ctx context.Context, req control.StartRequest) (control.AppInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, req)
	if err := f.enterLocked(control.MethodStart); err != nil {
		return control.AppInfo{}, err
	}
	i := slices.IndexFunc(f.catalog, func(e control.CatalogEntry) bool { return e.Name == req.Name })
	if i < 0 {
		return control.AppInfo{}, fmt.Errorf("start %q: %w", req.Name, control.ErrUnknownApp)
	}
	e := f.catalog[i]
	args := append(slices.Clone(e.DefaultArgs), req.Args...)
	switch {
	case req.UseDefault:
		args = e.DefaultArgs
	case req.Replace:
		args = req.Args
	}
	if !req.Force {
		limit, running := max(e.Instances, 1), 0
		for _, a := range f.apps {
			if a.info.Name == req.Name && a.info.State == control.StateRunning {
				running++
			}
		}
		if running >= limit {
			return control.AppInfo{}, fmt.Errorf("start %q: %w", req.Name, control.ErrAlreadyRunning)
		}
	}
	f.nextID++
	info := control.AppInfo{
		ID:        f.nextID,
		Name:      req.Name,
		Pid:       1000 + int(f.nextID),
		State:     control.StateRunning,
		Daemon:    f.catalog[i].Daemon,
		Args:      slices.Clone(args),
		StartedAt: time.Now(),
		ExitCode:  -1,
	}
	f.apps[info.ID] = &fakeApp{info: info, owner: req.Owner, dies: f.exitNext}
	return info, nil
}

// List implements control.Controller.
func (f *Fake) List(ctx context.Context) ([]control.AppInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enterLocked(control.MethodList); err != nil {
		return nil, err
	}
	out := make([]control.AppInfo, 0, len(f.apps))
	for _, a := range f.apps {
		if d := a.dies; d != nil {
			a.dies = nil
			a.info.State, a.info.ExitCode, a.info.ExitInfo, a.info.UptimeS = control.StateExited, d.code, d.info, 0
			if d.backoff {
				a.info.State = control.StateBackoff
			}
			a.logs = append(a.logs, d.out...)
		}
		out = append(out, a.info)
	}
	slices.SortFunc(out, func(a, b control.AppInfo) int { return int(a.ID) - int(b.ID) })
	return out, nil
}

// Ping implements control.Controller.
func (f *Fake) Ping(ctx context.Context, id uint64) (time.Duration, error) {
	f.mu.Lock()
	a, err := f.appLocked(control.MethodPing, "ping", id)
	if err != nil {
		f.mu.Unlock()
		return 0, err
	}
	if !a.info.Connected {
		f.mu.Unlock()
		return 0, fmt.Errorf("ping %d: %w", id, control.ErrNotSignalClient)
	}
	rtt, hang := f.rtt, f.pingHang
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return 0, fmt.Errorf("ping %d: %w", id, control.ErrTimeout)
	}
	return rtt, nil
}

// Usage implements control.Controller.
func (f *Fake) Usage(ctx context.Context, id uint64) (control.Usage, error) {
	return withApp(f, control.MethodUsage, "usage", id, func(a *fakeApp) (control.Usage, error) {
		if a.info.State != control.StateRunning {
			return control.Usage{}, fmt.Errorf("usage %d: %w", id, control.ErrNotRunning)
		}
		if a.usage != nil {
			return *a.usage, nil
		}
		return control.Usage{ID: id, Pid: a.info.Pid, UptimeS: a.info.UptimeS}, nil
	})
}

// Shutdown implements control.Controller.
func (f *Fake) Shutdown(ctx context.Context, id uint64) (control.StopResult, error) {
	return withApp(f, control.MethodShutdown, "shutdown", id, func(a *fakeApp) (control.StopResult, error) {
		if a.info.State != control.StateRunning {
			return control.StopResult{ID: id, Step: control.StopAlready}, nil
		}
		a.info.State, a.info.UptimeS, a.info.ExitInfo = control.StateExited, 0, "stopped by shutdown"
		return control.StopResult{ID: id, Step: f.stopStep}, nil
	})
}

// Restart implements control.Controller.
func (f *Fake) Restart(ctx context.Context, id uint64) (control.AppInfo, error) {
	return withApp(f, control.MethodRestart, "restart", id, func(a *fakeApp) (control.AppInfo, error) {
		a.info.Restarts++
		a.info.Pid += 1000
		a.info.State, a.info.StartedAt, a.info.ExitInfo = control.StateRunning, time.Now(), ""
		return a.info, nil
	})
}

// Logs implements control.Controller.
func (f *Fake) Logs(ctx context.Context, id uint64, offset int64, max int) (control.LogChunk, error) {
	return withApp(f, control.MethodLogs, "logs", id, func(a *fakeApp) (control.LogChunk, error) {
		n := int64(len(a.logs))
		start := offset
		if offset < 0 {
			start = n + offset
			if start < 0 {
				start = 0
			}
		}
		start = min(start, n)
		end := n
		if max > 0 {
			end = min(n, start+int64(max))
		}
		return control.LogChunk{Data: slices.Clone(a.logs[start:end]), Next: end}, nil
	})
}

// ReleaseOwner implements control.Controller: non-daemon running apps of
// owner become exited.
func (f *Fake) ReleaseOwner(ctx context.Context, owner string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, owner)
	select {
	case f.relCh <- owner:
	default:
	}
	if err := f.enterLocked(control.MethodReleaseOwner); err != nil {
		return err
	}
	for _, a := range f.apps {
		if a.owner == owner && !a.info.Daemon && a.info.State == control.StateRunning {
			a.info.State, a.info.ExitInfo = control.StateExited, "owner session ended"
		}
	}
	return nil
}

// Remove implements control.Controller.
func (f *Fake) Remove(ctx context.Context, id uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := f.appLocked(control.MethodRemove, "remove", id)
	if err != nil {
		return err
	}
	if a.info.State == control.StateRunning || a.info.State == control.StateBackoff || a.info.State == control.StateStopping {
		return fmt.Errorf("remove %d: %w", id, control.ErrAppRunning)
	}
	delete(f.apps, id)
	return nil
}

// Reload implements control.Controller: the catalog given to SetCatalog
// replaces the current one.
func (f *Fake) Reload(ctx context.Context) (control.ReloadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enterLocked(control.MethodReload); err != nil {
		return control.ReloadResult{}, err
	}
	var r control.ReloadResult
	if !f.hasNext {
		return r, nil
	}
	old := map[string]control.CatalogEntry{}
	for _, e := range f.catalog {
		old[e.Name] = e
	}
	for _, e := range f.next {
		o, ok := old[e.Name]
		switch {
		case !ok:
			r.Added = append(r.Added, e.Name)
		case fmt.Sprint(o) != fmt.Sprint(e):
			r.Changed = append(r.Changed, e.Name)
		}
		delete(old, e.Name)
	}
	for n := range old {
		r.Removed = append(r.Removed, n)
	}
	slices.Sort(r.Removed)
	f.catalog, f.hasNext = f.next, false
	return r, nil
}
