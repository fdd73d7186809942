package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/internal/mesh/session"
	"github.com/skywire-mesh/skywire/keys"
)

// Counters are the node's event counters.
type Counters struct {
	Forwarded        uint64 // data frames relayed
	Delivered        uint64 // data frames for routes ending here
	UnknownLabel     uint64 // data frames dropped: no rule for (peer, label)
	Malformed        uint64 // frames dropped as malformed
	NoLink           uint64 // frames dropped: the next hop has no link
	Untrusted        uint64 // route installs and RouteDowns dropped: not from a trusted manager
	BadControl       uint64 // malformed or unexpected control messages
	LinksRefused     uint64 // links that failed the handshake or were refused
	HandshakesFailed uint64 // end-to-end session handshakes that failed
	RulesExpired     uint64
	Installs         uint64 // route installs from managers

	// Refusals (each is also logged, at most every few seconds).
	BadHandshakeReplies   uint64 // handshake replies that did not authenticate, dropped (a lying relay?)
	BadHandshakes         uint64 // msg1 that did not authenticate or came from another key than the route's
	HandshakesDropped     uint64 // msg1 dropped: max_pending_handshakes, or one for the route in progress
	SessionsRefused       uint64 // sessions refused: max_sessions_per_remote
	StreamsRefused        uint64 // streams reset: max_streams_per_session
	PingsDropped          uint64 // route pings not answered: max_pending_pongs
	PeersRefused          uint64 // links closed: max_peers or max_links_per_peer
	LinkHandshakesRefused uint64 // incoming connections closed: max_link_handshakes
	AcceptErrors          uint64 // listener accept errors (e.g. out of file descriptors), retried with backoff
	NotMember             uint64 // peers refused (links in or out, installs naming them, evictions): not members
	ManagerRefusals       uint64 // registrations a manager refused: this node is not a member
}

// ManagerStatus is the state of the link to one configured manager.
type ManagerStatus struct {
	Key        keys.PublicKey
	Addr       string
	Registered bool
	// Refused is why the manager last refused this node ("" once it
	// registered).
	Refused string `json:",omitempty"`
}

// Status summarises the node.
type Status struct {
	Key        keys.PublicKey
	Name       string `json:",omitempty"` // [node] name
	Addr       string
	Managers   []ManagerStatus
	Links      int // peers with at least one live link
	Rules      int
	Endpoints  int
	Sessions   int
	Membership MembershipStatus
	Counters   Counters
}

// LinkInfo describes the links to one peer.
type LinkInfo struct {
	Peer  keys.PublicKey
	RTT   time.Duration // of the link in use
	Conns int           // live links to the peer (both may have dialled)
	Stats link.Stats    // of the link in use
}

// RouteInfo is one forwarding rule.
type RouteInfo struct {
	Route    uint64
	InPeer   keys.PublicKey
	InLabel  uint32
	OutPeer  keys.PublicKey // zero for an endpoint
	OutLabel uint32
	Endpoint bool
	Remote   keys.PublicKey // the other end, for an endpoint
	Idle     time.Duration
}

// SessionInfo is one end-to-end session.
type SessionInfo struct {
	Remote    keys.PublicKey
	Route     uint64
	Initiator bool
	Hops      []keys.PublicKey
	Stats     session.Stats
	// Cipher is the session's AEAD ("aes256gcm", "chacha20poly1305") and
	// HandshakeVersion its handshake's (1 with a node of an older
	// release: ChaCha20-Poly1305).
	Cipher           string
	HandshakeVersion int
}

// PathInfo is a path a manager would choose.
type PathInfo struct {
	Hops    []keys.PublicKey // from this node to the remote, inclusive
	Per     []time.Duration  // RTT of each link
	Latency time.Duration    // sum of Per
}

// Counters returns the node's counters.
func (n *Node) Counters() Counters {
	c := &n.ctr
	return Counters{
		Forwarded: c.forwarded.Load(), Delivered: c.delivered.Load(), UnknownLabel: c.unknownLabel.Load(),
		Malformed: c.malformed.Load(), NoLink: c.noLink.Load(), Untrusted: c.untrusted.Load(),
		BadControl: c.badControl.Load(), LinksRefused: c.linksRefused.Load(), HandshakesFailed: c.handshakesFailed.Load(),
		RulesExpired: c.rulesExpired.Load(), Installs: c.installs.Load(),
		BadHandshakeReplies: c.badReplies.Load(), BadHandshakes: c.badHandshakes.Load(), HandshakesDropped: c.hsDropped.Load(),
		SessionsRefused: c.sessRefused.Load(), StreamsRefused: c.streamsRefused.Load(), PingsDropped: c.pingsDropped.Load(),
		PeersRefused: c.peersRefused.Load(), LinkHandshakesRefused: c.linkHSRefused.Load(), AcceptErrors: c.acceptErrors.Load(),
		NotMember: c.notMember.Load(), ManagerRefusals: c.managerRefused.Load(),
	}
}

// Status returns a summary of the node.
func (n *Node) Status() Status {
	st := Status{Key: n.PublicKey(), Name: n.cfg.Name, Counters: n.Counters(), Rules: n.ruleCount(), Links: len(n.Links()), Membership: n.membershipStatus()}
	if a := n.Addr(); a != nil {
		st.Addr = a.String()
	}
	for _, m := range n.mgrs {
		m.mu.Lock()
		refusal := m.members.refusal
		m.mu.Unlock()
		st.Managers = append(st.Managers, ManagerStatus{Key: m.peer.PublicKey, Addr: m.peer.Addr, Registered: m.up(), Refused: refusal})
	}
	n.mu.Lock()
	st.Endpoints = len(n.endpoints)
	for _, ep := range n.endpoints {
		if ep.sess.Load() != nil {
			st.Sessions++
		}
	}
	n.mu.Unlock()
	return st
}

// Links returns the peers with live links, sorted by key.
func (n *Node) Links() []LinkInfo {
	ps := n.peerList()
	var out []LinkInfo
	for _, p := range ps {
		p.mu.RLock()
		k := len(p.links)
		var cur *link.Conn
		if k > 0 {
			cur = p.links[k-1]
		}
		p.mu.RUnlock()
		if cur == nil {
			continue
		}
		out = append(out, LinkInfo{Peer: p.key, RTT: cur.RTT(), Conns: k, Stats: cur.Stats()})
	}
	slices.SortFunc(out, func(a, b LinkInfo) int { return compareKeys(a.Peer, b.Peer) })
	return out
}

// Routes returns every forwarding rule.
func (n *Node) Routes() []RouteInfo {
	now := n.now.Load()
	ps := n.peerList()
	var out []RouteInfo
	for _, p := range ps {
		p.mu.RLock()
		for label, r := range p.rules {
			ri := RouteInfo{Route: r.route, InPeer: p.key, InLabel: label, Idle: time.Duration(max(now-r.lastUsed.Load(), 0))}
			if r.ep != nil {
				ri.Endpoint, ri.Remote = true, r.ep.remote
				_, ri.OutLabel = r.ep.next()
				if o, _ := r.ep.next(); o != nil {
					ri.OutPeer = o.key
				}
			} else {
				ri.OutPeer, ri.OutLabel = r.out.key, r.outLabel
			}
			out = append(out, ri)
		}
		p.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b RouteInfo) int {
		if a.Route != b.Route {
			if a.Route < b.Route {
				return -1
			}
			return 1
		}
		return compareKeys(a.InPeer, b.InPeer)
	})
	return out
}

// Sessions returns the live end-to-end sessions.
func (n *Node) Sessions() []SessionInfo {
	n.mu.Lock()
	var eps []*endpoint
	for _, ep := range n.endpoints {
		eps = append(eps, ep)
	}
	n.mu.Unlock()
	var out []SessionInfo
	for _, ep := range eps {
		rs := ep.sess.Load()
		if rs == nil {
			continue
		}
		ep.mu.Lock()
		hops := slices.Clone(ep.hops)
		ep.mu.Unlock()
		out = append(out, SessionInfo{Remote: ep.remote, Route: ep.id, Initiator: ep.initiator, Hops: hops, Stats: rs.s.Stats(),
			Cipher: rs.suite.String(), HandshakeVersion: int(rs.version)})
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return compareKeys(a.Remote, b.Remote) })
	return out
}

// RouteTo asks a manager which path a route to remote would take now,
// without installing it.
func (n *Node) RouteTo(ctx context.Context, remote keys.PublicKey) (PathInfo, error) {
	msg, err := n.ask(ctx, func(req uint64) proto.Message {
		return &proto.PathQuery{Req: req, Dst: proto.Key(remote), MaxHops: uint8(n.cfg.HopLimit)}
	})
	if err != nil {
		return PathInfo{}, fmt.Errorf("route to %s: %w", remote.Short(), err)
	}
	reply, ok := msg.(*proto.PathReply)
	if !ok {
		return PathInfo{}, fmt.Errorf("route to %s: manager answered %s", remote.Short(), msg.Type())
	}
	if reply.Code != proto.CodeOK {
		return PathInfo{}, fmt.Errorf("route to %s: %w: %s", remote.Short(), ErrNoRoute, reply.Msg)
	}
	pi := PathInfo{Per: reply.Per}
	for _, h := range reply.Hops {
		pi.Hops = append(pi.Hops, h.PublicKey())
	}
	for _, d := range reply.Per {
		pi.Latency += d
	}
	return pi, nil
}

// DirectoryEntry is a node registered with the manager.
type DirectoryEntry struct {
	Key keys.PublicKey
	// Name is the name the node claims (Config.Name); "" for none.
	Name  string `json:",omitempty"`
	Addrs []string
	Apps  []proto.App
	// AppsHidden: the node keeps its app list private.
	AppsHidden bool
	Links      []proto.LinkState
	Since      time.Time
}

// Directory fetches the whole directory from a manager, page by page.
func (n *Node) Directory(ctx context.Context) ([]DirectoryEntry, error) {
	var out []DirectoryEntry
	for {
		off := uint32(len(out))
		msg, err := n.ask(ctx, func(req uint64) proto.Message {
			return &proto.DirectoryQuery{Req: req, Offset: off, Limit: proto.MaxPage}
		})
		if err != nil {
			return nil, fmt.Errorf("directory: %w", err)
		}
		reply, ok := msg.(*proto.DirectoryReply)
		if !ok {
			return nil, fmt.Errorf("directory: manager answered %s", msg.Type())
		}
		for _, e := range reply.Nodes {
			out = append(out, DirectoryEntry{Key: e.Key.PublicKey(), Name: e.Name, Addrs: e.Addrs, Apps: e.Apps, AppsHidden: e.AppsHidden, Links: e.Links, Since: time.Unix(0, e.Since)})
		}
		if len(reply.Nodes) == 0 || len(out) >= int(reply.Total) {
			return out, nil
		}
	}
}
