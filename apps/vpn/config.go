package vpn

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/skywire-mesh/skywire/apps/internal/exitpolicy"
	"github.com/skywire-mesh/skywire/keys"
)

// ErrConfig is wrapped by the errors of Validate.
var ErrConfig = errors.New("vpn config")

// Defaults.
const (
	DefaultServerPort = 44 // mesh port of vpn-server
	DefaultClientPort = 45 // mesh port vpn-client receives datagrams on
	DefaultClientTun  = "skyvpn0"
	DefaultServerTun  = "skyvpns0"
	DefaultPool       = "10.77.0.0/24"
	// RoutesEverything in ClientConfig.Routes sends all IPv4 traffic
	// through the tunnel (0.0.0.0/1 and 128.0.0.0/1), except to the
	// addresses in ClientConfig.Exclude.
	RoutesEverything = "everything"
)

// ClientConfig configures vpn-client: the [vpn_client] table of
// skywire.toml.
type ClientConfig struct {
	// NodeSocket is the local node's app socket; empty: $SKYWIRE_NODE_SOCKET.
	NodeSocket string `toml:"node_socket"`
	// Server is the public key of the node running vpn-server.
	Server keys.PublicKey `toml:"server"`
	// ServerPort is vpn-server's mesh port.
	ServerPort uint16 `toml:"server_port"`
	// Port is this client's mesh port (for the tunnel's datagrams).
	Port uint16 `toml:"port"`
	// Tun is the name of the TUN device the client creates.
	Tun string `toml:"tun"`
	// MTU caps the TUN MTU (0: the server's, at most MaxMTU).
	MTU int `toml:"mtu"`
	// Routes are IPv4 prefixes sent through the tunnel, or
	// "everything". The pool's prefix is always routed (by the address).
	Routes []string `toml:"routes"`
	// Exclude are the addresses of the node's peers and managers ("IP",
	// "IP:port", "host" or "host:port"; names are resolved at start):
	// they keep their current route outside the tunnel, so the mesh does
	// not carry itself.
	Exclude []string `toml:"exclude"`
	// RetryMax bounds the backoff between attempts to reach the server.
	RetryMax time.Duration `toml:"retry_max"`
	// StatsFile, if set, is where the client writes its counters as JSON
	// every StatsInterval and at stop (a StatsFile).
	StatsFile     string        `toml:"stats_file"`
	StatsInterval time.Duration `toml:"stats_interval"`
}

// DefaultClientConfig returns the defaults (no server: it must be set).
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		ServerPort:    DefaultServerPort,
		Port:          DefaultClientPort,
		Tun:           DefaultClientTun,
		RetryMax:      30 * time.Second,
		StatsInterval: 5 * time.Second,
	}
}

// ServerConfig configures vpn-server: the [vpn_server] table.
type ServerConfig struct {
	// NodeSocket is the local node's app socket; empty: $SKYWIRE_NODE_SOCKET.
	NodeSocket string `toml:"node_socket"`
	// Port is the mesh port clients dial.
	Port uint16 `toml:"port"`
	// Tun is the name of the TUN device the server creates.
	Tun string `toml:"tun"`
	// MTU is the TUN MTU handed to clients (at most MaxMTU).
	MTU int `toml:"mtu"`
	// Pool is the IPv4 prefix clients get addresses from; the server
	// takes its first address.
	Pool string `toml:"pool"`
	// Allow lists the public keys of the clients served.
	Allow []keys.PublicKey `toml:"allow"`
	// AllowAll serves every client (Allow is then ignored).
	AllowAll bool `toml:"allow_all"`
	// Forward turns on net.ipv4.ip_forward while running (restored at
	// stop), so clients reach networks behind the server.
	Forward bool `toml:"forward"`
	// Exit masquerades (nftables) the pool's traffic that leaves the
	// server through another device: the server is an exit to the
	// internet. Implies Forward.
	Exit bool `toml:"exit"`
	// StateDir holds the address assignments (leases.json), so each
	// client keeps its address across restarts. It is required here; the
	// command layer fills it, when the config leaves it empty, with
	// STATE/vpn of the role's state directory (the one every role uses:
	// viscript.state_dir, $SKYWIRE_STATE_DIR, /var/lib/skywire for root,
	// else the user's; or --state-dir).
	StateDir string `toml:"state_dir"`
	// Keepalive is the period of keepalives on the control streams; a
	// stream silent for 3 periods is dead.
	Keepalive time.Duration `toml:"keepalive"`
	// StatsFile, if set, is where the server writes its per-client
	// counters as JSON every StatsInterval and at stop.
	StatsFile     string        `toml:"stats_file"`
	StatsInterval time.Duration `toml:"stats_interval"`
	// AllowDestinations opens destinations the default policy refuses
	// to clients (the server host's loopback, link-local, private
	// ranges, own addresses, ...); DenyDestinations closes
	// destinations, and wins. Entries are PREFIX[:PORT[-PORT]] (IPv4:
	// the tunnel carries IPv4 only): "10.0.0.0/8", "192.168.1.10/32:22",
	// "0.0.0.0/0:25". Traffic between clients in the pool is not
	// subject to them. See package apps/internal/exitpolicy.
	AllowDestinations []string `toml:"allow_destinations"`
	DenyDestinations  []string `toml:"deny_destinations"`
}

// DefaultServerConfig returns the defaults (nobody allowed).
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		Port:          DefaultServerPort,
		Tun:           DefaultServerTun,
		MTU:           DefaultMTU,
		Pool:          DefaultPool,
		Forward:       true,
		Keepalive:     5 * time.Second,
		StatsInterval: 5 * time.Second,
	}
}

func validTun(name string) bool {
	if len(name) == 0 || len(name) > 15 || name == "." || name == ".." {
		return false
	}
	for _, r := range name {
		if r <= ' ' || r == '/' || r == ':' || r > '~' {
			return false
		}
	}
	return true
}

// parseRoutes returns the prefixes of routes ("everything" expands to
// the two halves of the IPv4 space).
func parseRoutes(routes []string) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, s := range routes {
		if strings.EqualFold(strings.TrimSpace(s), RoutesEverything) {
			ps = append(ps, netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("128.0.0.0/1"))
			continue
		}
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			a, err2 := netip.ParseAddr(strings.TrimSpace(s))
			if err2 != nil {
				return nil, fmt.Errorf("%q is neither a prefix nor %q: %w", s, RoutesEverything, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("%q: only IPv4 is tunnelled", s)
		}
		ps = append(ps, p.Masked())
	}
	return ps, nil
}

// excludeHost returns the host of an Exclude entry: an IP address or a
// name, with an optional port.
func excludeHost(s string) (string, error) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().String(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String(), nil
	}
	host := s
	if h, _, err := net.SplitHostPort(s); err == nil {
		host = h
	}
	if host == "" || strings.ContainsAny(host, " /[]") {
		return "", fmt.Errorf("%q is not an address, host name, or either with a port", s)
	}
	return host, nil
}

// Validate fills zero fields with defaults and returns an error naming
// the first bad key as "vpn_client.KEY".
func (c *ClientConfig) Validate() error {
	d := DefaultClientConfig()
	c.ServerPort = cmp.Or(c.ServerPort, d.ServerPort)
	c.Port = cmp.Or(c.Port, d.Port)
	c.Tun = cmp.Or(c.Tun, d.Tun)
	c.RetryMax = cmp.Or(c.RetryMax, d.RetryMax)
	c.StatsInterval = cmp.Or(c.StatsInterval, d.StatsInterval)
	bad := badKey("vpn_client")
	if c.Server.IsZero() {
		return bad("server", "the public key of the vpn-server node is required")
	}
	if err := checkTun(bad, c.Tun); err != nil {
		return err
	}
	if c.MTU != 0 && (c.MTU < minMTU || c.MTU > MaxMTU) {
		return bad("mtu", "%d is outside %d..%d (0: the server's)", c.MTU, minMTU, MaxMTU)
	}
	if _, err := parseRoutes(c.Routes); err != nil {
		return bad("routes", "%v", err)
	}
	for _, e := range c.Exclude {
		if _, err := excludeHost(e); err != nil {
			return bad("exclude", "%v", err)
		}
	}
	if c.RetryMax < 0 {
		return bad("retry_max", "%v is negative", c.RetryMax)
	}
	return checkStatsInterval(bad, c.StatsInterval)
}

// Validate fills zero fields with defaults and returns an error naming
// the first bad key as "vpn_server.KEY".
func (c *ServerConfig) Validate() error {
	d := DefaultServerConfig()
	c.Port = cmp.Or(c.Port, d.Port)
	c.Tun = cmp.Or(c.Tun, d.Tun)
	c.MTU = cmp.Or(c.MTU, d.MTU)
	c.Pool = cmp.Or(c.Pool, d.Pool)
	c.Keepalive = cmp.Or(c.Keepalive, d.Keepalive)
	c.StatsInterval = cmp.Or(c.StatsInterval, d.StatsInterval)
	bad := badKey("vpn_server")
	if err := checkTun(bad, c.Tun); err != nil {
		return err
	}
	if c.MTU < minMTU || c.MTU > MaxMTU {
		return bad("mtu", "%d is outside %d..%d", c.MTU, minMTU, MaxMTU)
	}
	if _, err := parsePool(c.Pool); err != nil {
		return bad("pool", "%v", err)
	}
	if !c.AllowAll && len(c.Allow) == 0 {
		return bad("allow", "no client allowed: list their public keys, or set allow_all = true")
	}
	for i, k := range c.Allow {
		if k.IsZero() {
			return bad("allow", "entry %d is the zero key", i)
		}
	}
	if c.StateDir == "" {
		return bad("state_dir", "required: the address assignments are kept there")
	}
	if c.Keepalive < 10*time.Millisecond || c.Keepalive > time.Minute {
		return bad("keepalive", "%v is outside 10ms..1m", c.Keepalive)
	}
	if err := exitpolicy.Validate("vpn_server", c.AllowDestinations, c.DenyDestinations); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	for _, l := range []struct {
		key     string
		entries []string
	}{{"allow_destinations", c.AllowDestinations}, {"deny_destinations", c.DenyDestinations}} {
		for i, e := range l.entries {
			if p, _, _ := strings.Cut(e, "/"); strings.Contains(p, ":") {
				return bad(fmt.Sprintf("%s[%d]", l.key, i), "%q: only IPv4 is tunnelled", e)
			}
		}
	}
	return checkStatsInterval(bad, c.StatsInterval)
}

// badKey returns the error constructor of one config table: the error
// wraps ErrConfig and names the key as "TABLE.KEY".
func badKey(table string) func(key, format string, args ...any) error {
	return func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %s.%s: %s", ErrConfig, table, key, fmt.Sprintf(format, args...))
	}
}

func checkTun(bad func(key, format string, args ...any) error, tun string) error {
	if !validTun(tun) {
		return bad("tun", "%q is not a device name (1 to 15 printable characters, no '/', ':' or spaces)", tun)
	}
	return nil
}

func checkStatsInterval(bad func(key, format string, args ...any) error, d time.Duration) error {
	if d < 10*time.Millisecond {
		return bad("stats_interval", "%v is below 10ms", d)
	}
	return nil
}

// parsePool checks an address pool: IPv4, /8 to /30.
func parsePool(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if !p.Addr().Is4() || p.Bits() < 8 || p.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("%q: want an IPv4 prefix from /8 to /30", s)
	}
	return p.Masked(), nil
}
