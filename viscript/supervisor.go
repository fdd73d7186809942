// Package viscript is skywire's app supervisor: it launches the apps of the
// catalog, gives each a sequence ID that is never reused, captures their
// output, restarts them by policy, stops them in steps (signal protocol,
// SIGTERM, SIGKILL), measures them through /proc and re-adopts what still
// runs after viscript itself restarts. It serves the control protocol for
// shells and the signal protocol for apps (see Run).
package viscript

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	ossignal "os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skywire-mesh/skywire/appsignal"
	"github.com/skywire-mesh/skywire/viscript/control"
	"github.com/skywire-mesh/skywire/viscript/remote"
)

// Errors of this package (control's errors are returned too, wrapped).
var (
	// ErrServerRunning: another live viscript holds the state directory.
	ErrServerRunning = errors.New("a viscript server is already running for this state directory")
	// ErrStartFailed: the app's program could not be executed (the
	// control protocol's error, so its code travels to shells).
	ErrStartFailed = control.ErrStartFailed
	// ErrClosed: the supervisor has been closed.
	ErrClosed = errors.New("viscript supervisor is closed")
)

// File names inside the state directory.
const (
	lockFile    = "viscript.lock"
	stateName   = "apps.json"
	signalSock  = "signal.sock"
	controlSock = "control.sock"
	logsDir     = "logs"
)

// Timing. Variables so tests of the policy can be read against them.
const (
	tickInterval      = 500 * time.Millisecond // adopted: /proc check; children: fallback wait4
	rotateEvery       = 2                      // log sizes every 2 ticks (~1s)
	maxFinished       = 1000                   // exited/failed apps kept in the table
	backoffMin        = 100 * time.Millisecond
	backoffMax        = 30 * time.Second
	stableRun         = 10 * time.Second
	killWait          = 5 * time.Second // after SIGKILL
	pingMax           = 2 * time.Second
	reportedUsageWait = 300 * time.Millisecond
	stopPoll          = 20 * time.Millisecond
	signalGrace       = time.Second // wait after a failed signal shutdown request
)

// DefaultStateDir is $SKYWIRE_STATE_DIR, else /var/lib/skywire for root,
// else $XDG_STATE_HOME/skywire, else ~/.local/state/skywire.
func DefaultStateDir() string {
	if d := os.Getenv("SKYWIRE_STATE_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/skywire"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "skywire")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return filepath.Join(os.TempDir(), "skywire-state-"+strconv.Itoa(os.Getuid()))
	}
	return filepath.Join(home, ".local", "state", "skywire")
}

// Supervisor runs the apps of one state directory. It implements
// control.Controller. Create it with New; Run serves it; Close (or the end
// of Run) stops non-daemon apps and releases the state directory.
type Supervisor struct {
	cfg  Config // immutable after New, defaults applied
	log  *slog.Logger
	proc procReader
	lock *os.File // holds the flock on STATE/viscript.lock
	sig  *appsignal.Server
	// remote serves the control protocol on the mesh to Config.Admins
	// (nil without Config.NodeSocket); Run runs it, Reload updates its
	// admins.
	remote *remote.Server

	catMu   sync.RWMutex       // guards catalog; never held while taking mu
	catalog map[string]AppSpec // by name, defaults applied; Reload replaces it

	opened    time.Time      // when New returned: adopted apps reconnect after it
	done      chan struct{}  // closed by Close: background loops exit
	sigchld   chan os.Signal // SIGCHLD notifications for the monitor loop
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	// reapMu serialises "has it exited?" checks so a process's exit is
	// collected (wait4) and handled exactly once.
	reapMu sync.Mutex

	ctr counters // Stats

	mu      sync.Mutex // guards the fields below
	nextID  uint64
	apps    map[uint64]*app
	closing bool // no new launches
}

// app is one sequence ID.
type app struct {
	// opMu serialises life-cycle operations on this app (launch,
	// shutdown, restart). Lock order: opMu, then Supervisor.mu.
	opMu sync.Mutex

	// Guarded by Supervisor.mu:
	rec       appRecord
	child     bool          // our child (reaped with wait4) vs adopted (watched in /proc)
	exited    chan struct{} // closed when the current process is gone
	gen       uint64        // launch generation; stale exits and restarts compare it
	launching bool          // between token choice and pid known
	backoff   time.Duration // next restart delay
}

// New opens (creating it 0700) the state directory, locks it, loads the
// app table and re-adopts the apps that still run. It starts the
// supervisor's background loop; call Run, or Close when done.
func New(cfg Config, log *slog.Logger) (*Supervisor, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("viscript config: %w", err)
	}
	cfg = cfg.withDefaults()
	abs, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	cfg.StateDir = abs
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, logsDir), 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	if err := os.Chmod(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir permissions: %w", err)
	}
	lock, err := lockStateDir(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	pr, err := newProcReader()
	if err != nil {
		lock.Close()
		return nil, err
	}
	s := &Supervisor{
		cfg:  cfg,
		log:  log,
		proc: pr,
		lock: lock,
		done: make(chan struct{}),
		apps: make(map[uint64]*app),

		catalog: cfg.Apps,
	}
	st, err := loadState(s.path(stateName), log.Warn)
	if err != nil {
		lock.Close()
		return nil, err
	}
	s.nextID = st.NextID
	if cfg.NodeSocket != "" {
		s.remote = remote.NewServer(s, remote.ServerConfig{
			NodeSocket: cfg.NodeSocket,
			Port:       cfg.RemotePort,
			MaxClients: cfg.MaxRemoteClients,
			Admins:     cfg.Admins,
		}, log.With("part", "remote"))
	}
	pending := s.adopt(st.Apps)
	s.sig = appsignal.NewServer(appsignal.ServerConfig{
		Logger:       log.With("part", "signal"),
		Authorize:    s.authorize,
		OnConnect:    s.onConnect,
		OnDisconnect: s.onDisconnect,
		OnEvent:      s.onEvent,
	})
	s.mu.Lock()
	err = s.saveLocked()
	s.mu.Unlock()
	if err != nil {
		s.sig.Close()
		lock.Close()
		return nil, err
	}
	// SIGCHLD wakes the reaper at once; the ticker is the fallback.
	s.sigchld = make(chan os.Signal, 1)
	ossignal.Notify(s.sigchld, syscall.SIGCHLD)
	s.opened = time.Now()
	s.wg.Go(s.monitorLoop)
	for _, a := range pending {
		gen := a.gen // read now, under s.mu: the goroutine runs after it is released
		s.wg.Go(func() { s.restartAfter(a, gen, backoffMin) })
	}
	return s, nil
}

// lockStateDir takes an exclusive, non-blocking flock on STATE/viscript.lock.
// The kernel drops it when the process dies, so a stale file never blocks.
func lockStateDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", path, ErrServerRunning)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// Informational only: who holds it.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// adopt fills the table from the loaded records, re-adopting live processes.
// Called from New before any goroutine runs. It returns the apps that were
// waiting for a policy restart; New schedules them.
func (s *Supervisor) adopt(recs []appRecord) (pending []*app) {
	for _, r := range recs {
		a := &app{rec: r, exited: make(chan struct{}), backoff: backoffMin}
		switch r.State {
		case control.StateRunning, control.StateStopping:
			status := procDead
			if r.Pid > 0 {
				status = s.proc.check(r.Pid, r.StartTicks)
			}
			if status == procAlive {
				a.rec.State = control.StateRunning
				s.log.Info("re-adopted running app", "id", r.ID, "name", r.Name, "pid", r.Pid)
				break
			}
			if status == procReused {
				s.log.Warn("pid of a recorded app now belongs to another process; not adopting",
					"id", r.ID, "name", r.Name, "pid", r.Pid)
			} else {
				s.log.Info("recorded app is no longer running", "id", r.ID, "name", r.Name, "pid", r.Pid)
			}
			a.rec.State = control.StateExited
			a.rec.ExitCode = -1
			a.rec.ExitInfo = "not running after viscript restart"
			close(a.exited)
		case control.StateBackoff:
			// Was waiting for a restart when viscript stopped: restart
			// soon, by the same policy.
			close(a.exited)
			a.gen++
			pending = append(pending, a)
		default:
			close(a.exited)
		}
		s.apps[r.ID] = a
	}
	return pending
}

// Close stops every non-daemon app (daemons keep running for the next
// viscript to adopt), stops the background loops and waits for them, closes
// the signal server and releases the state directory. It is idempotent.
func (s *Supervisor) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Supervisor) close() error {
	s.mu.Lock()
	s.closing = true
	stop := s.liveNonDaemonsLocked("")
	s.mu.Unlock()
	errs := []error{s.stopMany(context.Background(), stop)}
	close(s.done)
	s.wg.Wait()
	ossignal.Stop(s.sigchld)
	if err := s.sig.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close signal server: %w", err))
	}
	s.mu.Lock()
	if err := s.saveLocked(); err != nil {
		errs = append(errs, err)
	}
	s.mu.Unlock()
	if err := s.lock.Close(); err != nil { // releases the flock
		errs = append(errs, fmt.Errorf("release state lock: %w", err))
	}
	return errors.Join(errs...)
}

// liveNonDaemonsLocked returns the IDs of the live apps that are not
// daemons and that owner started ("": whoever started them).
func (s *Supervisor) liveNonDaemonsLocked(owner string) []uint64 {
	var ids []uint64
	for id, a := range s.apps {
		if a.rec.live() && !a.rec.Daemon && (owner == "" || a.rec.Owner == owner) {
			ids = append(ids, id)
		}
	}
	return ids
}

// stopMany shuts the given apps down in parallel and waits.
func (s *Supervisor) stopMany(ctx context.Context, ids []uint64) error {
	var (
		wg   sync.WaitGroup
		emu  sync.Mutex
		errs []error
	)
	for _, id := range ids {
		wg.Go(func() {
			if _, err := s.Shutdown(ctx, id); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// SignalAddr is the address apps connect to, as given in appsignal.EnvAddr.
func (s *Supervisor) SignalAddr() string { return "unix:" + s.path(signalSock) }

// ControlPath is the control unix socket's path.
func (s *Supervisor) ControlPath() string { return s.path(controlSock) }

func (s *Supervisor) path(name string) string { return filepath.Join(s.cfg.StateDir, name) }

// saveLocked writes the app table. Called with s.mu held: the one I/O the
// lock covers, so the file always matches memory in order.
func (s *Supervisor) saveLocked() error {
	s.pruneLocked()
	st := stateFile{Version: stateVersion, NextID: s.nextID, Apps: make([]appRecord, 0, len(s.apps))}
	for _, a := range s.apps {
		if a.launching && a.rec.Pid == 0 && a.rec.State == control.StateRunning {
			continue // not started yet; next_id already covers its ID
		}
		st.Apps = append(st.Apps, a.rec)
	}
	sortRecords(st.Apps)
	if err := writeState(s.path(stateName), st); err != nil {
		s.log.Error("cannot save app table", "err", err)
		return err
	}
	return nil
}

// pruneLocked forgets the oldest exited or failed apps beyond maxFinished,
// so the table (rewritten on every change) stays bounded. Their IDs stay
// used: next_id only grows. Their log files are left in place.
func (s *Supervisor) pruneLocked() {
	var finished []uint64
	for id, a := range s.apps {
		if st := a.rec.State; (st == control.StateExited || st == control.StateFailed) && !a.launching {
			finished = append(finished, id)
		}
	}
	if len(finished) <= maxFinished {
		return
	}
	slices.Sort(finished)
	for _, id := range finished[:len(finished)-maxFinished] {
		delete(s.apps, id)
	}
}

// signal server callbacks.

// authorize accepts a hello only from the current launch of a running app.
func (s *Supervisor) authorize(h appsignal.Hello) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[h.AppID]
	if !ok {
		return fmt.Errorf("hello from app %d: %w", h.AppID, control.ErrNoSuchApp)
	}
	if !tokenEqual(a.rec.Token, h.Token) {
		return fmt.Errorf("hello from app %d: token mismatch: %w", h.AppID, control.ErrUnauthorized)
	}
	if a.rec.State != control.StateRunning && a.rec.State != control.StateStopping && !a.launching {
		return fmt.Errorf("hello from app %d (%s): %w", h.AppID, a.rec.State, control.ErrNotRunning)
	}
	return nil
}

func (s *Supervisor) onConnect(h appsignal.Hello) {
	s.log.Info("app connected", "id", h.AppID, "name", h.Name, "pid", h.Pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.apps[h.AppID]; a != nil && !a.rec.Signal {
		a.rec.Signal = true
		if err := s.saveLocked(); err != nil {
			s.log.Warn("save app table", "err", err)
		}
	}
}

func (s *Supervisor) onDisconnect(id uint64) {
	s.log.Info("app disconnected", "id", id)
}

func (s *Supervisor) onEvent(id uint64, e appsignal.Event) {
	s.log.Debug("app event", "id", id, "event", e)
}
