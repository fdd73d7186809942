package node_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager"
	"github.com/skywire-mesh/skywire/node"
)

func genKeys(t *testing.T, n int) []keys.KeyPair {
	out := make([]keys.KeyPair, n)
	for i := range out {
		out[i] = tstest.KeyPair(t)
	}
	return out
}

func linked(n *node.Node, k keys.PublicKey) bool {
	return slices.ContainsFunc(n.Links(), func(l node.LinkInfo) bool { return l.Peer == k })
}

// A members-only manager: a non-member is refused with the reason on both
// sides and its would-be peer does not link to it; it joins with an
// invitation; removing it closes its links, tears its routes down (no
// relay keeps their rules) and every node drops it.
func TestMeshMembership(t *testing.T) {
	tstest.CheckLeaks(t)
	ks := genKeys(t, 4)
	var mu sync.Mutex
	token := ""
	m := meshtest.New(t, meshtest.Options{
		Nodes:    4,
		Links:    meshtest.Line(4),
		NodeKeys: ks,
		Manager: func(c *manager.Config) {
			c.Admit = manager.AdmitMembers
			c.Members = []keys.PublicKey{ks[0].Public, ks[1].Public, ks[2].Public}
		},
		Node: func(i int, c *node.Config) {
			if i == 3 {
				mu.Lock()
				c.Join = token
				mu.Unlock()
			}
		},
	})
	n0, n1, n2, n3 := m.Nodes[0], m.Nodes[1], m.Nodes[2], m.Nodes[3]
	mgr := m.Manager()

	// Refused, with the reason on both sides.
	m.WaitFor("node 3 refused by the manager", func() bool {
		st := n3.Status()
		return strings.Contains(st.Managers[0].Refused, "not a member of this mesh (ask the manager's operator for an invitation: skywire manager invite)") &&
			st.Counters.ManagerRefusals > 0
	})
	m.WaitFor("the manager counts the refusal", func() bool { return mgr.Stats().Membership.Refused > 0 })
	m.WaitFor("links 0-1, 1-2", func() bool {
		return linked(n1.Node, ks[0].Public) && linked(n1.Node, ks[2].Public)
	})
	m.WaitFor("node 2 refuses to link to the non-member", func() bool { return n2.Counters().NotMember > 0 })
	if linked(n2.Node, ks[3].Public) {
		t.Fatal("node 2 linked to a non-member")
	}

	// Joins with an invitation.
	inv, err := mgr.Invite(1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	token = inv.Token
	mu.Unlock()
	m.StopNode(3)
	m.StartNode(3)
	m.WaitLinks(meshtest.Line(4))
	if ms := mgr.Members(); len(ms) != 4 || ms[3].Key != ks[3].Public || ms[3].How != "joined" {
		t.Fatalf("members %+v", ms)
	}
	if st := n3.Status(); st.Managers[0].Refused != "" || !st.Membership.Known || st.Membership.Members != 4 {
		t.Fatalf("node 3 status %+v", st)
	}

	// A stream 0 -> 3 across the relays 1 and 2.
	echo(t, n3.Node, 7)
	c, err := n0.Dial(ctxT(t, 20*time.Second), ks[3].Public, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, 1000)
	if len(n1.Routes()) == 0 || len(n2.Routes()) == 0 {
		t.Fatal("relays have no rules for the route")
	}

	// Removed.
	if err := mgr.Remove(ks[0].Public); !errors.Is(err, manager.ErrConfigMember) {
		t.Fatalf("removing a config member: %v", err)
	}
	if err := mgr.Remove(ks[3].Public); err != nil {
		t.Fatal(err)
	}
	m.WaitFor("node 2 drops its link to the removed node", func() bool { return !linked(n2.Node, ks[3].Public) })
	m.WaitFor("relays drop the route's rules", func() bool { return len(n1.Routes()) == 0 && len(n2.Routes()) == 0 })
	m.WaitFor("node 0 ends the route", func() bool { return len(n0.Routes()) == 0 })
	c.SetDeadline(time.Now().Add(tstest.Scaled(20 * time.Second)))
	if _, err := io.ReadFull(c, make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read on a stream to the removed node: %v", err)
	}
	m.WaitFor("the removed node is refused again", func() bool {
		return strings.Contains(n3.Status().Managers[0].Refused, "removed")
	})
	if slices.ContainsFunc(mgr.Nodes(), func(ni manager.NodeInfo) bool { return ni.Key == ks[3].Public }) {
		t.Fatal("the removed node is still registered")
	}
	// Dialling it fails; node 2 keeps refusing to link.
	if _, err := n0.Dial(ctxT(t, 20*time.Second), ks[3].Public, 7); err == nil {
		t.Fatal("dial to a removed node succeeded")
	}
	if linked(n2.Node, ks[3].Public) {
		t.Fatal("node 2 linked to the removed node again")
	}
}

// accept_peers: members (the default), any, or a list.
func TestAcceptPeers(t *testing.T) {
	tstest.CheckLeaks(t)
	tests := []struct {
		name   string
		accept func(ks []keys.KeyPair) node.AcceptPeers
		link12 bool // node 1 links to node 2, which is not a member
	}{
		{"members", func([]keys.KeyPair) node.AcceptPeers { return node.AcceptPeers{} }, false},
		{"any", func([]keys.KeyPair) node.AcceptPeers { return node.AcceptPeers{Mode: node.AcceptAny} }, true},
		{"list without 2", func(ks []keys.KeyPair) node.AcceptPeers {
			return node.AcceptPeers{Mode: node.AcceptList, Keys: []keys.PublicKey{ks[0].Public}}
		}, false},
		{"list with 2", func(ks []keys.KeyPair) node.AcceptPeers {
			return node.AcceptPeers{Mode: node.AcceptList, Keys: []keys.PublicKey{ks[0].Public, ks[2].Public}}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks := genKeys(t, 3)
			m := meshtest.New(t, meshtest.Options{
				Nodes: 3, Links: meshtest.Line(3), NodeKeys: ks,
				Manager: func(c *manager.Config) {
					c.Admit = manager.AdmitMembers
					c.Members = []keys.PublicKey{ks[0].Public, ks[1].Public}
				},
				Node: func(i int, c *node.Config) {
					switch i {
					case 1:
						c.AcceptPeers = tt.accept(ks)
					case 2: // not a member, and links with anyone
						c.AcceptPeers = node.AcceptPeers{Mode: node.AcceptAny}
					}
				},
			})
			m.WaitFor("link 0-1", func() bool { return linked(m.Nodes[1].Node, ks[0].Public) })
			if tt.link12 {
				m.WaitFor("link 1-2", func() bool { return linked(m.Nodes[1].Node, ks[2].Public) })
				return
			}
			// Before node 1 hears the member set it may link to node 2 (a
			// configured peer); the set then evicts it, and the link closes
			// asynchronously after the refusal is counted. The lower index
			// dials, and node 1 does not dial a non-member again, so once
			// unlinked it stays so.
			m.WaitFor("node 1 to refuse node 2 and drop any link to it", func() bool {
				return m.Nodes[1].Counters().NotMember > 0 && !linked(m.Nodes[1].Node, ks[2].Public)
			})
		})
	}
}
