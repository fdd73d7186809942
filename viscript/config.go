package viscript

import (
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skywire-mesh/skywire/internal/webguard"
	"github.com/skywire-mesh/skywire/keys"
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
	// Web, if set, serves the dashboard (package viscript/web) on this
	// HOST:PORT with `viscript --serve`. WebToken is its login: required
	// when Web is not a loopback address, optional otherwise.
	Web      string `toml:"web"`
	WebToken string `toml:"web_token"`
	// LogMaxBytes rotates an app's log when it grows past this size;
	// LogKeep rotated files are kept.
	LogMaxBytes int64 `toml:"log_max_bytes"`
	LogKeep     int   `toml:"log_keep"`
	// UsageWindow is how long Usage samples CPU time (default 200ms).
	UsageWindow time.Duration `toml:"usage_window"`
	// Metrics, if set, is the host:port where `viscript --serve` (or an
	// interactive shell that runs the launcher itself, no server being
	// up) serves
	// Prometheus metrics (docs/metrics.md); the command layer serves them.
	Metrics string `toml:"metrics"`
	// SelfPath is the program started for catalog entries whose path is
	// empty or "skywire" (set by the command layer to os.Executable()).
	SelfPath string `toml:"-"`
	// ConfigPath, if set, is the absolute path of the config file viscript
	// runs with. Every app gets it as $SKYWIRE_CONFIG, so a skywire role
	// started by viscript reads the same file (not whatever its own search
	// would find first).
	ConfigPath string `toml:"-"`
	// Autostart makes Run start the catalog's autostart apps (the command
	// layer sets it for `viscript --serve`).
	Autostart bool `toml:"-"`
	// LoadCatalog, if set, re-reads the catalog for Reload.
	LoadCatalog func() (map[string]AppSpec, error) `toml:"-"`
	// Apps is the catalog, by name.
	Apps map[string]AppSpec `toml:"-"`

	// Admins are the node keys that may drive this viscript over the
	// mesh (viscript/remote): `skywire viscript --node pk:…` on their
	// nodes. The caller's key is the one of the stream's session, never
	// a field of a message. Empty (the default): no mesh port.
	Admins []keys.PublicKey `toml:"admins"`
	// Node is the node profile ("" is [node], "NAME" is [nodes.NAME])
	// whose app socket remote control uses: `viscript --serve` registers
	// its mesh port there, and the shell's --node and connect dial from
	// it.
	Node string `toml:"node"`
	// RemotePort is the mesh port of remote control (0: 8, the same on
	// every node).
	RemotePort uint16 `toml:"remote_port"`
	// MaxRemoteClients caps the admins' connections served at once (0:
	// 16).
	MaxRemoteClients int `toml:"max_remote_clients"`
	// NodeSocket is Node's app socket, resolved by the command layer.
	// When set, Run serves remote control to Admins.
	NodeSocket string `toml:"-"`
	// LoadAdmins, if set, re-reads Admins for Reload.
	LoadAdmins func() ([]keys.PublicKey, error) `toml:"-"`
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
	// Autostart: `viscript --serve` starts the app (in After order) unless
	// it already runs.
	Autostart bool `toml:"autostart"`
	// After names catalog apps this one starts after: Start waits until a
	// running instance of each answers a signal ping, for at most
	// AfterTimeout.
	After        []string      `toml:"after"`
	AfterTimeout time.Duration `toml:"after_timeout"`
	// Instances is how many copies may run at once (0 means 1); more need
	// StartRequest.Force.
	Instances int `toml:"instances"`
	// StartWindow is how long the shell's start watches a new app: a failing
	// exit within it is a failed start (0: the shell's default, 1s).
	StartWindow time.Duration `toml:"start_secs"`
	// User, if set, is the account the app runs as (viscript must run as
	// root to switch to it).
	User string `toml:"user"`
	// Limits are resource limits applied in the app's process.
	Limits Limits `toml:"limits"`
}

// Limits is the limits = { ... } table of an app: setrlimit(2) values set
// in the child before the program runs (through the re-exec shim, see
// ShimArgs).
type Limits struct {
	// NoFile is RLIMIT_NOFILE (soft and hard): open files.
	NoFile uint64 `toml:"nofile"`
	// Memory is RLIMIT_AS (soft and hard), address space, as a size with
	// an optional K, M or G suffix (powers of 1024): "256M".
	Memory string `toml:"memory"`
}

// IsZero reports whether no limit is set.
func (l Limits) IsZero() bool { return l.NoFile == 0 && l.Memory == "" }

// MemoryBytes parses Memory; 0 when it is empty.
func (l Limits) MemoryBytes() (uint64, error) { return ParseSize(l.Memory) }

// ParseSize parses a byte size: digits with an optional K, M, G or T
// suffix (powers of 1024, "KiB"/"KB" spellings accepted). "" is 0.
func ParseSize(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	t := strings.TrimSpace(s)
	u := strings.ToUpper(t)
	mult := uint64(1)
	for _, suf := range []struct {
		s string
		m uint64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		for _, form := range []string{suf.s + "IB", suf.s + "B", suf.s} {
			if strings.HasSuffix(u, form) {
				u, mult = strings.TrimSuffix(u, form), suf.m
				goto parsed
			}
		}
	}
	u = strings.TrimSuffix(u, "B")
parsed:
	n, err := strconv.ParseUint(strings.TrimSpace(u), 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a size (a positive number with an optional K, M or G suffix, e.g. \"256M\")", s)
	}
	if n > math.MaxUint64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// Restart policies.
const (
	RestartNo        = "no"
	RestartOnFailure = "on-failure"
	RestartAlways    = "always"
)

// Defaults.
const (
	DefaultLogMaxBytes  = 10 << 20
	DefaultLogKeep      = 3
	DefaultStopTimeout  = 5 * time.Second
	DefaultAfterTimeout = 30 * time.Second
)

// Bounds checked by Validate.
const (
	maxInstances     = 1000
	maxRemoteClients = 1024
	maxNoFile        = 1 << 20 // the kernel's default fs.nr_open
	minMemory        = 1 << 20
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
		if spec.AfterTimeout <= 0 {
			spec.AfterTimeout = DefaultAfterTimeout
		}
		if spec.Instances <= 0 {
			spec.Instances = 1
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
	if err := c.ValidateWeb(); err != nil {
		return err
	}
	if c.LogMaxBytes < 0 {
		return fmt.Errorf("viscript.log_max_bytes: must not be negative, got %d", c.LogMaxBytes)
	}
	if c.MaxRemoteClients < 0 || c.MaxRemoteClients > maxRemoteClients {
		return fmt.Errorf("viscript.max_remote_clients: must be between 1 and %d, got %d", maxRemoteClients, c.MaxRemoteClients)
	}
	for i, k := range c.Admins {
		if k.IsZero() {
			return fmt.Errorf("viscript.admins[%d]: the zero key is nobody's", i)
		}
	}
	if c.LogKeep < 0 {
		return fmt.Errorf("viscript.log_keep: must not be negative, got %d", c.LogKeep)
	}
	if err := ValidateCatalog(c.Apps); err != nil {
		return err
	}
	for _, name := range sortedNames(c.Apps) {
		spec := c.Apps[name]
		if (spec.Path == "" || spec.Path == "skywire") && c.SelfPath == "" {
			return fmt.Errorf("apps.%s.path: empty (this binary) but SelfPath is not set", name)
		}
	}
	return nil
}

var errEmpty = errors.New("must not be empty")

// MinWebToken is the shortest web_token accepted.
const MinWebToken = 16

// ValidateWeb checks web and web_token (a *ConfigError): the dashboard
// starts and stops apps, so beyond this machine it needs a login.
func (c Config) ValidateWeb() error {
	bad := func(key, format string, args ...any) error {
		return &ConfigError{Key: "viscript." + key, Msg: fmt.Sprintf(format, args...)}
	}
	if c.Web == "" {
		if c.WebToken != "" {
			return bad("web_token", "set, but viscript.web (the dashboard's address) is not")
		}
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Web); err != nil {
		return bad("web", "%q is not HOST:PORT", c.Web)
	}
	if c.WebToken == "" && !webguard.AddrIsLoopback(c.Web) {
		return bad("web_token", "required because viscript.web = %q is not a loopback address (the dashboard starts and stops apps); set a token of at least %d characters, or listen on 127.0.0.1", c.Web, MinWebToken)
	}
	if c.WebToken != "" && len(c.WebToken) < MinWebToken {
		return bad("web_token", "must be at least %d characters, got %d", MinWebToken, len(c.WebToken))
	}
	return nil
}

// ConfigError is an invalid catalog setting: Key is the dotted key
// ("apps.web.after"), Msg what is wrong with it.
type ConfigError struct {
	Key string
	Msg string
}

func (e *ConfigError) Error() string { return e.Key + ": " + e.Msg }

// ValidateCatalog checks every [apps.NAME] table and returns the first
// problem as a *ConfigError naming its key: bad names, restart policies,
// environment names, negative durations, instances, user names, limits,
// and after entries that name no app or form a cycle.
func ValidateCatalog(apps map[string]AppSpec) error {
	bad := func(key, format string, args ...any) error {
		return &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	for _, name := range sortedNames(apps) {
		spec := apps[name]
		key := "apps." + name
		if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." || len(name) > 255 {
			return bad(fmt.Sprintf("apps.%q", name), "invalid app name")
		}
		if name == "all" {
			return bad(key, `"all" is reserved (start all, stop all, rm all)`)
		}
		switch spec.Restart {
		case "", RestartNo, RestartOnFailure, RestartAlways:
		default:
			return bad(key+".restart", "%q is not one of %q, %q, %q", spec.Restart, RestartNo, RestartOnFailure, RestartAlways)
		}
		for k := range spec.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return bad(key+".env", "invalid variable name %q", k)
			}
		}
		if spec.StopTimeout < 0 {
			return bad(key+".stop_timeout", "must not be negative")
		}
		if spec.AfterTimeout < 0 {
			return bad(key+".after_timeout", "must not be negative")
		}
		if spec.StartWindow < 0 || spec.StartWindow > time.Hour {
			return bad(key+".start_secs", "must be between 0 and 1h, got %v", spec.StartWindow)
		}
		if spec.Instances < 0 || spec.Instances > maxInstances {
			return bad(key+".instances", "must be between 1 and %d, got %d", maxInstances, spec.Instances)
		}
		seen := map[string]bool{}
		for _, dep := range spec.After {
			switch _, ok := apps[dep]; {
			case dep == name:
				return bad(key+".after", "an app cannot start after itself")
			case !ok:
				return bad(key+".after", "%q is not an app of the catalog", dep)
			case seen[dep]:
				return bad(key+".after", "%q is listed twice", dep)
			}
			seen[dep] = true
		}
		if spec.User != "" && !validUserName(spec.User) {
			return bad(key+".user", "%q is not a user name or numeric uid", spec.User)
		}
		if n := spec.Limits.NoFile; n != 0 && (n < 16 || n > maxNoFile) {
			return bad(key+".limits.nofile", "must be between 16 and %d, got %d", maxNoFile, n)
		}
		if m, err := spec.Limits.MemoryBytes(); err != nil {
			return bad(key+".limits.memory", "%v", err)
		} else if m != 0 && m < minMemory {
			return bad(key+".limits.memory", "%q is below the 1M minimum", spec.Limits.Memory)
		}
	}
	if cyc := afterCycle(apps); cyc != nil {
		return bad("apps."+cyc[0]+".after", "ordering cycle: %s", strings.Join(cyc, " -> "))
	}
	return nil
}

func validUserName(u string) bool {
	if len(u) > 64 {
		return false
	}
	for i, r := range u {
		if !(r == '_' || r == '-' && i > 0 || r == '.' && i > 0 || r == '$' && i == len(u)-1 ||
			r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return u != ""
}

// afterCycle returns one cycle of the after graph (first name repeated at
// the end), or nil.
func afterCycle(apps map[string]AppSpec) []string {
	const (
		unseen = iota
		onPath
		done
	)
	mark := make(map[string]int, len(apps))
	var path []string
	var visit func(n string) []string
	visit = func(n string) []string {
		switch mark[n] {
		case onPath:
			i := slices.Index(path, n)
			return append(slices.Clone(path[i:]), n)
		case done:
			return nil
		}
		mark[n] = onPath
		path = append(path, n)
		for _, d := range apps[n].After {
			if _, ok := apps[d]; !ok {
				continue
			}
			if c := visit(d); c != nil {
				return c
			}
		}
		path = path[:len(path)-1]
		mark[n] = done
		return nil
	}
	for _, n := range sortedNames(apps) {
		if c := visit(n); c != nil {
			return c
		}
	}
	return nil
}

// StartOrder returns names so that every app comes after the apps it is
// After (among names; others are ignored), otherwise alphabetically. The
// graph must be acyclic (ValidateCatalog).
func StartOrder(apps map[string]AppSpec, names []string) []string {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	placed := make(map[string]bool, len(names))
	var out []string
	var place func(n string)
	place = func(n string) {
		if placed[n] || !want[n] {
			return
		}
		placed[n] = true // before recursing: a cycle cannot loop forever
		for _, d := range apps[n].After {
			place(d)
		}
		out = append(out, n)
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	for _, n := range sorted {
		place(n)
	}
	return out
}

func sortedNames(apps map[string]AppSpec) []string {
	out := make([]string, 0, len(apps))
	for n := range apps {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
