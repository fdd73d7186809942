package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager/graph"
)

// ErrConfig is wrapped by Config.Validate errors.
var ErrConfig = errors.New("node config")

// Peer is a node or manager to link to: its public key and TCP address.
type Peer struct {
	PublicKey keys.PublicKey `toml:"public_key"`
	Addr      string         `toml:"addr"`
}

// Config configures a Node. The command layer decodes the [node] table of
// skywire.toml into it and sets Identity from [identity].
type Config struct {
	// Identity is the node's key pair; its public key is its mesh address.
	Identity keys.KeyPair `toml:"-"`
	// Name is what the directory shows beside the node's key and what
	// tools accept in its place (proto.CheckName: 1-63 ASCII letters,
	// digits, '-', '_', '.'); empty: none. A claim, not an identity:
	// another node may claim the same name.
	Name string `toml:"name"`
	// ListenAddr is the TCP address peers link to; empty: do not listen.
	ListenAddr string `toml:"listen_addr"`
	// Peers are the nodes this node keeps links to. A peer presenting
	// another key than the one listed is refused.
	Peers []Peer `toml:"peers"`
	// Managers are the node managers this node registers with and trusts
	// to install routes; requests go to the first one that answers.
	Managers []Peer `toml:"managers"`
	// HopLimit caps the links of the routes this node asks for (0: the
	// manager's limit).
	HopLimit int `toml:"hop_limit"`

	// LinkKeepalive and LinkDeadAfter tune links: a link silent for
	// LinkDeadAfter is dead.
	LinkKeepalive time.Duration `toml:"link_keepalive"`
	LinkDeadAfter time.Duration `toml:"link_dead_after"`
	// ReconnectMin and ReconnectMax bound the backoff between attempts to
	// (re)link to a peer or manager.
	ReconnectMin time.Duration `toml:"reconnect_min"`
	ReconnectMax time.Duration `toml:"reconnect_max"`
	// RuleIdle is how long a forwarding rule lives without traffic.
	RuleIdle time.Duration `toml:"rule_idle_timeout"`
	// RouteKeepalive is how often an endpoint sends a keepalive down a
	// route it has sent nothing on (well below RuleIdle).
	RouteKeepalive time.Duration `toml:"route_keepalive"`
	// RequestTimeout bounds a request to a manager and a session handshake.
	RequestTimeout time.Duration `toml:"request_timeout"`
	// LinkReportInterval is how often link RTTs are re-reported; changes
	// in the set of links are reported at once.
	LinkReportInterval time.Duration `toml:"link_report_interval"`
	// SessionIdle ends an end-to-end session when nothing arrives for it.
	SessionIdle time.Duration `toml:"session_idle_timeout"`
	// AdvertiseAddrs are the addresses sent to managers for the directory
	// (default: ListenAddr).
	AdvertiseAddrs []string `toml:"advertise_addrs"`
	// HideApps keeps this node's app list out of the manager's directory:
	// others see that it has apps, not which.
	HideApps bool `toml:"hide_apps"`
	// Join is an invitation token (skywire manager invite) this node
	// presents to its managers until it is a member.
	Join string `toml:"join"`
	// AcceptPeers says which peers the node links with, in and out (the
	// command layer decodes accept_peers into it). Zero: members.
	AcceptPeers AcceptPeers `toml:"-"`

	// Caps on what other nodes can make this node hold. Each refusal is
	// counted (Counters) and logged at most every few seconds; 0 selects
	// the default.

	// MaxSessionsPerRemote caps the end-to-end sessions with one remote
	// node (honest nodes use one or two: one dialled from each side).
	MaxSessionsPerRemote int `toml:"max_sessions_per_remote"`
	// MaxStreamsPerSession caps the streams a remote node has open in
	// one session at a time; more are reset.
	MaxStreamsPerSession int `toml:"max_streams_per_session"`
	// MaxPendingHandshakes caps the responder handshakes being computed
	// at once, over all routes; msg1 beyond it is dropped (the initiator
	// retransmits).
	MaxPendingHandshakes int `toml:"max_pending_handshakes"`
	// MaxPendingPongs caps the route pings being answered at once; pings
	// beyond it are dropped.
	MaxPendingPongs int `toml:"max_pending_pongs"`
	// MaxPeers caps the neighbours this node keeps state for (links or
	// rules); links from further keys are closed. Configured peers are
	// always admitted.
	MaxPeers int `toml:"max_peers"`
	// MaxLinksPerPeer caps the simultaneous links from one neighbour.
	MaxLinksPerPeer int `toml:"max_links_per_peer"`
	// MaxLinkHandshakes caps the incoming connections still in their link
	// handshake; further connections are closed at once.
	MaxLinkHandshakes int `toml:"max_link_handshakes"`
	// MaxLinkHandshakesPerSource caps those from one source (an IPv4
	// address or an IPv6 /64), so that one host cannot hold every slot;
	// at most MaxLinkHandshakes.
	MaxLinkHandshakesPerSource int `toml:"max_link_handshakes_per_source"`

	// Dial opens a transport connection to addr; nil means TCP. Tests and
	// in-memory meshes set it.
	Dial func(ctx context.Context, addr string) (net.Conn, error) `toml:"-"`
	// Listener, if set, is used instead of listening on ListenAddr. Run
	// closes it.
	Listener net.Listener `toml:"-"`
	// ReportRTT, if set, replaces the RTT reported for a link (simulations
	// and tests pin latencies with it).
	ReportRTT func(peer keys.PublicKey, measured time.Duration) time.Duration `toml:"-"`
	// FrameHook, if set, sees every data and control frame received on a
	// peer link before it is handled (tests use it to inspect what a relay
	// handles). It must not retain payload.
	FrameHook func(peer keys.PublicKey, typ uint8, payload []byte) `toml:"-"`
	// LegacySessions makes the node speak only version 1 of the
	// end-to-end session handshake (ChaCha20-Poly1305), as releases
	// before the negotiated session cipher did: tests of mixed meshes
	// set it.
	LegacySessions bool `toml:"-"`
}

// DefaultConfig returns working defaults (no peers, no managers).
func DefaultConfig() Config {
	return Config{
		ListenAddr:         "127.0.0.1:7901",
		LinkKeepalive:      time.Second,
		LinkDeadAfter:      3 * time.Second,
		ReconnectMin:       100 * time.Millisecond,
		ReconnectMax:       10 * time.Second,
		RuleIdle:           30 * time.Second,
		RouteKeepalive:     10 * time.Second,
		RequestTimeout:     10 * time.Second,
		LinkReportInterval: 5 * time.Second,
		SessionIdle:        30 * time.Second,

		MaxSessionsPerRemote: 8,
		MaxStreamsPerSession: 1024,
		MaxPendingHandshakes: 64,
		MaxPendingPongs:      16,
		MaxPeers:             1024,
		MaxLinksPerPeer:      4,
		MaxLinkHandshakes:    64,
		// A peer opens one link at a time; 8 leaves room for several
		// nodes behind one NAT address.
		MaxLinkHandshakesPerSource: 8,
	}
}

// Validate fills zero durations with defaults and returns an error naming
// the first bad key.
func (c *Config) Validate() error {
	d := DefaultConfig()
	c.LinkKeepalive = cmp.Or(c.LinkKeepalive, d.LinkKeepalive)
	c.LinkDeadAfter = cmp.Or(c.LinkDeadAfter, d.LinkDeadAfter)
	c.ReconnectMin = cmp.Or(c.ReconnectMin, d.ReconnectMin)
	c.ReconnectMax = cmp.Or(c.ReconnectMax, d.ReconnectMax)
	c.RuleIdle = cmp.Or(c.RuleIdle, d.RuleIdle)
	c.RouteKeepalive = cmp.Or(c.RouteKeepalive, d.RouteKeepalive)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, d.RequestTimeout)
	c.LinkReportInterval = cmp.Or(c.LinkReportInterval, d.LinkReportInterval)
	c.SessionIdle = cmp.Or(c.SessionIdle, d.SessionIdle)
	c.MaxSessionsPerRemote = cmp.Or(c.MaxSessionsPerRemote, d.MaxSessionsPerRemote)
	c.MaxStreamsPerSession = cmp.Or(c.MaxStreamsPerSession, d.MaxStreamsPerSession)
	c.MaxPendingHandshakes = cmp.Or(c.MaxPendingHandshakes, d.MaxPendingHandshakes)
	c.MaxPendingPongs = cmp.Or(c.MaxPendingPongs, d.MaxPendingPongs)
	c.MaxPeers = cmp.Or(c.MaxPeers, d.MaxPeers)
	c.MaxLinksPerPeer = cmp.Or(c.MaxLinksPerPeer, d.MaxLinksPerPeer)
	c.MaxLinkHandshakes = cmp.Or(c.MaxLinkHandshakes, d.MaxLinkHandshakes)
	c.MaxLinkHandshakesPerSource = min(cmp.Or(c.MaxLinkHandshakesPerSource, d.MaxLinkHandshakesPerSource), c.MaxLinkHandshakes)
	if err := c.Identity.Validate(); err != nil {
		return fmt.Errorf("%w: identity: %w", ErrConfig, err)
	}
	switch {
	case c.HopLimit < 0 || c.HopLimit > graph.MaxHops:
		return fmt.Errorf("%w: hop_limit = %d, want 0..%d", ErrConfig, c.HopLimit, graph.MaxHops)
	case c.LinkKeepalive < 0:
		return fmt.Errorf("%w: link_keepalive = %v is negative", ErrConfig, c.LinkKeepalive)
	case c.LinkDeadAfter <= c.LinkKeepalive:
		return fmt.Errorf("%w: link_dead_after = %v must exceed link_keepalive = %v", ErrConfig, c.LinkDeadAfter, c.LinkKeepalive)
	case c.ReconnectMin < 0:
		return fmt.Errorf("%w: reconnect_min = %v is negative", ErrConfig, c.ReconnectMin)
	case c.ReconnectMax < c.ReconnectMin:
		return fmt.Errorf("%w: reconnect_max = %v is below reconnect_min = %v", ErrConfig, c.ReconnectMax, c.ReconnectMin)
	case c.RuleIdle < 0:
		return fmt.Errorf("%w: rule_idle_timeout = %v is negative", ErrConfig, c.RuleIdle)
	case c.RouteKeepalive <= 0 || c.RouteKeepalive*2 > c.RuleIdle:
		return fmt.Errorf("%w: route_keepalive = %v must be positive and at most half of rule_idle_timeout = %v", ErrConfig, c.RouteKeepalive, c.RuleIdle)
	case c.RequestTimeout < 0:
		return fmt.Errorf("%w: request_timeout = %v is negative", ErrConfig, c.RequestTimeout)
	case c.LinkReportInterval < 0:
		return fmt.Errorf("%w: link_report_interval = %v is negative", ErrConfig, c.LinkReportInterval)
	case c.SessionIdle < 0:
		return fmt.Errorf("%w: session_idle_timeout = %v is negative", ErrConfig, c.SessionIdle)
	}
	for _, lim := range []struct {
		key string
		v   int
	}{
		{"max_sessions_per_remote", c.MaxSessionsPerRemote}, {"max_streams_per_session", c.MaxStreamsPerSession},
		{"max_pending_handshakes", c.MaxPendingHandshakes}, {"max_pending_pongs", c.MaxPendingPongs},
		{"max_peers", c.MaxPeers}, {"max_links_per_peer", c.MaxLinksPerPeer}, {"max_link_handshakes", c.MaxLinkHandshakes}, {"max_link_handshakes_per_source", c.MaxLinkHandshakesPerSource},
	} {
		if lim.v < 0 {
			return fmt.Errorf("%w: %s = %d is negative", ErrConfig, lim.key, lim.v)
		}
	}
	if c.Name != "" {
		if err := proto.CheckName(c.Name); err != nil {
			return fmt.Errorf("%w: name: %w", ErrConfig, err)
		}
	}
	if c.Join != "" {
		if _, err := proto.ParseInvite(c.Join); err != nil {
			return fmt.Errorf("%w: join: %w", ErrConfig, err)
		}
	}
	if err := c.AcceptPeers.validate(); err != nil {
		return fmt.Errorf("%w: accept_peers: %w", ErrConfig, err)
	}
	if c.ListenAddr != "" && c.Listener == nil {
		if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
			return fmt.Errorf("%w: listen_addr = %q: %w", ErrConfig, c.ListenAddr, err)
		}
	}
	for i, p := range c.Peers {
		if err := checkPeer(p, c.Identity.Public); err != nil {
			return fmt.Errorf("%w: peers[%d]: %w", ErrConfig, i, err)
		}
	}
	for i, p := range c.Managers {
		if err := checkPeer(p, c.Identity.Public); err != nil {
			return fmt.Errorf("%w: managers[%d]: %w", ErrConfig, i, err)
		}
	}
	return nil
}

func checkPeer(p Peer, self keys.PublicKey) error {
	switch {
	case p.PublicKey.IsZero():
		return errors.New("public_key is missing")
	case p.PublicKey == self:
		return errors.New("public_key is this node's own key")
	case p.Addr == "":
		return errors.New("addr is missing")
	}
	return nil
}
