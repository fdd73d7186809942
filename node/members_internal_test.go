package node

import (
	"github.com/skywire-mesh/skywire/internal/tstest"

	"testing"

	"github.com/skywire-mesh/skywire/internal/mesh/proto"
)

// What a node in members mode accepts before and after its manager
// answers, and while the manager is unreachable.
func TestPeerAllowedOffline(t *testing.T) {
	mgr, configured, member, stranger := tstest.KeyPair(t), tstest.KeyPair(t), tstest.KeyPair(t), tstest.KeyPair(t)
	cfg := DefaultConfig()
	cfg.Identity = tstest.KeyPair(t)
	cfg.ListenAddr = ""
	cfg.Managers = []Peer{{PublicKey: mgr.Public, Addr: "m:1"}}
	cfg.Peers = []Peer{{PublicKey: configured.Public, Addr: "p:1"}}
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// No manager has answered: only configured peers (operator intent).
	if !n.peerAllowed(configured.Public) || n.peerAllowed(member.Public) || n.peerAllowed(stranger.Public) {
		t.Fatal("before any answer: want only the configured peer")
	}
	// The manager sends its set (in two messages).
	m := n.mgrs[0]
	m.welcomed(&proto.Welcome{Members: true})
	m.handleMembers(&proto.Members{Full: true, Total: 2, Add: []proto.Key{proto.Key(member.Public)}})
	if !n.peerAllowed(configured.Public) || n.peerAllowed(member.Public) {
		t.Fatal("half a full set must not be applied")
	}
	m.handleMembers(&proto.Members{Add: []proto.Key{proto.Key(cfg.Identity.Public)}})
	if n.peerAllowed(configured.Public) || !n.peerAllowed(member.Public) || n.peerAllowed(stranger.Public) {
		t.Fatal("after the full set: want exactly the members")
	}
	// The manager link goes down (nothing clears the set): the last answer
	// stands, and the configured non-member stays out.
	if n.peerAllowed(configured.Public) || !n.peerAllowed(member.Public) {
		t.Fatal("offline: want the last known set")
	}
	// Changes.
	m.handleMembers(&proto.Members{Add: []proto.Key{proto.Key(stranger.Public)}, Del: []proto.Key{proto.Key(member.Public)}})
	if !n.peerAllowed(stranger.Public) || n.peerAllowed(member.Public) {
		t.Fatal("changes not applied")
	}
	// An open manager: everyone.
	m.welcomed(&proto.Welcome{})
	if !n.peerAllowed(member.Public) || !n.peerAllowed(tstest.KeyPair(t).Public) {
		t.Fatal("open manager: want every node")
	}
	st := n.membershipStatus()
	if !st.Known || !st.Open || st.AcceptPeers != AcceptMembers {
		t.Fatalf("status %+v", st)
	}
	n.Close()
}

// Installs naming a known non-member are refused; an eviction drops the
// links and rules of the evicted peer.
func TestInstallAndEvictNonMember(t *testing.T) {
	n, a, b := newTestNode(t)
	n.mgrs = []*mgrConn{{n: n, pending: map[uint64]chan proto.Message{}}}
	m := n.mgrs[0]
	m.welcomed(&proto.Welcome{Members: true})
	m.handleMembers(&proto.Members{Full: true, Total: 2, Add: []proto.Key{proto.Key(a.key), proto.Key(b.key)}})
	stranger := tstest.KeyPair(t).Public
	code, _ := n.installRules(&proto.Install{Route: 9, End: &proto.Endpoint{Remote: proto.Key(stranger), Peer: proto.Key(a.key), InLabel: 20, OutLabel: 21}})
	if code != proto.CodeNotMember || n.Counters().NotMember != 1 {
		t.Fatalf("install for a non-member: code %v, counters %+v", code, n.Counters())
	}
	if code, msg := n.installRules(&proto.Install{Route: 10, Rules: []proto.Rule{{InPeer: proto.Key(b.key), InLabel: 30, OutPeer: proto.Key(a.key), OutLabel: 31}}}); code != proto.CodeOK {
		t.Fatal(code, msg)
	}
	// b is evicted: its links close, rules from and to it go, and the
	// endpoint whose remote it is (route 2) is down.
	m.handleMembers(&proto.Members{Del: []proto.Key{proto.Key(b.key)}})
	select {
	case <-b.current().Done(): // closed (serveLink, not running here, would unlist it)
	default:
		t.Fatal("link to the evicted peer still open")
	}
	b.mu.RLock()
	nb := len(b.rules)
	b.mu.RUnlock()
	a.mu.RLock()
	_, toB := a.rules[5] // relay rule a:5 -> b:6
	a.mu.RUnlock()
	if nb != 0 || toB {
		t.Fatalf("rules remain: %d from b, a->b %v", nb, toB)
	}
	n.mu.Lock()
	ep := n.endpoints[2]
	n.mu.Unlock()
	if ep != nil {
		ep.mu.Lock()
		down := ep.downErr
		ep.mu.Unlock()
		if down == nil {
			t.Fatal("route to the evicted remote is not down")
		}
	}
}
