package manager

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"time"

	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager/cluster"
	"github.com/skywire-mesh/skywire/manager/graph"
)

// ErrConfig is wrapped by Config.Validate errors.
var ErrConfig = errors.New("manager config")

// Config configures a Manager. The command layer decodes the [manager]
// table of skywire.toml into it and sets Identity from [identity].
type Config struct {
	// Identity is the manager's key pair; nodes list its public key as a
	// trusted manager.
	Identity keys.KeyPair `toml:"-"`
	// ListenAddr is the TCP address nodes connect to.
	ListenAddr string `toml:"listen_addr"`
	// HopLimit is the largest number of links a route may cross; route
	// requests asking for more are capped.
	HopLimit int `toml:"hop_limit"`
	// InstallTimeout bounds the wait for every hop to confirm a route.
	InstallTimeout time.Duration `toml:"install_timeout"`
	// LinkKeepalive and LinkDeadAfter tune the links to nodes: a node
	// whose link is silent for LinkDeadAfter is dropped.
	LinkKeepalive time.Duration `toml:"link_keepalive"`
	LinkDeadAfter time.Duration `toml:"link_dead_after"`
	// Admit is who may register: AdmitOpen (any key: a public mesh) or
	// AdmitMembers (only Members and keys that joined with an invitation).
	// Empty means AdmitMembers; the command layer defaults to AdmitOpen
	// for a demo identity (loopback demos).
	Admit string `toml:"admit"`
	// Members are keys that are always members (with AdmitMembers).
	Members []keys.PublicKey `toml:"members"`

	// MaxRoutesPerNode caps the routes one node is an endpoint of, counting
	// those it requested and those it reported in a hello and the manager
	// holds until the other endpoint agrees. Reports and requests beyond
	// it are refused.
	MaxRoutesPerNode int `toml:"max_routes_per_node"`
	// RouteRequestRate and RouteRequestBurst are each node's token bucket
	// for route requests and path queries: requests per second, and how
	// many may come at once. Requests beyond it are refused.
	RouteRequestRate  float64 `toml:"route_request_rate"`
	RouteRequestBurst int     `toml:"route_request_burst"`
	// MaxHandshakes caps connections that have not yet sent their hello
	// (link handshake included); new connections beyond it are closed.
	MaxHandshakes int `toml:"max_handshakes"`
	// MaxHandshakesPerSource caps those from one source (an IPv4 address
	// or an IPv6 /64), so that one host cannot hold every slot; at most
	// MaxHandshakes.
	MaxHandshakesPerSource int `toml:"max_handshakes_per_source"`
	// RepairWorkers is how many routes are repaired at once.
	RepairWorkers int `toml:"repair_workers"`

	// Cluster, if set, makes this manager a member of a raft cluster of
	// managers (manager/cluster): routes and registrations are
	// replicated, only the leader installs routes, and the others answer
	// route requests with "not leader". Nil: a single manager, no raft.
	Cluster *cluster.Config `toml:"cluster"`

	// MembersFile is where members that joined, and outstanding
	// invitations, are persisted (the command layer uses
	// STATE/manager-members.json); empty keeps them in memory only.
	MembersFile string `toml:"-"`
	// Listener, if set, is used instead of listening on ListenAddr (tests
	// and in-memory meshes). Run closes it.
	Listener net.Listener `toml:"-"`
}

// DefaultConfig returns working defaults for one machine.
func DefaultConfig() Config {
	return Config{
		ListenAddr:     "127.0.0.1:7900",
		HopLimit:       8,
		InstallTimeout: 5 * time.Second,
		LinkKeepalive:  time.Second,
		LinkDeadAfter:  3 * time.Second,

		MaxRoutesPerNode:  1024,
		RouteRequestRate:  20,
		RouteRequestBurst: 50,
		MaxHandshakes:     256,
		// A node opens one link to its manager; 16 leaves room for many
		// nodes behind one NAT address and for reconnects.
		MaxHandshakesPerSource: 16,
		RepairWorkers:          16,
	}
}

// Validate fills zero fields with defaults and returns an error naming the
// first bad key.
func (c *Config) Validate() error {
	d := DefaultConfig()
	if c.Listener == nil {
		c.ListenAddr = cmp.Or(c.ListenAddr, d.ListenAddr)
	}
	c.HopLimit = cmp.Or(c.HopLimit, d.HopLimit)
	c.InstallTimeout = cmp.Or(c.InstallTimeout, d.InstallTimeout)
	c.LinkKeepalive = cmp.Or(c.LinkKeepalive, d.LinkKeepalive)
	c.LinkDeadAfter = cmp.Or(c.LinkDeadAfter, d.LinkDeadAfter)
	c.MaxRoutesPerNode = cmp.Or(c.MaxRoutesPerNode, d.MaxRoutesPerNode)
	c.RouteRequestRate = cmp.Or(c.RouteRequestRate, d.RouteRequestRate)
	c.RouteRequestBurst = cmp.Or(c.RouteRequestBurst, d.RouteRequestBurst)
	c.MaxHandshakes = cmp.Or(c.MaxHandshakes, d.MaxHandshakes)
	c.MaxHandshakesPerSource = min(cmp.Or(c.MaxHandshakesPerSource, d.MaxHandshakesPerSource), c.MaxHandshakes)
	c.RepairWorkers = cmp.Or(c.RepairWorkers, d.RepairWorkers)
	c.Admit = cmp.Or(c.Admit, AdmitMembers)
	if err := c.Identity.Validate(); err != nil {
		return fmt.Errorf("%w: identity: %w", ErrConfig, err)
	}
	switch {
	case c.HopLimit < 1 || c.HopLimit > graph.MaxHops:
		return fmt.Errorf("%w: hop_limit = %d, want 1..%d", ErrConfig, c.HopLimit, graph.MaxHops)
	case c.InstallTimeout < 0:
		return fmt.Errorf("%w: install_timeout = %v is negative", ErrConfig, c.InstallTimeout)
	case c.LinkKeepalive < 0:
		return fmt.Errorf("%w: link_keepalive = %v is negative", ErrConfig, c.LinkKeepalive)
	case c.LinkDeadAfter <= c.LinkKeepalive:
		return fmt.Errorf("%w: link_dead_after = %v must exceed link_keepalive = %v", ErrConfig, c.LinkDeadAfter, c.LinkKeepalive)
	case c.MaxRoutesPerNode < 1:
		return fmt.Errorf("%w: max_routes_per_node = %d, want at least 1", ErrConfig, c.MaxRoutesPerNode)
	case !(c.RouteRequestRate > 0) || math.IsInf(c.RouteRequestRate, 0):
		return fmt.Errorf("%w: route_request_rate = %v, want a positive number of requests per second", ErrConfig, c.RouteRequestRate)
	case c.RouteRequestBurst < 1:
		return fmt.Errorf("%w: route_request_burst = %d, want at least 1", ErrConfig, c.RouteRequestBurst)
	case c.MaxHandshakes < 1:
		return fmt.Errorf("%w: max_handshakes = %d, want at least 1", ErrConfig, c.MaxHandshakes)
	case c.MaxHandshakesPerSource < 1:
		return fmt.Errorf("%w: max_handshakes_per_source = %d, want at least 1", ErrConfig, c.MaxHandshakesPerSource)
	case c.RepairWorkers < 1:
		return fmt.Errorf("%w: repair_workers = %d, want at least 1", ErrConfig, c.RepairWorkers)
	case c.Admit != AdmitOpen && c.Admit != AdmitMembers:
		return fmt.Errorf("%w: admit = %q, want %q or %q", ErrConfig, c.Admit, AdmitOpen, AdmitMembers)
	case c.Admit == AdmitOpen && len(c.Members) > 0:
		return fmt.Errorf("%w: members is set but admit = %q admits every key; set admit = %q or drop members", ErrConfig, AdmitOpen, AdmitMembers)
	}
	for i, k := range c.Members {
		if k.IsZero() {
			return fmt.Errorf("%w: members[%d] is empty", ErrConfig, i)
		}
	}
	if c.Listener == nil {
		if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
			return fmt.Errorf("%w: listen_addr = %q: %w", ErrConfig, c.ListenAddr, err)
		}
	}
	if c.Cluster != nil {
		if err := c.Cluster.Validate(c.Identity.Public); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	return nil
}
