package manager_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager"
	"github.com/skywire-mesh/skywire/node"
)

// TestClusterMembershipReplicated: in a cluster that admits members only,
// an invitation made at a follower is honoured by every manager; a node
// joining with it through all three managers spends one use and becomes
// a member at every one (so a member node accepts its link); the
// membership outlives the leader; a removal made at a follower evicts the
// node at every manager, and a manager that was down learns it from the
// log.
func TestClusterMembershipReplicated(t *testing.T) {
	tstest.CheckLeaks(t)
	var mu sync.Mutex
	join := ""
	var cm *clusterMesh
	cm = &clusterMesh{
		mgrCfg: func(i int, cfg *manager.Config) {
			cfg.Admit = manager.AdmitMembers
			cfg.Members = []keys.PublicKey{cm.nodeKeys[0].Public, cm.nodeKeys[1].Public}
		},
		nodeCfg: func(i int, cfg *node.Config) {
			mu.Lock()
			defer mu.Unlock()
			if i == 2 {
				cfg.Join = join
			}
		},
	}
	newClusterMeshCfg(t, cm, 3, 2, [][2]int{{0, 1}})
	l := cm.waitReady()

	// An invitation made at a follower (forwarded to the leader).
	var inv manager.Invitation
	f := (l + 1) % 3
	tstest.WaitFor(t, "an invitation made at a follower", func() bool {
		var err error
		inv, err = cm.mgr(f).Invite(1, time.Hour)
		if err != nil {
			t.Logf("retrying: %v", err)
		}
		return err == nil
	})
	for i := range 3 {
		tstest.WaitFor(t, fmt.Sprintf("m%d to hold the invitation", i+1), func() bool {
			return cm.mgr(i).Stats().Membership.Invites == 1
		})
	}

	// A new node joins with it: it registers with all three managers.
	k2 := tstest.KeyPair(t)
	ln := listenTCP(t, "127.0.0.1:0")
	cm.nodeKeys, cm.nodeAddrs = append(cm.nodeKeys, k2), append(cm.nodeAddrs, ln.Addr().String())
	ln.Close()
	cm.nodes = append(cm.nodes, nil)
	cm.links = append(cm.links, [2]int{2, 1})
	mu.Lock()
	join = inv.Token
	mu.Unlock()
	cm.startNode(2)
	joined := func(m *manager.Manager, k keys.PublicKey) bool {
		for _, mi := range m.Members() {
			if mi.Key == k {
				return mi.How == "joined"
			}
		}
		return false
	}
	for i := range 3 {
		tstest.WaitFor(t, fmt.Sprintf("m%d to list the node that joined", i+1), func() bool {
			m := cm.mgr(i)
			return joined(m, k2.Public) && m.Stats().Membership.Invites == 0 && registered(m, k2.Public)
		})
	}
	// Node 1 accepts node 2's link (its managers told it 2 is a member),
	// and a route crosses it.
	l = cm.waitReady()
	if err := cm.ping(0, 2); err != nil {
		t.Fatalf("route to the node that joined: %v", err)
	}

	// The leader goes; the membership stays.
	cm.stopMgr(l)
	nl := cm.waitReady()
	if !joined(cm.mgr(nl), k2.Public) {
		t.Fatal("the new leader does not list the node that joined")
	}
	if err := cm.ping(0, 2); err != nil {
		t.Fatalf("route to the node that joined after the leader loss: %v", err)
	}

	// Removed at the running follower: evicted at every manager.
	rf := 3 - l - nl
	tstest.WaitFor(t, "the removal made at a follower", func() bool {
		err := cm.mgr(rf).Remove(k2.Public)
		if err != nil && !errors.Is(err, manager.ErrNotMember) {
			t.Logf("retrying: %v", err)
			return false
		}
		return true
	})
	for _, i := range []int{nl, rf} {
		tstest.WaitFor(t, fmt.Sprintf("m%d to evict the removed node", i+1), func() bool {
			m := cm.mgr(i)
			return !joined(m, k2.Public) && !registered(m, k2.Public) && m.Stats().Membership.Evicted == 1
		})
	}
	// The manager that was down catches up from the log and refuses it
	// too.
	cm.startMgr(l)
	tstest.WaitFor(t, "the restarted manager to drop the removed node", func() bool {
		m := cm.mgr(l)
		return m != nil && !joined(m, k2.Public) && len(m.Members()) == 2 && !registered(m, k2.Public)
	})
}

func registered(m *manager.Manager, k keys.PublicKey) bool {
	for _, ni := range m.Nodes() {
		if ni.Key == k {
			return true
		}
	}
	return false
}

// TestClusterImportsMembersFile: a manager that ran alone before it
// joined a cluster brings its members file into the log (joined and
// removed keys), whether it leads or not: every manager lists the joined
// key, and a key the log already has is not touched.
func TestClusterImportsMembersFile(t *testing.T) {
	tstest.CheckLeaks(t)
	joinedKey, removedKey := tstest.KeyPair(t).Public, tstest.KeyPair(t).Public
	file := filepath.Join(t.TempDir(), "manager-members.json")
	b, err := json.Marshal(map[string]any{"version": 1,
		"members": []map[string]any{{"key": joinedKey, "since": time.Now().Add(-time.Hour), "invite": "old"}},
		"invites": []any{},
		"removed": []map[string]any{{"key": removedKey, "since": time.Now().Add(-time.Minute)}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var cm *clusterMesh
	cm = &clusterMesh{mgrCfg: func(i int, cfg *manager.Config) {
		cfg.Admit = manager.AdmitMembers
		cfg.Members = []keys.PublicKey{cm.nodeKeys[0].Public, cm.nodeKeys[1].Public}
		if i == 1 {
			cfg.MembersFile = file
		}
	}}
	newClusterMeshCfg(t, cm, 3, 2, [][2]int{{0, 1}})
	cm.waitReady()
	for i := range 3 {
		tstest.WaitFor(t, fmt.Sprintf("m%d to list the imported member", i+1), func() bool {
			m := cm.mgr(i)
			found := false
			for _, mi := range m.Members() {
				if mi.Key == removedKey {
					return false
				}
				found = found || (mi.Key == joinedKey && mi.How == "joined" && mi.Invite == "old")
			}
			return found
		})
	}
}
