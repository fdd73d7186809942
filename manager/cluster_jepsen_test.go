package manager_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager"
	"github.com/skywire-mesh/skywire/node"
)

// TestClusterJepsen partitions the three managers' raft traffic at random
// (one member cut off, a member cut from one other, all healed) while
// nodes re-register and request routes, then heals everything and checks:
//
//   - every member holds the same replicated routes, and every running
//     node's registration;
//   - every session a node holds runs over a route the cluster committed
//     with exactly the session's hops, and the route's rules on its relays
//     form one chain (for that route ID, each hop's out-label is the next
//     hop's in-label, both ways): no two hops hold conflicting rules;
//   - every invitation a manager acknowledged (made at a random manager
//     each round: a follower forwards it) is held by every member, with
//     its use.
//
// The schedule is random (the seed is logged); its verdict does not depend
// on timing: requests made without quorum may fail, none may be wrong.
func TestClusterJepsen(t *testing.T) {
	tstest.CheckLeaks(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 13))
	nw := meshtest.NewNetwork()
	const nodes = 5
	cm := &clusterMesh{raftNet: nw}
	cm.mgrCfg = func(_ int, c *manager.Config) {
		c.Admit = manager.AdmitMembers
		c.Members = nil
		for _, kp := range cm.nodeKeys {
			c.Members = append(c.Members, kp.Public)
		}
	}
	newClusterMeshCfg(t, cm, 3, nodes, meshtest.Line(nodes))
	cm.waitReady()
	var acked []string // invitations a manager acknowledged
	addr := func(i int) string { return cm.peers[i].RaftAddr }
	healAll := func() {
		for a := range 3 {
			for b := a + 1; b < 3; b++ {
				nw.Heal(addr(a), addr(b))
			}
		}
	}
	ok, failed := 0, 0
	for round := range 8 {
		healAll()
		switch op := rng.IntN(3); op {
		case 0: // one member alone
			x := rng.IntN(3)
			for y := range 3 {
				if y != x {
					nw.Cut(addr(x), addr(y))
				}
			}
			t.Logf("round %d: m%d partitioned", round, x+1)
		case 1: // one link between two members
			x := rng.IntN(3)
			y := (x + 1 + rng.IntN(2)) % 3
			nw.Cut(addr(x), addr(y))
			t.Logf("round %d: m%d — m%d cut", round, x+1, y+1)
		default:
			t.Logf("round %d: healed", round)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 3 {
			a := rng.IntN(nodes)
			b := (a + 1 + rng.IntN(nodes-1)) % nodes
			from := cm.nodes[a] // read here: a node may be restarted below meanwhile
			wg.Go(func() {
				err := cm.pingFrom(from, b)
				mu.Lock()
				if err == nil {
					ok++
				} else {
					failed++
				}
				mu.Unlock()
			})
		}
		at := rng.IntN(3)
		wg.Go(func() {
			inv, err := cm.mgr(at).Invite(1, time.Hour)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				acked = append(acked, inv.ID)
			}
		})
		if rng.IntN(3) == 0 { // a node re-registers meanwhile
			n := rng.IntN(nodes)
			cm.stopNode(n)
			cm.startNode(n)
		}
		wg.Wait()
	}
	// Each pair's last session stays open; the check below covers them.
	healAll()
	t.Logf("%d route requests succeeded, %d failed during partitions", ok, failed)
	l := cm.waitReady()
	if err := cm.ping(0, nodes-1); err != nil {
		t.Fatalf("route after healing: %v", err)
	}
	leader := cm.mgr(l)

	// The members converge on one replicated state.
	routeSet := func(m *manager.Manager) string {
		var out []string
		for _, r := range m.Routes() {
			out = append(out, fmt.Sprint(r.ID, r.Hops))
		}
		slices.Sort(out)
		return fmt.Sprint(out)
	}
	t.Logf("%d invitations acknowledged", len(acked))
	for i := range 3 {
		tstest.WaitFor(t, fmt.Sprintf("m%d to hold every acknowledged invitation", i+1), func() bool {
			have := map[string]bool{}
			for _, iv := range cm.mgr(i).Invitations() {
				have[iv.ID] = iv.Uses == 1
			}
			for _, id := range acked {
				if !have[id] {
					return false
				}
			}
			return true
		})
		tstest.WaitFor(t, fmt.Sprintf("m%d to hold the leader's routes", i+1), func() bool {
			return routeSet(cm.mgr(i)) == routeSet(leader)
		})
		tstest.WaitFor(t, fmt.Sprintf("m%d to list every node", i+1), func() bool {
			got := map[keys.PublicKey]bool{}
			for _, n := range cm.mgr(i).Nodes() {
				got[n.Key] = true
			}
			for _, k := range cm.nodeKeys {
				if !got[k.Public] {
					return false
				}
			}
			return true
		})
	}

	// Every session runs over a committed route with its hops, and the
	// relays' rules for it chain. A relay that restarted during the run
	// lost its rules until the leader repaired the route, so this waits
	// for the repair; conflicting rules would never chain.
	byKey := map[keys.PublicKey]int{}
	for i, k := range cm.nodeKeys {
		byKey[k.Public] = i
	}
	checked := 0
	for i := range nodes {
		for _, s := range cm.nodes[i].Sessions() {
			if !s.Initiator {
				continue
			}
			var problem string
			ok := waitUntil(tstest.Scaled(tstest.WaitTimeout), func() bool {
				cur := sessionHops(cm.nodes[i].Sessions(), s.Route)
				var hops []keys.PublicKey
				found := false
				for _, r := range cm.mgr(l).Routes() {
					if r.ID == s.Route {
						hops, found = r.Hops, true
					}
				}
				switch {
				case cur == nil:
					problem = ""
					return true // the session ended meanwhile
				case !found:
					problem = fmt.Sprintf("n%d has a session over route %d, which the cluster does not hold", i, s.Route)
				case !slices.Equal(hops, cur):
					problem = fmt.Sprintf("route %d: session hops %v, committed %v", s.Route, short(cur), short(hops))
				default:
					problem = chainProblem(cm, byKey, s.Route, hops)
				}
				return problem == ""
			})
			if !ok {
				t.Error(problem)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no session to check")
	}
	t.Logf("%d sessions checked against the log and their relays' rules", checked)
}

func sessionHops(ss []node.SessionInfo, id uint64) []keys.PublicKey {
	for _, s := range ss {
		if s.Route == id && s.Initiator {
			return s.Hops
		}
	}
	return nil
}

// waitUntil polls cond until it holds or d passes (the caller reports
// what was still wrong).
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

func short(ks []keys.PublicKey) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.Short())
	}
	return out
}

// chainProblem says what is wrong with route id's rules on its relays:
// each must hold a rule from its previous hop to its next, and
// consecutive relays' rules must chain by label. (A repair over the same
// hops leaves the old rules to expire, so a relay may hold several; one
// of them must chain.) "" means nothing.
func chainProblem(cm *clusterMesh, byKey map[keys.PublicKey]int, id uint64, hops []keys.PublicKey) string {
	rules := func(i int) []nodeRule {
		var out []nodeRule
		for _, r := range cm.nodes[byKey[hops[i]]].Routes() {
			if r.Route == id && !r.Endpoint && r.InPeer == hops[i-1] && r.OutPeer == hops[i+1] {
				out = append(out, nodeRule{r.InLabel, r.OutLabel})
			}
		}
		return out
	}
	for i := 1; i+1 < len(hops); i++ {
		here := rules(i)
		if len(here) == 0 {
			return fmt.Sprintf("route %d: relay %s has no rule %s → %s", id, hops[i].Short(), hops[i-1].Short(), hops[i+1].Short())
		}
		if i+2 >= len(hops) {
			continue
		}
		next := rules(i + 1)
		chained := false
		for _, a := range here {
			for _, b := range next {
				chained = chained || a.outLabel == b.inLabel
			}
		}
		if !chained {
			return fmt.Sprintf("route %d: %s's rules %v do not chain to %s's %v", id, hops[i].Short(), here, hops[i+1].Short(), next)
		}
	}
	return ""
}

type nodeRule struct{ inLabel, outLabel uint32 }
