// Package control is the contract between viscript's supervisor (package
// viscript, which runs apps) and whatever drives it: the interactive shell in
// the same process, or a shell or script in another process talking over the
// control socket. Controller is implemented by *viscript.Supervisor and by
// *control.Client; the shell only ever sees a Controller.
package control

import (
	"context"
	"errors"
	"time"
)

// AppState is the life-cycle state of one launched app.
type AppState string

const (
	StateRunning  AppState = "running"  // process alive
	StateStopping AppState = "stopping" // shutdown in progress
	StateBackoff  AppState = "backoff"  // exited; waiting to be restarted by policy
	StateExited   AppState = "exited"   // exited and will not be restarted
	StateFailed   AppState = "failed"   // could not be started
)

// AppInfo describes one launched app (one sequence ID).
type AppInfo struct {
	ID        uint64    `msgpack:"id" json:"id"`
	Name      string    `msgpack:"name" json:"name"`
	Pid       int       `msgpack:"pid" json:"pid"`
	State     AppState  `msgpack:"state" json:"state"`
	Daemon    bool      `msgpack:"daemon" json:"daemon"`
	Args      []string  `msgpack:"args" json:"args"`
	StartedAt time.Time `msgpack:"started_at" json:"started_at"`
	UptimeS   float64   `msgpack:"uptime_s" json:"uptime_s"`   // 0 unless running
	Connected bool      `msgpack:"connected" json:"connected"` // its signal client is connected
	Restarts  int       `msgpack:"restarts" json:"restarts"`
	ExitCode  int       `msgpack:"exit_code" json:"exit_code"` // -1 if unknown or killed by a signal
	ExitInfo  string    `msgpack:"exit_info" json:"exit_info"` // e.g. "killed by SIGKILL", "exit status 2"
}

// Usage is what `res_usage` shows: read from /proc for any process.
type Usage struct {
	ID         uint64  `msgpack:"id" json:"id"`
	Pid        int     `msgpack:"pid" json:"pid"`
	CPUPercent float64 `msgpack:"cpu_percent" json:"cpu_percent"` // over the sampling window; 100 = one core
	RSSBytes   uint64  `msgpack:"rss_bytes" json:"rss_bytes"`
	Threads    int     `msgpack:"threads" json:"threads"`
	FDs        int     `msgpack:"fds" json:"fds"`
	ReadBytes  uint64  `msgpack:"read_bytes" json:"read_bytes"`
	WriteBytes uint64  `msgpack:"write_bytes" json:"write_bytes"`
	UptimeS    float64 `msgpack:"uptime_s" json:"uptime_s"`
	// Reported by the app's signal client when it is connected (else empty).
	Reported map[string]uint64 `msgpack:"reported,omitempty" json:"reported,omitempty"`
}

// CatalogEntry is one `[apps.NAME]` table of skywire.toml as the shell shows it.
type CatalogEntry struct {
	Name        string   `msgpack:"name" json:"name"`
	Desc        string   `msgpack:"desc" json:"desc"`
	Path        string   `msgpack:"path" json:"path"`
	Daemon      bool     `msgpack:"daemon" json:"daemon"`
	DefaultArgs []string `msgpack:"default_args" json:"default_args"`
	Help        string   `msgpack:"help" json:"help"`
	Restart     string   `msgpack:"restart" json:"restart"`
	Autostart   bool     `msgpack:"autostart" json:"autostart"`
	After       []string `msgpack:"after" json:"after"`
	Instances   int      `msgpack:"instances" json:"instances"`
	// StartWindowMS is start_secs in milliseconds (0: the shell's default).
	StartWindowMS int64  `msgpack:"start_window_ms" json:"start_window_ms"`
	User          string `msgpack:"user" json:"user"`
	// Limits in text: "nofile=1024 memory=256M" ("" for none).
	Limits string `msgpack:"limits" json:"limits"`
}

// StopStep says what ended an app in Shutdown.
type StopStep string

const (
	StopSignal  StopStep = "signal"  // it exited after the signal-protocol shutdown request
	StopSIGTERM StopStep = "sigterm" // it exited after SIGTERM to its process group
	StopSIGKILL StopStep = "sigkill" // it had to be killed
	StopAlready StopStep = "already-exited"
)

// StopResult is the answer to Shutdown.
type StopResult struct {
	ID   uint64   `msgpack:"id" json:"id"`
	Step StopStep `msgpack:"step" json:"step"`
}

// StartRequest asks to launch a catalog app.
type StartRequest struct {
	Name string `msgpack:"name"`
	// Args are appended to the catalog's default_args, or replace them
	// with Replace. UseDefault (an older spelling of "no Args") ignores
	// Args.
	Args       []string `msgpack:"args"`
	UseDefault bool     `msgpack:"use_default"`
	Replace    bool     `msgpack:"replace"`
	// Force starts another copy even if the catalog's instances (default
	// 1) are already running.
	Force bool `msgpack:"force"`
	// Owner is the control session that started the app. A non-daemon app
	// is stopped when its owner session ends (see Controller.ReleaseOwner).
	Owner string `msgpack:"owner"`
}

// ReloadResult says what Reload changed in the catalog, by app name.
type ReloadResult struct {
	Added   []string `msgpack:"added" json:"added"`
	Removed []string `msgpack:"removed" json:"removed"`
	Changed []string `msgpack:"changed" json:"changed"`
	// AdminsAdded and AdminsRemoved are the remote-control admin keys
	// ([viscript] admins) the reload added and removed.
	AdminsAdded   []string `msgpack:"admins_added,omitempty" json:"admins_added,omitempty"`
	AdminsRemoved []string `msgpack:"admins_removed,omitempty" json:"admins_removed,omitempty"`
}

// LogChunk is a piece of an app's captured stdout/stderr.
type LogChunk struct {
	Data []byte `msgpack:"data"`
	// Next is the offset to ask for to continue (follow mode).
	Next int64 `msgpack:"next"`
}

// Controller is everything the shell can ask of a running viscript.
// Every method honours ctx's deadline.
type Controller interface {
	Catalog(ctx context.Context) ([]CatalogEntry, error)
	Start(ctx context.Context, req StartRequest) (AppInfo, error)
	List(ctx context.Context) ([]AppInfo, error)
	// Ping sends a signal ping and returns the round-trip time. It fails
	// with ErrNotSignalClient if the app never connected, ErrTimeout if no
	// pong came within the deadline (at most 2 s).
	Ping(ctx context.Context, id uint64) (time.Duration, error)
	Usage(ctx context.Context, id uint64) (Usage, error)
	Shutdown(ctx context.Context, id uint64) (StopResult, error)
	Restart(ctx context.Context, id uint64) (AppInfo, error)
	// Logs returns captured output from offset; offset < 0 means the last
	// -offset bytes. max bounds the answer size.
	Logs(ctx context.Context, id uint64, offset int64, max int) (LogChunk, error)
	// ReleaseOwner stops every non-daemon app started by owner.
	ReleaseOwner(ctx context.Context, owner string) error
	// Remove forgets an app that is no longer running (exited or failed);
	// a live one is refused with ErrAppRunning.
	Remove(ctx context.Context, id uint64) error
	// Reload re-reads the catalog. Running apps keep running; a changed
	// entry applies from their next start or restart.
	Reload(ctx context.Context) (ReloadResult, error)
}

// Errors every Controller returns (wrapped with detail); the control
// protocol carries them as codes so errors.Is works across the socket.
var (
	ErrNoSuchApp       = errors.New("no app with that ID")
	ErrUnknownApp      = errors.New("no such app in the catalog")
	ErrNotSignalClient = errors.New("app is not connected as a signal client")
	ErrTimeout         = errors.New("timed out")
	ErrNotRunning      = errors.New("app is not running")
	ErrBadRequest      = errors.New("bad request")
	ErrUnauthorized    = errors.New("unauthorized")
	// ErrAlreadyRunning: Start without Force of an app whose instances
	// are all running.
	ErrAlreadyRunning = errors.New("app is already running")
	// ErrAppRunning: Remove of an app that is still live.
	ErrAppRunning = errors.New("app is still running")
	// ErrNotReady: an app Start is After did not answer a signal ping in
	// time (or is not running).
	ErrNotReady = errors.New("app it starts after is not ready")
	// ErrStartFailed: the program could not be executed or exited at once.
	ErrStartFailed = errors.New("app failed to start")
)
