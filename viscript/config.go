package viscript

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config is viscript's part of skywire.toml (the [viscript] table) plus the
// app catalog (the [apps.NAME] tables). The command layer fills it; this
// package never reads files by itself.
type Config struct {
	// StateDir holds the app table, sockets and captured logs.
	StateDir string `toml:"state_dir"`
	// ControlTCP, if set, also serves the control protocol on this TCP
	// address; every request must then carry ControlToken.
	ControlTCP   string `toml:"control_tcp"`
	ControlToken string `toml:"control_token"`
	// LogMaxBytes rotates an app's log when it grows past this size;
	// LogKeep rotated files are kept.
	LogMaxBytes int64 `toml:"log_max_bytes"`
	LogKeep     int   `toml:"log_keep"`
	// UsageWindow is how long Usage samples CPU time (default 200ms).
	UsageWindow time.Duration `toml:"usage_window"`
	// SelfPath is the program started for catalog entries whose path is
	// empty or "skywire" (set by the command layer to os.Executable()).
	SelfPath string `toml:"-"`
	// Apps is the catalog, by name.
	Apps map[string]AppSpec `toml:"-"`
}

// AppSpec is one [apps.NAME] table.
type AppSpec struct {
	Daemon      bool              `toml:"daemon"`
	Desc        string            `toml:"desc"`
	Path        string            `toml:"path"` // program; empty = this binary
	DefaultArgs []string          `toml:"default_args"`
	Help        string            `toml:"help"`
	Env         map[string]string `toml:"env"`
	Dir         string            `toml:"dir"`
	Restart     string            `toml:"restart"` // "no" (default), "on-failure", "always"
	StopTimeout time.Duration     `toml:"stop_timeout"`
}

// Restart policies.
const (
	RestartNo        = "no"
	RestartOnFailure = "on-failure"
	RestartAlways    = "always"
)

// Defaults.
const (
	DefaultLogMaxBytes = 10 << 20
	DefaultLogKeep     = 3
	DefaultStopTimeout = 5 * time.Second
)

// DefaultUsageWindow is how long Usage samples CPU time.
const DefaultUsageWindow = 200 * time.Millisecond

// withDefaults returns a copy of c with zero values replaced by defaults.
// The catalog map is copied too, so the caller may keep changing its own.
func (c Config) withDefaults() Config {
	if c.LogMaxBytes <= 0 {
		c.LogMaxBytes = DefaultLogMaxBytes
	}
	if c.LogKeep <= 0 {
		c.LogKeep = DefaultLogKeep
	}
	if c.UsageWindow <= 0 {
		c.UsageWindow = DefaultUsageWindow
	}
	apps := make(map[string]AppSpec, len(c.Apps))
	for name, spec := range c.Apps {
		if spec.StopTimeout <= 0 {
			spec.StopTimeout = DefaultStopTimeout
		}
		if spec.Restart == "" {
			spec.Restart = RestartNo
		}
		apps[name] = spec
	}
	c.Apps = apps
	return c
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	if c.StateDir == "" {
		return fmt.Errorf("viscript.state_dir: %w", errEmpty)
	}
	if c.ControlTCP != "" && c.ControlToken == "" {
		return errors.New("viscript.control_token: required when viscript.control_tcp is set")
	}
	if c.LogMaxBytes < 0 {
		return fmt.Errorf("viscript.log_max_bytes: must not be negative, got %d", c.LogMaxBytes)
	}
	if c.LogKeep < 0 {
		return fmt.Errorf("viscript.log_keep: must not be negative, got %d", c.LogKeep)
	}
	for name, spec := range c.Apps {
		if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
			return fmt.Errorf("apps.%q: invalid app name", name)
		}
		switch spec.Restart {
		case "", RestartNo, RestartOnFailure, RestartAlways:
		default:
			return fmt.Errorf("apps.%s.restart: %q is not one of %q, %q, %q",
				name, spec.Restart, RestartNo, RestartOnFailure, RestartAlways)
		}
		for k := range spec.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return fmt.Errorf("apps.%s.env: invalid variable name %q", name, k)
			}
		}
		if spec.StopTimeout < 0 {
			return fmt.Errorf("apps.%s.stop_timeout: must not be negative", name)
		}
		if (spec.Path == "" || spec.Path == "skywire") && c.SelfPath == "" {
			return fmt.Errorf("apps.%s.path: empty (this binary) but SelfPath is not set", name)
		}
	}
	return nil
}

var errEmpty = errors.New("must not be empty")
