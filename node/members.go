package node

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/keys"
)

// Peer acceptance modes (AcceptPeers.Mode).
const (
	// AcceptMembers links only to members of the managers' meshes (every
	// node, if a manager admits every key).
	AcceptMembers = "members"
	// AcceptAny links to any node.
	AcceptAny = "any"
	// AcceptList links only to the keys listed.
	AcceptList = "list"
)

// ErrNotMember: a manager refused this node: it is not a member of the
// manager's mesh (or its invitation was refused).
var ErrNotMember = errors.New("not a member of this mesh (ask the manager's operator for an invitation: skywire manager invite)")

// errPeerNotMember: a peer is not one this node links to.
var errPeerNotMember = errors.New("peer is not a member of this mesh")

// AcceptPeers says which peers a node links with, in both directions.
type AcceptPeers struct {
	// Mode is AcceptMembers (the default when empty), AcceptAny or
	// AcceptList.
	Mode string
	// Keys are the peers accepted with AcceptList.
	Keys []keys.PublicKey
}

func (a *AcceptPeers) validate() error {
	if a.Mode == "" {
		a.Mode = AcceptMembers
	}
	switch a.Mode {
	case AcceptMembers, AcceptAny:
		if len(a.Keys) > 0 {
			return fmt.Errorf("keys are given only with a list")
		}
	case AcceptList:
		if len(a.Keys) == 0 {
			return fmt.Errorf("an empty list accepts no peer; list keys, or use %q or %q", AcceptMembers, AcceptAny)
		}
		for i, k := range a.Keys {
			if k.IsZero() {
				return fmt.Errorf("[%d] is empty", i)
			}
		}
	default:
		return fmt.Errorf("mode %q, want %q, %q or a list of keys", a.Mode, AcceptMembers, AcceptAny)
	}
	return nil
}

// mgrMembers is what one manager said about membership. Guarded by
// mgrConn.mu.
type mgrMembers struct {
	known   bool                    // the manager has told us (since the node started)
	open    bool                    // it admits every key
	set     map[keys.PublicKey]bool // its members, when not open
	staging map[keys.PublicKey]bool // a full set being received
	want    int                     // size of the full set being received
	refusal string                  // why it last refused us; "" once registered
}

// MembershipStatus is what a node knows of its managers' membership.
type MembershipStatus struct {
	AcceptPeers string // members, any or list
	// Known: a manager told this node who is a member (since it started);
	// until then only configured peers are accepted in members mode.
	Known   bool
	Open    bool // a manager admits every key
	Members int  // members known (largest set of any manager)
}

// peerAllowed reports whether this node links with k.
//
// In members mode, k is allowed if a manager said it admits every key, or
// lists k. Managers' answers are kept while they are unreachable (the last
// known set). Before any manager has answered since the node started, only
// the node's configured peers (explicit operator intent) are allowed.
func (n *Node) peerAllowed(k keys.PublicKey) bool {
	switch n.cfg.AcceptPeers.Mode {
	case AcceptAny:
		return true
	case AcceptList:
		return slices.Contains(n.cfg.AcceptPeers.Keys, k)
	}
	known := false
	for _, m := range n.mgrs {
		m.mu.Lock()
		mm := m.members
		ok := mm.known && (mm.open || mm.set[k])
		known = known || mm.known
		m.mu.Unlock()
		if ok {
			return true
		}
	}
	if known {
		return false
	}
	return slices.ContainsFunc(n.cfg.Peers, func(p Peer) bool { return p.PublicKey == k })
}

// refusePeer counts and logs a peer refused for not being a member.
func (n *Node) refusePeer(k keys.PublicKey, what string) {
	n.ctr.notMember.Add(1)
	n.logs.notMember.log(n.log, slog.LevelWarn, what+": not a member of this mesh", "peer", k)
}

// refuseConfiguredPeer counts a configured peer this node does not dial
// (not a member); it warns once per run of refusals, then logs at debug.
func (n *Node) refuseConfiguredPeer(log *slog.Logger, k keys.PublicKey, warned *bool) {
	n.ctr.notMember.Add(1)
	if *warned {
		log.Debug("still not linking to configured peer: not a member of this mesh", "peer", k)
		return
	}
	*warned = true
	log.Warn("not linking to configured peer: not a member of this mesh", "peer", k)
}

// welcomed records a manager's Welcome: an open manager makes every node
// a member; a members-only one sends its set next.
func (m *mgrConn) welcomed(w *proto.Welcome) {
	m.mu.Lock()
	m.members.refusal = ""
	if !w.Members {
		m.members.known, m.members.open, m.members.set = true, true, nil
	}
	m.mu.Unlock()
}

// refusedBy records a manager's refusal.
func (m *mgrConn) refusedBy(w *proto.Welcome) {
	m.mu.Lock()
	m.members.refusal = fmt.Sprintf("%s: %s", w.Code, w.Msg)
	m.mu.Unlock()
}

// handleMembers applies a Members message from this manager and drops the
// links, rules and routes of keys that stopped being members.
func (m *mgrConn) handleMembers(msg *proto.Members) {
	n := m.n
	m.mu.Lock()
	mm := &m.members
	var check []keys.PublicKey // keys that may have lost membership
	switch {
	case msg.Full:
		mm.staging = make(map[keys.PublicKey]bool, msg.Total)
		mm.want = int(msg.Total)
		fallthrough
	case mm.staging != nil:
		for _, k := range msg.Add {
			mm.staging[k.PublicKey()] = true
		}
		if len(mm.staging) >= mm.want {
			mm.set, mm.staging, mm.known, mm.open = mm.staging, nil, true, false
			check = n.linkedKeys()
		}
	default:
		if mm.set == nil {
			mm.set = make(map[keys.PublicKey]bool)
		}
		for _, k := range msg.Add {
			mm.set[k.PublicKey()] = true
		}
		for _, k := range msg.Del {
			delete(mm.set, k.PublicKey())
			check = append(check, k.PublicKey())
		}
	}
	m.mu.Unlock()
	for _, k := range check {
		if !n.peerAllowed(k) {
			n.evictPeer(k)
		}
	}
}

// evictPeer drops everything this node has with k, which is no longer a
// member: its links, the rules that forward from or to it, and the routes
// whose other end or next hop it is.
func (n *Node) evictPeer(k keys.PublicKey) {
	n.mu.Lock()
	p := n.peers[k]
	var eps []*endpoint
	for _, ep := range n.endpoints {
		ep.mu.Lock()
		gone := ep.remote == k || (ep.out != nil && ep.out.key == k)
		ep.mu.Unlock()
		if gone {
			eps = append(eps, ep)
		}
	}
	peers := make([]*peer, 0, len(n.peers))
	for _, o := range n.peers {
		peers = append(peers, o)
	}
	n.mu.Unlock()
	var conns []*link.Conn
	if p != nil {
		p.mu.Lock()
		conns = slices.Clone(p.links)
		clear(p.rules)
		p.mu.Unlock()
	}
	for _, o := range peers {
		o.mu.Lock()
		for l, r := range o.rules {
			if r.out == p && p != nil {
				delete(o.rules, l)
			}
		}
		o.mu.Unlock()
	}
	if len(conns) > 0 || len(eps) > 0 {
		n.ctr.notMember.Add(1)
		n.log.Warn("peer removed from the mesh: dropping its links and routes", "peer", k, "links", len(conns), "routes", len(eps))
	}
	for _, c := range conns {
		c.CloseNow() // no linger for a peer that is no longer a member
	}
	for _, ep := range eps {
		n.routeDown(&proto.RouteDown{Route: ep.id, Code: proto.CodeNotMember, Msg: fmt.Sprintf("%s was removed from the mesh", k.Short())})
	}
}

// linkedKeys are the keys this node has peers or routes with.
func (n *Node) linkedKeys() []keys.PublicKey {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]keys.PublicKey, 0, len(n.peers)+len(n.endpoints))
	for k := range n.peers {
		out = append(out, k)
	}
	for _, ep := range n.endpoints {
		out = append(out, ep.remote)
	}
	return out
}

// dropRouteRules deletes the relay rules of route id (it is gone).
func (n *Node) dropRouteRules(id uint64) {
	for _, p := range n.peerList() {
		p.mu.Lock()
		for l, r := range p.rules {
			if r.route == id && r.ep == nil {
				delete(p.rules, l)
			}
		}
		p.mu.Unlock()
	}
}

// installNamesNonMember returns a key an Install names (a hop or the
// remote end) that a manager said is not a member, if any. Only in members
// mode, and only once a manager has told: installs come from trusted
// managers, which admit only members anyway; this catches one that
// installs routes for a node another manager evicted, or that raced an
// eviction. (In the other modes links to unaccepted peers do not exist, so
// an install naming one fails with CodeNoLink.)
func (n *Node) installNamesNonMember(in *proto.Install) (keys.PublicKey, bool) {
	if n.cfg.AcceptPeers.Mode != AcceptMembers || !n.membershipStatus().Known {
		return keys.PublicKey{}, false
	}
	var ks []proto.Key
	for _, r := range in.Rules {
		ks = append(ks, r.InPeer, r.OutPeer)
	}
	if in.End != nil {
		ks = append(ks, in.End.Remote, in.End.Peer)
	}
	for _, k := range ks {
		if !n.peerAllowed(k.PublicKey()) {
			return k.PublicKey(), true
		}
	}
	return keys.PublicKey{}, false
}

// membershipStatus summarises what the node knows.
func (n *Node) membershipStatus() MembershipStatus {
	st := MembershipStatus{AcceptPeers: n.cfg.AcceptPeers.Mode}
	for _, m := range n.mgrs {
		m.mu.Lock()
		st.Known = st.Known || m.members.known
		st.Open = st.Open || (m.members.known && m.members.open)
		st.Members = max(st.Members, len(m.members.set))
		m.mu.Unlock()
	}
	return st
}
