// Package config is the one place that reads skywire.toml. It decodes the
// file strictly (an unknown key is an error naming the key and its line),
// applies defaults, validates, and hands each role its typed config struct.
// Role packages never import this package or the TOML library.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/viscript"
)

// EnvConfig names the environment variable that points at a config file.
const EnvConfig = "SKYWIRE_CONFIG"

// File is the whole of skywire.toml.
type File struct {
	Identity Identity                    `toml:"identity"`
	Viscript viscript.Config             `toml:"viscript"`
	Apps     map[string]viscript.AppSpec `toml:"apps"`
	Manager  ManagerSection              `toml:"manager"`
	Node     NodeSection                 `toml:"node"`
	Nodes    map[string]NodeSection      `toml:"nodes"`

	SocksClient SocksClientSection `toml:"socks_client"`
	SocksServer SocksServerSection `toml:"socks_server"`
	VPNClient   VPNClientSection   `toml:"vpn_client"`
	VPNServer   VPNServerSection   `toml:"vpn_server"`
	Messenger   MessengerSection   `toml:"messenger"`

	// Path is where the file was read from ("(embedded default)" for the
	// built-in one); Embedded reports the latter.
	Path     string `toml:"-"`
	Embedded bool   `toml:"-"`

	data    []byte          // the text, to find the line of a key named in an error
	defined map[string]bool // which app sections the file has
}

// withLine adds the line of its key to a *Error that has none.
func (f *File) withLine(err error) error {
	var ce *Error
	if errors.As(err, &ce) && ce.Line == 0 && ce.Key != "" {
		ce.Line = lineOfKey(f.data, toml.Key(splitKey(ce.Key)))
	}
	return err
}

// Identity is the [identity] table: the node's key pair. The secret key is
// given inline (then the config file itself must be mode 0600) or as a key
// file (which must be mode 0600).
type Identity struct {
	PublicKey     keys.PublicKey `toml:"public_key"`
	SecretKey     keys.SecretKey `toml:"secret_key"`
	SecretKeyFile string         `toml:"secret_key_file"`
}

// Error is a problem with one key of the config.
type Error struct {
	File string // path or "(embedded default)"
	Key  string // dotted key, e.g. "apps.node.restart"
	Line int    // 1-based; 0 when unknown
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

// ErrNotFound is returned by Find when no config file exists in the search path.
var ErrNotFound = errors.New("no config file found")

// SearchPath returns the places Load looks, in order, after an explicit
// --config and $SKYWIRE_CONFIG.
func SearchPath() []string {
	paths := []string{"skywire.toml"}
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		paths = append(paths, filepath.Join(x, "skywire", "skywire.toml"))
	} else if h, err := os.UserHomeDir(); err == nil {
		paths = append(paths, filepath.Join(h, ".config", "skywire", "skywire.toml"))
	}
	return append(paths, "/etc/skywire/skywire.toml")
}

// Find picks the config file to use: explicit (from --config) if set, then
// $SKYWIRE_CONFIG, then the first file of SearchPath that exists. An
// explicit or environment path that does not exist is an error.
func Find(explicit string) (string, error) {
	for _, p := range []string{explicit, os.Getenv(EnvConfig)} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("config %s: %w", p, err)
		}
		return p, nil
	}
	for _, p := range SearchPath() {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNotFound
}

// Load finds and reads the config; with no file anywhere it uses embedded,
// the default config built into the binary.
func Load(explicit string, embedded []byte) (*File, error) {
	path, err := Find(explicit)
	if errors.Is(err, ErrNotFound) {
		f, err := Parse(embedded, "(embedded default)")
		if err != nil {
			return nil, err
		}
		f.Embedded = true
		return f, nil
	}
	if err != nil {
		return nil, err
	}
	return ReadFile(path)
}

// ReadFile reads, decodes and validates one config file.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	f, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	if !f.Identity.SecretKey.IsZero() {
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("stat config: %w", err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, &Error{File: path, Key: "identity.secret_key", Msg: fmt.Sprintf(
				"the file holds a secret key but has mode %#o: %v (run: chmod 600 %s)", st.Mode().Perm(), keys.ErrKeyFileMode, path)}
		}
	}
	return f, nil
}

// Parse decodes data strictly, applies defaults and validates. name is used
// in error messages.
func Parse(data []byte, name string) (*File, error) {
	if err := checkPlaceholders(data, name); err != nil {
		return nil, err
	}
	if err := checkTypes(data, name); err != nil {
		return nil, err
	}
	f := defaultFile()
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: name, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
		}
		return nil, &Error{File: name, Msg: err.Error()}
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0].String()
		return nil, &Error{File: name, Key: k, Line: lineOfKey(data, und[0]), Msg: unknownKeyMsg(len(und))}
	}
	f.Path = name
	f.defined = map[string]bool{}
	for _, sec := range appSections {
		f.defined[sec] = md.IsDefined(sec)
	}
	f.applyDefaults()
	f.data = data
	if err := f.Validate(); err != nil {
		return nil, f.withLine(err)
	}
	return &f, nil
}

func unknownKeyMsg(n int) string {
	if n == 1 {
		return "unknown key"
	}
	return fmt.Sprintf("unknown key (and %d more)", n-1)
}

func (f *File) applyDefaults() {
	v := &f.Viscript
	if v.LogMaxBytes == 0 {
		v.LogMaxBytes = viscript.DefaultLogMaxBytes
	}
	if v.LogKeep == 0 {
		v.LogKeep = viscript.DefaultLogKeep
	}
	for name, a := range f.Apps {
		if a.Restart == "" {
			a.Restart = viscript.RestartNo
		}
		if a.StopTimeout == 0 {
			a.StopTimeout = viscript.DefaultStopTimeout
		}
		f.Apps[name] = a
	}
}

// Validate checks every value and names the first bad key.
func (f *File) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &Error{File: f.Path, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	v := f.Viscript
	if v.LogMaxBytes < 4096 {
		return bad("viscript.log_max_bytes", "must be at least 4096, got %d", v.LogMaxBytes)
	}
	if v.LogKeep < 1 || v.LogKeep > 100 {
		return bad("viscript.log_keep", "must be between 1 and 100, got %d", v.LogKeep)
	}
	if v.ControlTCP != "" && len(v.ControlToken) < 16 {
		return bad("viscript.control_token", "control_tcp is set, so a token of at least 16 characters is required")
	}
	if v.Node != "" {
		if _, ok := f.Nodes[v.Node]; !ok {
			return bad("viscript.node", "no node profile %q (have: %s)", v.Node, strings.Join(sortedKeys(f.Nodes), ", "))
		}
	}
	if v.MaxRemoteClients < 0 || v.MaxRemoteClients > 1024 {
		return bad("viscript.max_remote_clients", "must be between 1 and 1024, got %d", v.MaxRemoteClients)
	}
	for i, k := range v.Admins {
		if k.IsZero() {
			return bad("viscript.admins", "entry %d is the zero key, which is nobody's", i)
		}
	}
	if err := v.ValidateWeb(); err != nil {
		var ce *viscript.ConfigError
		if errors.As(err, &ce) {
			return bad(ce.Key, "%s", ce.Msg)
		}
		return err
	}
	id := f.Identity
	if !id.SecretKey.IsZero() && id.SecretKeyFile != "" {
		return bad("identity.secret_key_file", "give either secret_key or secret_key_file, not both")
	}
	if !id.SecretKey.IsZero() && !id.PublicKey.IsZero() && !id.SecretKey.Public().Equal(id.PublicKey) {
		return bad("identity.public_key", "does not belong to identity.secret_key")
	}
	for _, name := range sortedKeys(f.Apps) {
		a := f.Apps[name]
		key := "apps." + name
		if !validName(name) {
			return bad(key, "app names may use letters, digits, '-' and '_' only")
		}
		if name == "all" {
			return bad(key, `"all" is reserved (start all, stop all, rm all)`)
		}
		switch a.Restart {
		case viscript.RestartNo, viscript.RestartOnFailure, viscript.RestartAlways:
		default:
			return bad(key+".restart", "must be %q, %q or %q, got %q", viscript.RestartNo, viscript.RestartOnFailure, viscript.RestartAlways, a.Restart)
		}
		if a.StopTimeout < 0 {
			return bad(key+".stop_timeout", "must not be negative")
		}
		if a.Dir != "" {
			if st, err := os.Stat(a.Dir); err != nil || !st.IsDir() {
				return bad(key+".dir", "%q is not a directory", a.Dir)
			}
		}
		for k := range a.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return bad(key+".env", "bad variable name %q", k)
			}
		}
	}
	// after, instances, user, limits (and the rest again, as viscript
	// checks them).
	if err := viscript.ValidateCatalog(f.Apps); err != nil {
		var ce *viscript.ConfigError
		if errors.As(err, &ce) {
			return bad(ce.Key, "%s", ce.Msg)
		}
		return &Error{File: f.Path, Msg: err.Error()}
	}
	return nil
}

// SecretKey returns the identity's secret key from the config or its key file.
func (f *File) SecretKey() (keys.SecretKey, error) {
	id := f.Identity
	switch {
	case !id.SecretKey.IsZero():
		return id.SecretKey, nil
	case id.SecretKeyFile != "":
		p := id.SecretKeyFile
		if !filepath.IsAbs(p) && !f.Embedded {
			p = filepath.Join(filepath.Dir(f.Path), p)
		}
		return keys.LoadSecretKeyFile(p)
	}
	return keys.SecretKey{}, &Error{File: f.Path, Key: "identity", Msg: "no secret key: set identity.secret_key or identity.secret_key_file (skywire config init writes one)"}
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// IsNotExist reports whether err means a file was missing.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
