package viscript

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skywire-mesh/skywire/appsignal"
	"github.com/skywire-mesh/skywire/viscript/control"
)

// newToken returns a fresh 128-bit per-launch token in hex.
func newToken() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on Linux >= 3.17; if it ever did,
		// running apps with a guessable token would be worse than dying.
		panic("viscript: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// tokenEqual compares tokens in constant time; an empty token never matches.
func tokenEqual(want, got string) bool {
	if want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

func sortRecords(recs []appRecord) {
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
}

// spec returns the catalog entry for name.
func (s *Supervisor) spec(name string) (AppSpec, bool) {
	s.catMu.RLock()
	defer s.catMu.RUnlock()
	spec, ok := s.catalog[name]
	return spec, ok
}

func (s *Supervisor) stopTimeout(name string) time.Duration {
	if spec, ok := s.spec(name); ok {
		return spec.StopTimeout
	}
	return DefaultStopTimeout
}

// launch starts a new run of a (a fresh process under the same ID). The
// caller holds a.opMu and a is in s.apps. On failure the app is recorded
// as failed and the error wraps ErrStartFailed or control.ErrUnknownApp.
func (s *Supervisor) launch(a *app) error {
	s.mu.Lock()
	if s.closing {
		a.launching = false
		if a.rec.Pid == 0 && a.rec.State == control.StateRunning {
			// A new app that never ran: record why.
			a.rec.State = control.StateFailed
			a.rec.ExitCode, a.rec.ExitInfo = -1, "not started: viscript is closing"
			_ = s.saveLocked()
		}
		s.mu.Unlock()
		return fmt.Errorf("start %q (ID %d): %w", a.rec.Name, a.rec.ID, ErrClosed)
	}
	token := newToken()
	a.rec.Token = token
	a.launching = true
	id, name, args := a.rec.ID, a.rec.Name, a.rec.Args
	s.mu.Unlock()

	var (
		pid   int
		ticks uint64
		err   error
	)
	spec, ok := s.spec(name)
	if !ok {
		err = fmt.Errorf("start %q (ID %d): %w", name, id, control.ErrUnknownApp)
	} else {
		pid, ticks, err = s.spawn(id, name, args, spec, token)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	a.launching = false
	a.gen++
	a.exited = make(chan struct{})
	if err != nil {
		a.rec.State = control.StateFailed
		a.rec.Pid, a.rec.StartTicks = 0, 0
		a.rec.ExitCode = -1
		a.rec.ExitInfo = err.Error()
		close(a.exited)
		s.ctr.launchFailures.Add(1)
		s.log.Warn("app failed to start", "id", id, "name", name, "err", err)
		_ = s.saveLocked()
		return err
	}
	a.child = true
	a.rec.Pid, a.rec.StartTicks = pid, ticks
	a.rec.StartedAt = time.Now()
	if ticks != 0 {
		a.rec.StartedAt = s.proc.startTime(ticks)
	}
	// ExitCode/ExitInfo keep describing the previous run, if any.
	a.rec.State = control.StateRunning
	s.ctr.launches.Add(1)
	s.log.Info("app started", "id", id, "name", name, "pid", pid, "args", args)
	return s.saveLocked()
}

// spawn execs the program: own process group, stdin /dev/null, stdout and
// stderr appended straight to the log file (no pipe, so the app survives
// viscript), environment plus the signal variables.
func (s *Supervisor) spawn(id uint64, name string, args []string, spec AppSpec, token string) (int, uint64, error) {
	path := spec.Path
	if path == "" || path == "skywire" {
		path = s.cfg.SelfPath
	}
	logf, err := os.OpenFile(s.logPath(id, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, 0, fmt.Errorf("start %q (ID %d): open log: %w", name, id, err)
	}
	defer logf.Close() // the child has its own copy

	cred, err := credential(spec.User)
	if err != nil {
		return 0, 0, fmt.Errorf("start %q (ID %d): apps.%s.user: %w: %w", name, id, name, ErrStartFailed, err)
	}
	prog, argv := path, args
	if !spec.Limits.IsZero() {
		// The shim (this binary) sets the limits in the child, then
		// execs the program: same pid, same start time.
		if s.cfg.SelfPath == "" {
			return 0, 0, fmt.Errorf("start %q (ID %d): apps.%s.limits: %w: no shim binary (SelfPath)", name, id, name, ErrStartFailed)
		}
		shim, err := ShimArgs(spec.Limits, path, args)
		if err != nil {
			return 0, 0, fmt.Errorf("start %q (ID %d): apps.%s.limits: %w: %w", name, id, name, ErrStartFailed, err)
		}
		prog, argv = s.cfg.SelfPath, shim
	}
	cmd := exec.Command(prog, argv...)
	cmd.Dir = spec.Dir
	cmd.Env = os.Environ()
	if s.cfg.ConfigPath != "" {
		// The config viscript runs with is the config its apps get (an
		// app's env table may still say otherwise).
		cmd.Env = append(cmd.Env, EnvConfig+"="+s.cfg.ConfigPath)
	}
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+spec.Env[k])
	}
	cmd.Env = append(cmd.Env,
		appsignal.EnvAddr+"="+s.SignalAddr(),
		appsignal.EnvAppID+"="+strconv.FormatUint(id, 10),
		appsignal.EnvToken+"="+token,
		appsignal.EnvName+"="+name,
	)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("start %q (ID %d): %w: %w", name, id, ErrStartFailed, err)
	}
	pid := cmd.Process.Pid
	// The child stays a zombie until we wait4 it, so its /proc entry and
	// its pid cannot go away or be reused before this read.
	ticks, err := s.proc.startTicks(pid)
	if err != nil {
		s.log.Warn("cannot read start time of new app", "id", id, "pid", pid, "err", err)
	}
	// We reap with wait4 ourselves (see checkExit); drop os/exec's handle.
	_ = cmd.Process.Release()
	return pid, ticks, nil
}

// exitStatus is how a run ended.
type exitStatus struct {
	code   int // -1 if killed or unknown
	info   string
	failed bool
}

func fromWaitStatus(ws syscall.WaitStatus) exitStatus {
	switch {
	case ws.Exited():
		c := ws.ExitStatus()
		return exitStatus{code: c, info: "exit status " + strconv.Itoa(c), failed: c != 0}
	case ws.Signaled():
		return exitStatus{code: -1, info: "killed by " + unix.SignalName(ws.Signal()), failed: true}
	default:
		return exitStatus{code: -1, info: "ended: wait status " + strconv.Itoa(int(ws)), failed: true}
	}
}

// checkExit finds out whether a's current process has ended and, if so,
// records it (once). Children are reaped with wait4(WNOHANG); adopted
// processes are checked in /proc (pid alive and start time unchanged).
func (s *Supervisor) checkExit(a *app) {
	s.reapMu.Lock()
	defer s.reapMu.Unlock()
	s.mu.Lock()
	state, pid, ticks, child, gen, launching := a.rec.State, a.rec.Pid, a.rec.StartTicks, a.child, a.gen, a.launching
	s.mu.Unlock()
	if (state != control.StateRunning && state != control.StateStopping) || pid <= 0 || launching {
		return
	}
	var ex exitStatus
	if child {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		switch {
		case err == syscall.EINTR:
			return
		case err == syscall.ECHILD:
			// Reaped by someone else in this process: ask /proc.
			if s.proc.check(pid, ticks) == procAlive {
				return
			}
			ex = exitStatus{code: -1, info: "exited (status collected elsewhere)", failed: true}
		case err != nil:
			s.log.Warn("wait4 failed", "id", a.rec.ID, "pid", pid, "err", err)
			return
		case wpid == 0:
			return
		default:
			ex = fromWaitStatus(ws)
		}
	} else {
		if s.proc.check(pid, ticks) == procAlive {
			return
		}
		// Not our child: the exit status went to its real parent.
		ex = exitStatus{code: -1, info: "exited (adopted process; status unknown)", failed: true}
	}
	s.handleExit(a, gen, ex)
}

// wantsRestart applies a restart policy to how a run ended.
func wantsRestart(policy string, ex exitStatus) bool {
	switch policy {
	case RestartAlways:
		return true
	case RestartOnFailure:
		return ex.failed
	default:
		return false
	}
}

// nextBackoff returns the delay before this restart and the one after it.
func nextBackoff(cur time.Duration, ran time.Duration) (delay, next time.Duration) {
	if cur < backoffMin || ran >= stableRun {
		cur = backoffMin
	}
	next = cur * 2
	if next > backoffMax {
		next = backoffMax
	}
	return cur, next
}

// handleExit records the end of run gen and applies the restart policy.
func (s *Supervisor) handleExit(a *app, gen uint64, ex exitStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.gen != gen || (a.rec.State != control.StateRunning && a.rec.State != control.StateStopping) {
		return
	}
	ran := time.Since(a.rec.StartedAt)
	a.rec.ExitCode, a.rec.ExitInfo = ex.code, ex.info
	switch {
	case a.rec.State == control.StateStopping:
		s.ctr.exitsStopped.Add(1)
	case ex.failed:
		s.ctr.exitsFailed.Add(1)
	default:
		s.ctr.exitsOK.Add(1)
	}
	close(a.exited)
	policy := RestartNo
	if spec, ok := s.spec(a.rec.Name); ok {
		policy = spec.Restart
	}
	restart := a.rec.State == control.StateRunning && !a.rec.NoRestart && !s.closing && wantsRestart(policy, ex)
	if restart {
		var delay time.Duration
		delay, a.backoff = nextBackoff(a.backoff, ran)
		a.rec.State = control.StateBackoff
		a.gen++
		gen := a.gen // read now, under s.mu: the goroutine runs after it is released
		s.wg.Go(func() { s.restartAfter(a, gen, delay) })
		s.log.Info("app exited; restarting", "id", a.rec.ID, "name", a.rec.Name,
			"pid", a.rec.Pid, "exit", ex.info, "delay", delay)
	} else {
		a.rec.State = control.StateExited
		s.log.Info("app exited", "id", a.rec.ID, "name", a.rec.Name, "pid", a.rec.Pid, "exit", ex.info)
	}
	_ = s.saveLocked()
}

// restartAfter is the policy restart of a after delay, unless something
// (shutdown, manual restart, Close) happened meanwhile.
func (s *Supervisor) restartAfter(a *app, gen uint64, delay time.Duration) {
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.done:
		return
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	s.mu.Lock()
	ok := a.gen == gen && a.rec.State == control.StateBackoff && !a.rec.NoRestart && !s.closing
	if ok {
		a.rec.Restarts++
		s.ctr.policyRestarts.Add(1)
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	if err := s.launch(a); err != nil {
		s.log.Warn("policy restart failed", "id", a.rec.ID, "err", err)
	}
}

// monitorLoop reaps children (on SIGCHLD, and every tick in case a
// notification was coalesced away), watches adopted processes in /proc and
// rotates logs, until Close.
func (s *Supervisor) monitorLoop() {
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	var watch []*app
	for n := 0; ; {
		tick := false
		select {
		case <-s.done:
			return
		case <-s.sigchld:
		case <-t.C:
			tick = true
			n++
		}
		watch = watch[:0]
		s.mu.Lock()
		for _, a := range s.apps {
			st := a.rec.State
			if (st == control.StateRunning || st == control.StateStopping) && (a.child || tick) {
				watch = append(watch, a)
			}
		}
		s.mu.Unlock()
		for _, a := range watch {
			s.checkExit(a)
		}
		clear(watch)
		if tick && n%rotateEvery == 0 {
			s.rotateLogs()
		}
	}
}

// signalProcess sends sig to the app's process group, or to the process
// alone if it left its group. For an adopted process it first checks that
// the pid still is that process. It reports false if nothing was there.
func (s *Supervisor) signalProcess(pid int, ticks uint64, child bool, sig syscall.Signal) bool {
	if pid <= 0 {
		return false
	}
	if !child && s.proc.check(pid, ticks) != procAlive {
		return false
	}
	if err := syscall.Kill(-pid, sig); err == nil {
		return true
	}
	return syscall.Kill(pid, sig) == nil
}
