package viscript

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/viscript/control"
)

// readyPoll is how often waitReady asks again.
const readyPoll = 100 * time.Millisecond

// waitReady waits until a running instance of dep answers a signal ping,
// for at most timeout (and ctx). name is the app being started, for the
// error. An instance waiting for a policy restart is waited for; no
// instance at all, or one that is not a signal client, fails at once.
func (s *Supervisor) waitReady(ctx context.Context, name, dep string, timeout time.Duration) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("start %q: it starts after %q, %s: %w", name, dep, fmt.Sprintf(format, args...), control.ErrNotReady)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	var last error
	for {
		id, state, ok := s.liveInstance(dep)
		if !ok {
			return fail("which is not running (start %s first, or use `start all`)", dep)
		}
		if state == control.StateRunning {
			_, err := s.Ping(wctx, id)
			switch {
			case err == nil:
				return nil
			case errors.Is(err, control.ErrNotSignalClient):
				return fail("but %s (ID %d) is not a signal client, so there is no way to tell it is ready", dep, id)
			}
			last = err
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("start %q: waiting for %q: %w", name, dep, ctx.Err())
			}
			if last == nil {
				return fail("which did not come up within %v (state %s)", timeout, state)
			}
			return fail("which did not answer a signal ping within %v (last: %v)", timeout, last)
		case <-t.C:
		}
	}
}

// liveInstance returns the lowest-ID live instance of name, preferring a
// running one.
func (s *Supervisor) liveInstance(name string) (uint64, control.AppState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *app
	for _, a := range s.apps {
		if a.rec.Name != name || !a.rec.live() || a.launching {
			continue
		}
		if best == nil || (a.rec.State == control.StateRunning) != (best.rec.State == control.StateRunning) && a.rec.State == control.StateRunning ||
			(a.rec.State == control.StateRunning) == (best.rec.State == control.StateRunning) && a.rec.ID < best.rec.ID {
			best = a
		}
	}
	if best == nil {
		return 0, "", false
	}
	return best.rec.ID, best.rec.State, true
}

// Remove forgets an app that has exited or failed. Its ID stays used
// (next_id only grows) and its log files stay in STATE/logs.
func (s *Supervisor) Remove(ctx context.Context, id uint64) error {
	a, err := s.lookup(id)
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	a.opMu.Lock() // no launch or stop of it in flight
	defer a.opMu.Unlock()
	s.checkExit(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.rec.live() || a.launching {
		return fmt.Errorf("remove app %d (%s): it is %s; stop it first (sd %d): %w",
			id, a.rec.Name, a.rec.State, id, control.ErrAppRunning)
	}
	if s.apps[id] != a {
		return fmt.Errorf("remove: app %d: %w", id, control.ErrNoSuchApp)
	}
	delete(s.apps, id)
	s.log.Info("app removed from the table", "id", id, "name", a.rec.Name)
	if err := s.saveLocked(); err != nil {
		return fmt.Errorf("remove app %d: %w", id, err)
	}
	return nil
}

// ErrNoReload: Reload on a supervisor without Config.LoadCatalog.
var ErrNoReload = errors.New("this viscript has no config file to re-read (it runs on the embedded default config; give one with --config)")

// Reload re-reads the catalog through Config.LoadCatalog and installs it
// if it is valid (else the old one stays and the error names the key).
// With Config.LoadAdmins it re-reads the admins of remote control too: a
// removed key is refused from its next request on.
// Running apps keep running; a changed entry applies from their next
// start or restart.
func (s *Supervisor) Reload(ctx context.Context) (control.ReloadResult, error) {
	if s.cfg.LoadCatalog == nil {
		return control.ReloadResult{}, fmt.Errorf("reload: %w", ErrNoReload)
	}
	apps, err := s.cfg.LoadCatalog()
	if err != nil {
		return control.ReloadResult{}, fmt.Errorf("reload: %w", err)
	}
	var admins []keys.PublicKey
	if s.cfg.LoadAdmins != nil {
		if admins, err = s.cfg.LoadAdmins(); err != nil {
			return control.ReloadResult{}, fmt.Errorf("reload: %w", err)
		}
	}
	next := s.cfg
	next.Apps = apps
	if err := next.Validate(); err != nil {
		return control.ReloadResult{}, fmt.Errorf("reload: %w", err)
	}
	next = next.withDefaults()
	var r control.ReloadResult
	s.catMu.Lock()
	for _, n := range sortedNames(next.Apps) {
		old, ok := s.catalog[n]
		switch {
		case !ok:
			r.Added = append(r.Added, n)
		case !reflect.DeepEqual(old, next.Apps[n]):
			r.Changed = append(r.Changed, n)
		}
	}
	for _, n := range sortedNames(s.catalog) {
		if _, ok := next.Apps[n]; !ok {
			r.Removed = append(r.Removed, n)
		}
	}
	s.catalog = next.Apps
	s.catMu.Unlock()
	if s.remote != nil && s.cfg.LoadAdmins != nil {
		added, removed := s.remote.SetAdmins(admins)
		for _, k := range added {
			r.AdminsAdded = append(r.AdminsAdded, k.String())
		}
		for _, k := range removed {
			r.AdminsRemoved = append(r.AdminsRemoved, k.String())
		}
		if len(added)+len(removed) > 0 {
			s.log.Info("admins reloaded", "added", r.AdminsAdded, "removed", r.AdminsRemoved)
		}
	}
	s.log.Info("catalog reloaded", "added", r.Added, "removed", r.Removed, "changed", r.Changed)
	return r, nil
}

// autostart starts the catalog's autostart apps that do not run yet (after
// a re-adoption they may), in After order, one after the other. Failures
// are logged; the next app is still tried.
func (s *Supervisor) autostart(ctx context.Context) {
	for _, n := range s.AutostartNames() {
		if ctx.Err() != nil {
			return
		}
		if _, _, ok := s.liveInstance(n); ok {
			s.log.Info("autostart: already running", "name", n)
			continue
		}
		info, err := s.Start(ctx, control.StartRequest{Name: n, UseDefault: true})
		if err != nil {
			s.log.Error("autostart failed", "name", n, "err", err)
			continue
		}
		s.log.Info("autostarted", "name", n, "id", info.ID, "pid", info.Pid)
	}
}

// AutostartNames lists the catalog's autostart apps in the order Run
// starts them (Config.Autostart).
func (s *Supervisor) AutostartNames() []string {
	s.catMu.RLock()
	defer s.catMu.RUnlock()
	var names []string
	for n, spec := range s.catalog {
		if spec.Autostart {
			names = append(names, n)
		}
	}
	return StartOrder(s.catalog, names)
}
