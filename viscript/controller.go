package viscript

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/skywire-mesh/skywire/appsignal"
	"github.com/skywire-mesh/skywire/viscript/control"
)

var _ control.Controller = (*Supervisor)(nil)

// lookup returns the app with this ID.
func (s *Supervisor) lookup(id uint64) (*app, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	if !ok || (a.launching && a.rec.Pid == 0 && a.rec.State == control.StateRunning) {
		return nil, fmt.Errorf("app %d: %w", id, control.ErrNoSuchApp)
	}
	return a, nil
}

// infoLocked describes a; Connected is filled in by the caller.
func (s *Supervisor) infoLocked(a *app, now time.Time) control.AppInfo {
	r := a.rec
	info := control.AppInfo{
		ID:        r.ID,
		Name:      r.Name,
		Pid:       r.Pid,
		State:     r.State,
		Daemon:    r.Daemon,
		Args:      slices.Clone(r.Args),
		StartedAt: r.StartedAt,
		Restarts:  r.Restarts,
		ExitCode:  r.ExitCode,
		ExitInfo:  r.ExitInfo,
	}
	if r.State == control.StateRunning || r.State == control.StateStopping {
		info.UptimeS = now.Sub(r.StartedAt).Seconds()
	}
	return info
}

func (s *Supervisor) info(a *app) control.AppInfo {
	s.mu.Lock()
	info := s.infoLocked(a, time.Now())
	s.mu.Unlock()
	info.Connected = s.sig.Connected(info.ID)
	return info
}

// Catalog lists the configured apps by name.
func (s *Supervisor) Catalog(ctx context.Context) ([]control.CatalogEntry, error) {
	s.catMu.RLock()
	out := make([]control.CatalogEntry, 0, len(s.catalog))
	for name, spec := range s.catalog {
		out = append(out, catalogEntry(name, spec))
	}
	s.catMu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func catalogEntry(name string, spec AppSpec) control.CatalogEntry {
	var lim []string
	if spec.Limits.NoFile != 0 {
		lim = append(lim, fmt.Sprintf("nofile=%d", spec.Limits.NoFile))
	}
	if spec.Limits.Memory != "" {
		lim = append(lim, "memory="+spec.Limits.Memory)
	}
	return control.CatalogEntry{
		Name:          name,
		Desc:          spec.Desc,
		Path:          spec.Path,
		Daemon:        spec.Daemon,
		DefaultArgs:   slices.Clone(spec.DefaultArgs),
		Help:          spec.Help,
		Restart:       spec.Restart,
		Autostart:     spec.Autostart,
		After:         slices.Clone(spec.After),
		Instances:     spec.Instances,
		StartWindowMS: spec.StartWindow.Milliseconds(),
		User:          spec.User,
		Limits:        strings.Join(lim, " "),
	}
}

// Start launches a catalog app under a new sequence ID. Its arguments are
// the catalog's default_args followed by req.Args (req.Args alone with
// req.Replace). Unless req.Force, it is refused with ErrAlreadyRunning
// while the entry's instances (default 1) already run. If the entry is
// after other apps, Start first waits until each answers a signal ping
// (ErrNotReady if one does not within after_timeout).
func (s *Supervisor) Start(ctx context.Context, req control.StartRequest) (control.AppInfo, error) {
	if err := ctx.Err(); err != nil {
		return control.AppInfo{}, fmt.Errorf("start %q: %w", req.Name, err)
	}
	spec, ok := s.spec(req.Name)
	if !ok {
		return control.AppInfo{}, s.unknownApp(req.Name)
	}
	args := append(slices.Clone(spec.DefaultArgs), req.Args...)
	switch {
	case req.UseDefault:
		args = slices.Clone(spec.DefaultArgs)
	case req.Replace:
		args = slices.Clone(req.Args)
	}
	if !req.Force {
		s.mu.Lock()
		err := s.instancesLeftLocked(req.Name, spec)
		s.mu.Unlock()
		if err != nil {
			return control.AppInfo{}, err
		}
	}
	for _, dep := range spec.After {
		if err := s.waitReady(ctx, req.Name, dep, spec.AfterTimeout); err != nil {
			return control.AppInfo{}, err
		}
	}
	a := &app{backoff: backoffMin, launching: true, exited: closedChan()}
	a.opMu.Lock()
	defer a.opMu.Unlock()

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return control.AppInfo{}, fmt.Errorf("start %q: %w", req.Name, ErrClosed)
	}
	if !req.Force {
		// Again, under the lock that allocates: two racing starts cannot
		// both pass.
		if err := s.instancesLeftLocked(req.Name, spec); err != nil {
			s.mu.Unlock()
			return control.AppInfo{}, err
		}
	}
	id := s.nextID
	s.nextID++
	a.rec = appRecord{
		ID: id, Name: req.Name, Args: args, Daemon: spec.Daemon, Owner: req.Owner,
		State: control.StateRunning,
	}
	s.apps[id] = a
	err := s.saveLocked() // persists next_id before anything runs
	if err != nil {
		delete(s.apps, id)
	}
	s.mu.Unlock()
	if err != nil {
		return control.AppInfo{}, fmt.Errorf("start %q: %w", req.Name, err)
	}
	err = s.launch(a)
	return s.info(a), err
}

// instancesLeftLocked refuses a start of name when its instances already
// run (running, stopping, waiting for a policy restart or being launched).
func (s *Supervisor) instancesLeftLocked(name string, spec AppSpec) error {
	var ids []uint64
	for id, a := range s.apps {
		if a.rec.Name == name && (a.rec.live() || a.launching) {
			ids = append(ids, id)
		}
	}
	limit := max(spec.Instances, 1)
	if len(ids) < limit {
		return nil
	}
	slices.Sort(ids)
	first := s.apps[ids[0]].rec
	msg := fmt.Sprintf("start %q: already running as ID %d (pid %d, %s); `start --force %s` runs another copy, `restart %d` restarts it",
		name, first.ID, first.Pid, first.State, name, first.ID)
	if limit > 1 {
		msg = fmt.Sprintf("start %q: already running %d times (IDs %s; instances = %d); `start --force %s` runs one more",
			name, len(ids), joinIDs(ids), limit, name)
	}
	return &wrapped{msg: msg, err: control.ErrAlreadyRunning}
}

func joinIDs(ids []uint64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(parts, ", ")
}

// unknownApp is the error for a name not in the catalog, with the names
// that come close.
func (s *Supervisor) unknownApp(name string) error {
	s.catMu.RLock()
	names := sortedNames(s.catalog)
	s.catMu.RUnlock()
	var near []string
	low := strings.ToLower(name)
	for _, n := range names {
		ln := strings.ToLower(n)
		if strings.Contains(low, ln) || strings.Contains(ln, low) {
			near = append(near, n)
		}
	}
	msg := fmt.Sprintf("start %q: %v", name, control.ErrUnknownApp)
	switch {
	case len(near) > 0:
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(near, " or "))
	case len(names) > 0:
		msg += " (the catalog has: " + strings.Join(names, ", ") + ")"
	default:
		msg += " (the catalog is empty: add [apps.NAME] tables to the config)"
	}
	return &wrapped{msg: msg, err: control.ErrUnknownApp}
}

// wrapped is an error with its own text that still matches err.
type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// List returns every app, sorted by ID.
func (s *Supervisor) List(ctx context.Context) ([]control.AppInfo, error) {
	now := time.Now()
	s.mu.Lock()
	out := make([]control.AppInfo, 0, len(s.apps))
	for _, a := range s.apps {
		if a.launching && a.rec.Pid == 0 && a.rec.State == control.StateRunning {
			continue
		}
		out = append(out, s.infoLocked(a, now))
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	for i := range out {
		out[i].Connected = s.sig.Connected(out[i].ID)
	}
	return out, nil
}

// runningPid returns the pid and start ticks of a running app.
func (s *Supervisor) runningPid(id uint64) (*app, int, uint64, error) {
	a, err := s.lookup(id)
	if err != nil {
		return nil, 0, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.rec.State != control.StateRunning && a.rec.State != control.StateStopping {
		return nil, 0, 0, fmt.Errorf("app %d (%s): %w", id, a.rec.State, control.ErrNotRunning)
	}
	return a, a.rec.Pid, a.rec.StartTicks, nil
}

// Ping asks the app's signal client for a pong (at most 2 s).
func (s *Supervisor) Ping(ctx context.Context, id uint64) (time.Duration, error) {
	a, _, _, err := s.runningPid(id)
	if err != nil {
		return 0, fmt.Errorf("ping: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, pingMax)
	defer cancel()
	if !s.awaitSignal(ctx, a, id, false) {
		return 0, fmt.Errorf("ping app %d: %w", id, control.ErrNotSignalClient)
	}
	rtt, err := s.sig.Ping(ctx, id)
	switch {
	case err == nil:
		return rtt, nil
	case errors.Is(err, appsignal.ErrNotConnected):
		return 0, fmt.Errorf("ping app %d: %w", id, control.ErrNotSignalClient)
	case errors.Is(err, appsignal.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return 0, fmt.Errorf("ping app %d: %w: %w", id, control.ErrTimeout, err)
	default:
		return 0, fmt.Errorf("ping app %d: %w", id, err)
	}
}

// connectGrace is how long after an app's start, or after this supervisor
// took over the state directory, a signal client may still be on its way:
// clients reconnect with a backoff capped at 2 s.
const connectGrace = 2500 * time.Millisecond

// awaitSignal reports whether app id's signal client is connected, waiting
// for it within connectGrace of the app's or the supervisor's start. With
// onlyKnown, it waits only for an app whose client has connected before.
func (s *Supervisor) awaitSignal(ctx context.Context, a *app, id uint64, onlyKnown bool) bool {
	s.mu.Lock()
	started, known := a.rec.StartedAt, a.rec.Signal
	s.mu.Unlock()
	if onlyKnown && !known {
		return s.sig.Connected(id)
	}
	if started.Before(s.opened) {
		started = s.opened
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !s.sig.Connected(id) {
		if time.Since(started) > connectGrace {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// Usage measures the app's process through /proc, plus what its signal
// client reports if it is connected.
func (s *Supervisor) Usage(ctx context.Context, id uint64) (control.Usage, error) {
	_, pid, ticks, err := s.runningPid(id)
	if err != nil {
		return control.Usage{}, fmt.Errorf("usage: %w", err)
	}
	u := control.Usage{ID: id, Pid: pid}

	// Ask the app in parallel with the sampling window; this call owns the
	// goroutine and waits for it below.
	var repDone chan struct{}
	if s.sig.Connected(id) {
		repDone = make(chan struct{})
		rctx, cancel := context.WithTimeout(ctx, reportedUsageWait)
		go func() {
			defer close(repDone)
			defer cancel()
			if m, err := s.sig.Usage(rctx, id); err == nil {
				u.Reported = m
			}
		}()
	}
	waitReported := func() {
		if repDone != nil {
			<-repDone
		}
	}

	// take reads the process's counters, failing when the pid no longer
	// names the app's process (it exited, or the pid was reused).
	take := func() (sample, error) {
		sm, err := s.proc.sample(pid)
		if err == nil && sm.ticks != ticks {
			err = errProcGone
		}
		if err != nil {
			waitReported()
			if errors.Is(err, errProcGone) {
				return sm, fmt.Errorf("usage of app %d (pid %d): %w", id, pid, control.ErrNotRunning)
			}
			return sm, fmt.Errorf("usage of app %d: %w", id, err)
		}
		return sm, nil
	}
	s0, err := take()
	if err != nil {
		return control.Usage{}, err
	}
	t := time.NewTimer(s.cfg.UsageWindow)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		waitReported()
		return control.Usage{}, fmt.Errorf("usage of app %d: %w", id, ctx.Err())
	}
	s1, err := take()
	if err != nil {
		return control.Usage{}, err
	}
	if wall := s1.at.Sub(s0.at).Seconds(); wall > 0 {
		u.CPUPercent = (s1.cpu - s0.cpu) / wall * 100
		if u.CPUPercent < 0 {
			u.CPUPercent = 0
		}
	}
	u.RSSBytes = s1.rss
	u.Threads = s1.threads
	u.FDs, u.ReadBytes, u.WriteBytes = s.proc.fdsAndIO(pid)
	u.UptimeS = time.Since(s.proc.startTime(ticks)).Seconds()
	waitReported()
	return u, nil
}

// Shutdown stops the app: over the signal protocol if it is connected,
// then SIGTERM to its process group, then SIGKILL, each step waiting up to
// the app's stop_timeout. It also disables the restart policy for the app
// until it is restarted by hand. If ctx ends early, the remaining polite
// steps are skipped and the app is killed.
func (s *Supervisor) Shutdown(ctx context.Context, id uint64) (control.StopResult, error) {
	a, err := s.lookup(id)
	if err != nil {
		return control.StopResult{ID: id}, fmt.Errorf("shutdown: %w", err)
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	step, err := s.stop(ctx, a, true)
	return control.StopResult{ID: id, Step: step}, err
}

// stop ends a's current run. The caller holds a.opMu. disable records that
// the restart policy no longer applies (the user stopped it).
func (s *Supervisor) stop(ctx context.Context, a *app, disable bool) (control.StopStep, error) {
	s.checkExit(a) // an exit not collected yet is "already exited"
	s.mu.Lock()
	id := a.rec.ID
	changed := disable && !a.rec.NoRestart
	if disable {
		a.rec.NoRestart = true
	}
	switch a.rec.State {
	case control.StateBackoff:
		a.rec.State = control.StateExited
		a.gen++ // cancels the pending restart
		_ = s.saveLocked()
		s.mu.Unlock()
		return control.StopAlready, nil
	case control.StateExited, control.StateFailed:
		if changed {
			_ = s.saveLocked()
		}
		s.mu.Unlock()
		return control.StopAlready, nil
	}
	a.rec.State = control.StateStopping
	_ = s.saveLocked()
	exited, pid, ticks, child := a.exited, a.rec.Pid, a.rec.StartTicks, a.child
	timeout := s.stopTimeout(a.rec.Name)
	s.mu.Unlock()

	if s.awaitSignal(ctx, a, id, true) {
		sctx, cancel := context.WithTimeout(ctx, timeout)
		err := s.sig.Shutdown(sctx, id)
		wait := timeout
		if err != nil {
			// Most often the connection dropped because the app got the
			// request and is exiting: give it a short grace period.
			s.log.Debug("signal shutdown request failed", "id", id, "err", err)
			wait = min(timeout, signalGrace)
		}
		ok := s.waitExit(sctx, a, exited, wait, true)
		cancel()
		if ok {
			return control.StopSignal, nil
		}
	}
	if !s.signalProcess(pid, ticks, child, syscallSIGTERM) {
		// Nothing to signal: collect the exit.
		if s.waitExit(context.Background(), a, exited, killWait, true) {
			return control.StopAlready, nil
		}
	} else if s.waitExit(ctx, a, exited, timeout, true) {
		return control.StopSIGTERM, nil
	}
	s.signalProcess(pid, ticks, child, syscallSIGKILL)
	if s.waitExit(context.Background(), a, exited, killWait, true) {
		return control.StopSIGKILL, nil
	}
	return control.StopSIGKILL, fmt.Errorf("shutdown app %d (pid %d): still running %s after SIGKILL: %w",
		id, pid, killWait, control.ErrTimeout)
}

// waitExit waits until exited is closed, d passes or ctx ends, checking the
// process itself every few milliseconds. With wait false it checks once.
func (s *Supervisor) waitExit(ctx context.Context, a *app, exited <-chan struct{}, d time.Duration, wait bool) bool {
	s.checkExit(a)
	select {
	case <-exited:
		return true
	default:
	}
	if !wait {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(stopPoll)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			return true
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		case <-tick.C:
			s.checkExit(a)
		}
	}
}

// Restart stops the app if it runs and starts it again under the same ID
// with a fresh token. It re-enables the restart policy.
func (s *Supervisor) Restart(ctx context.Context, id uint64) (control.AppInfo, error) {
	a, err := s.lookup(id)
	if err != nil {
		return control.AppInfo{}, fmt.Errorf("restart: %w", err)
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if _, err := s.stop(ctx, a, false); err != nil {
		return s.info(a), fmt.Errorf("restart: %w", err)
	}
	s.mu.Lock()
	a.rec.NoRestart = false
	a.rec.Restarts++
	s.ctr.manualRestarts.Add(1)
	a.backoff = backoffMin
	s.mu.Unlock()
	err = s.launch(a)
	return s.info(a), err
}

// ReleaseOwner stops every non-daemon app that owner started.
func (s *Supervisor) ReleaseOwner(ctx context.Context, owner string) error {
	if owner == "" {
		return nil
	}
	s.mu.Lock()
	ids := s.liveNonDaemonsLocked(owner)
	s.mu.Unlock()
	if err := s.stopMany(ctx, ids); err != nil {
		return fmt.Errorf("release owner %s: %w", owner, err)
	}
	return nil
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
