package viscript

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/skywire-mesh/skywire/viscript/control"
)

// stateVersion is the apps.json format version.
const stateVersion = 1

// maxStateBytes bounds the app table file we are willing to read.
const maxStateBytes = 64 << 20

// errBadState marks an app table that cannot be used; the file is moved aside.
var errBadState = errors.New("invalid app table")

// appRecord is what apps.json keeps for one app (one sequence ID).
type appRecord struct {
	ID     uint64   `json:"id"`
	Name   string   `json:"name"`
	Args   []string `json:"args"`
	Daemon bool     `json:"daemon"`
	Owner  string   `json:"owner,omitempty"`
	// Pid and StartTicks (field 22 of /proc/PID/stat, clock ticks since
	// boot) identify the running process; both must match to adopt it.
	Pid        int              `json:"pid"`
	StartTicks uint64           `json:"start_ticks"`
	StartedAt  time.Time        `json:"started_at"`
	Token      string           `json:"token"`
	State      control.AppState `json:"state"`
	Restarts   int              `json:"restarts"`
	ExitCode   int              `json:"exit_code"`
	ExitInfo   string           `json:"exit_info,omitempty"`
	// NoRestart is set by an explicit shutdown: the restart policy no
	// longer applies until the app is restarted by hand.
	NoRestart bool `json:"no_restart,omitempty"`
	// Signal is set once the app's signal client has connected: after a
	// viscript restart, shutdown waits briefly for it to reconnect.
	Signal bool `json:"signal,omitempty"`
}

// live reports whether the app has a process, or will have one again
// (running, stopping, or waiting to be restarted).
func (r *appRecord) live() bool {
	switch r.State {
	case control.StateRunning, control.StateStopping, control.StateBackoff:
		return true
	}
	return false
}

// stateFile is the whole of apps.json.
type stateFile struct {
	Version int         `json:"version"`
	NextID  uint64      `json:"next_id"`
	Apps    []appRecord `json:"apps"`
}

// parseState decodes and validates apps.json. It never panics on any input.
func parseState(data []byte) (stateFile, error) {
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return stateFile{}, fmt.Errorf("%w: %w", errBadState, err)
	}
	if st.Version != stateVersion {
		return stateFile{}, fmt.Errorf("%w: version %d, want %d", errBadState, st.Version, stateVersion)
	}
	seen := make(map[uint64]bool, len(st.Apps))
	for i, r := range st.Apps {
		switch {
		case r.ID == 0 || r.ID == math.MaxUint64:
			return stateFile{}, fmt.Errorf("%w: app %d has ID %d", errBadState, i, r.ID)
		case seen[r.ID]:
			return stateFile{}, fmt.Errorf("%w: duplicate ID %d", errBadState, r.ID)
		case r.Pid < 0:
			return stateFile{}, fmt.Errorf("%w: app %d has pid %d", errBadState, r.ID, r.Pid)
		case !validName(r.Name):
			return stateFile{}, fmt.Errorf("%w: app %d has name %q", errBadState, r.ID, r.Name)
		}
		switch r.State {
		case control.StateRunning, control.StateStopping, control.StateBackoff,
			control.StateExited, control.StateFailed:
		default:
			return stateFile{}, fmt.Errorf("%w: app %d has state %q", errBadState, r.ID, r.State)
		}
		seen[r.ID] = true
		// next_id must stay above every ID ever handed out.
		if r.ID >= st.NextID {
			st.NextID = r.ID + 1
		}
	}
	if st.NextID == 0 {
		st.NextID = 1
	}
	sort.Slice(st.Apps, func(i, j int) bool { return st.Apps[i].ID < st.Apps[j].ID })
	return st, nil
}

// validName reports whether name can be part of a log file name.
func validName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 255 {
		return false
	}
	for _, c := range name {
		if c == '/' || c == 0 {
			return false
		}
	}
	return true
}

// loadState reads path. A missing file is an empty table; a corrupt one is
// moved aside to path.corrupt-UNIXTIME and reported through warn.
func loadState(path string, warn func(msg string, args ...any)) (stateFile, error) {
	empty := stateFile{Version: stateVersion, NextID: 1}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return empty, nil
	}
	if err != nil {
		return stateFile{}, fmt.Errorf("load app table: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err != nil {
		return stateFile{}, fmt.Errorf("load app table: %w", err)
	}
	var st stateFile
	if len(data) > maxStateBytes {
		err = fmt.Errorf("%w: larger than %d bytes", errBadState, maxStateBytes)
	} else {
		st, err = parseState(data)
	}
	if err != nil {
		aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
		if rerr := os.Rename(path, aside); rerr != nil {
			return stateFile{}, fmt.Errorf("move corrupt app table aside: %w", rerr)
		}
		warn("app table is corrupt; moved aside, starting with an empty table",
			"path", path, "moved_to", aside, "err", err)
		return empty, nil
	}
	return st, nil
}

// writeState replaces path atomically: temp file, fsync, rename, fsync dir.
func writeState(path string, st stateFile) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode app table: %w", err)
	}
	// One writer at a time (callers hold the supervisor's mutex and the
	// state directory lock), so a fixed temporary name is safe.
	dir := filepath.Dir(path)
	tmpName := path + ".tmp"
	tmp, err := os.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write app table: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("write app table: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync app table: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write app table: %w", err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("replace app table: %w", err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		// Best effort: makes the rename durable on most file systems.
		_ = d.Sync()
		d.Close()
	}
	return nil
}
