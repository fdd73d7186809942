package manager_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager"
	"github.com/skywire-mesh/skywire/manager/cluster"
	"github.com/skywire-mesh/skywire/node"
)

// clusterMesh is three (or more) managers in a raft cluster and nodes
// that list them all, everything on loopback TCP in this process.
type clusterMesh struct {
	t       *testing.T
	mgrKeys []keys.KeyPair
	mgrAddr []string // where nodes reach each manager
	peers   []cluster.Peer
	dirs    []string
	firstLn []net.Listener // pre-bound node listeners of the managers
	firstRL []net.Listener // pre-bound raft listeners

	mu   sync.Mutex
	mgrs []*runningMgr // guarded by mu; nil: stopped

	// raftNet, if set, carries the managers' raft traffic (so that a
	// test can partition them); nil: loopback TCP.
	raftNet *meshtest.Network

	nodes     []*runningNode
	nodeKeys  []keys.KeyPair
	nodeAddrs []string
	links     [][2]int

	// mgrCfg and nodeCfg, if set, change a manager's or a node's config
	// before it starts.
	mgrCfg  func(i int, cfg *manager.Config)
	nodeCfg func(i int, cfg *node.Config)
}

type runningMgr struct {
	*manager.Manager
	stop context.CancelFunc
	done chan struct{}
}

type runningNode struct {
	*node.Node
	stop context.CancelFunc
	done chan struct{}
}

func listenTCP(t *testing.T, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	// A restarted member listens on its old port again; the kernel may
	// hold it a moment after the close.
	tstest.WaitFor(t, "listening on "+addr, func() bool {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err == nil
	})
	return ln
}

func clusterLog(t *testing.T, name string) *slog.Logger {
	if os.Getenv("MESHTEST_LOG") != "" {
		return tstest.Logger(t, name+": ")
	}
	return nil
}

func newClusterMesh(t *testing.T, managers, nodes int, links [][2]int) *clusterMesh {
	return newClusterMeshOn(t, nil, managers, nodes, links)
}

func newClusterMeshOn(t *testing.T, raftNet *meshtest.Network, managers, nodes int, links [][2]int) *clusterMesh {
	t.Helper()
	return newClusterMeshCfg(t, &clusterMesh{raftNet: raftNet}, managers, nodes, links)
}

// newClusterMeshCfg starts cm (its raftNet, mgrCfg and nodeCfg set).
func newClusterMeshCfg(t *testing.T, cm *clusterMesh, managers, nodes int, links [][2]int) *clusterMesh {
	t.Helper()
	cm.t, cm.mgrs, cm.nodes, cm.links = t, make([]*runningMgr, managers), make([]*runningNode, nodes), links
	raftNet := cm.raftNet
	for i := range managers {
		cm.mgrKeys = append(cm.mgrKeys, tstest.KeyPair(t))
		ln := listenTCP(t, "127.0.0.1:0")
		var rl net.Listener
		raftAddr := fmt.Sprintf("m%d:7910", i+1)
		if raftNet != nil {
			var err error
			if rl, err = raftNet.Listen(raftAddr); err != nil {
				t.Fatal(err)
			}
		} else {
			rl = listenTCP(t, "127.0.0.1:0")
			raftAddr = rl.Addr().String()
		}
		cm.firstLn, cm.firstRL = append(cm.firstLn, ln), append(cm.firstRL, rl)
		cm.mgrAddr = append(cm.mgrAddr, ln.Addr().String())
		cm.peers = append(cm.peers, cluster.Peer{ID: fmt.Sprintf("m%d", i+1), RaftAddr: raftAddr, PublicKey: cm.mgrKeys[i].Public})
		cm.dirs = append(cm.dirs, t.TempDir())
	}
	for range nodes {
		cm.nodeKeys = append(cm.nodeKeys, tstest.KeyPair(t))
		ln := listenTCP(t, "127.0.0.1:0")
		cm.nodeAddrs = append(cm.nodeAddrs, ln.Addr().String())
		ln.Close()
	}
	for i := range managers {
		cm.startMgr(i)
	}
	for i := range nodes {
		cm.startNode(i)
	}
	t.Cleanup(cm.close)
	return cm
}

func (cm *clusterMesh) startMgr(i int) {
	cm.t.Helper()
	ln, rl := cm.firstLn[i], cm.firstRL[i]
	cm.firstLn[i], cm.firstRL[i] = nil, nil
	if ln == nil {
		ln = listenTCP(cm.t, cm.mgrAddr[i])
		if cm.raftNet != nil {
			var err error
			if rl, err = cm.raftNet.Listen(cm.peers[i].RaftAddr); err != nil {
				cm.t.Fatal(err)
			}
		} else {
			rl = listenTCP(cm.t, cm.peers[i].RaftAddr)
		}
	}
	cfg := manager.DefaultConfig()
	cfg.Identity = cm.mgrKeys[i]
	cfg.Listener = ln
	cfg.LinkKeepalive = tstest.Scaled(100 * time.Millisecond)
	cfg.LinkDeadAfter = tstest.Scaled(3 * time.Second)
	cfg.InstallTimeout = tstest.Scaled(5 * time.Second)
	cfg.Admit = manager.AdmitOpen
	cfg.Cluster = &cluster.Config{ID: cm.peers[i].ID, RaftAddr: cm.peers[i].RaftAddr, Peers: cm.peers,
		DataDir: cm.dirs[i], Listener: rl,
		HeartbeatTimeout: tstest.Scaled(time.Second), ElectionTimeout: tstest.Scaled(time.Second)}
	if cm.raftNet != nil {
		cfg.Cluster.Dial = cm.raftNet.Dialer(cm.peers[i].RaftAddr)
	}
	if cm.mgrCfg != nil {
		cm.mgrCfg(i, &cfg)
	}
	m, err := manager.New(cfg, clusterLog(cm.t, cm.peers[i].ID))
	if err != nil {
		rl.Close()
		cm.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rm := &runningMgr{Manager: m, stop: cancel, done: make(chan struct{})}
	go func() { defer close(rm.done); m.Run(ctx) }()
	cm.mu.Lock()
	cm.mgrs[i] = rm
	cm.mu.Unlock()
}

func (cm *clusterMesh) stopMgr(i int) {
	cm.mu.Lock()
	rm := cm.mgrs[i]
	cm.mgrs[i] = nil
	cm.mu.Unlock()
	if rm != nil {
		rm.stop()
		<-rm.done
	}
}

func (cm *clusterMesh) mgr(i int) *manager.Manager {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	if cm.mgrs[i] == nil {
		return nil
	}
	return cm.mgrs[i].Manager
}

func (cm *clusterMesh) startNode(i int) {
	cm.t.Helper()
	cfg := node.DefaultConfig()
	meshtest.FastTimers(&cfg)
	cfg.Identity = cm.nodeKeys[i]
	cfg.ListenAddr = cm.nodeAddrs[i]
	for j := range cm.mgrKeys {
		cfg.Managers = append(cfg.Managers, node.Peer{PublicKey: cm.mgrKeys[j].Public, Addr: cm.mgrAddr[j]})
	}
	for _, l := range cm.links {
		if l[0] == i {
			cfg.Peers = append(cfg.Peers, node.Peer{PublicKey: cm.nodeKeys[l[1]].Public, Addr: cm.nodeAddrs[l[1]]})
		}
	}
	cfg.ReportRTT = func(keys.PublicKey, time.Duration) time.Duration { return time.Millisecond }
	if cm.nodeCfg != nil {
		cm.nodeCfg(i, &cfg)
	}
	n, err := node.New(cfg, clusterLog(cm.t, fmt.Sprintf("n%d", i)))
	if err != nil {
		cm.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rn := &runningNode{Node: n, stop: cancel, done: make(chan struct{})}
	go func() { defer close(rn.done); n.Run(ctx) }()
	cm.nodes[i] = rn
}

func (cm *clusterMesh) stopNode(i int) {
	if rn := cm.nodes[i]; rn != nil {
		rn.stop()
		<-rn.done
		cm.nodes[i] = nil
	}
}

func (cm *clusterMesh) close() {
	for i := range cm.nodes {
		cm.stopNode(i)
	}
	for i := range cm.mgrs {
		cm.stopMgr(i)
	}
}

// leader waits until exactly one running manager leads and returns it.
func (cm *clusterMesh) leader() int {
	cm.t.Helper()
	at := -1
	tstest.WaitFor(cm.t, "a cluster leader", func() bool {
		at = -1
		for i := range cm.mgrs {
			if m := cm.mgr(i); m != nil && m.IsLeader() {
				if at >= 0 {
					return false
				}
				at = i
			}
		}
		return at >= 0
	})
	return at
}

// waitReady waits until the leader sees every running node and every
// link between running nodes up.
func (cm *clusterMesh) waitReady() int {
	cm.t.Helper()
	l := cm.leader()
	tstest.WaitFor(cm.t, "the leader to see the mesh", func() bool {
		m := cm.mgr(l)
		if m == nil || !m.IsLeader() {
			l = cm.leader()
			return false
		}
		up := map[[2]keys.PublicKey]bool{}
		for _, ni := range m.Nodes() {
			for _, li := range ni.Links {
				if li.Up {
					up[[2]keys.PublicKey{ni.Key, li.Peer}] = true
				}
			}
		}
		for _, lk := range cm.links {
			if cm.nodes[lk[0]] == nil || cm.nodes[lk[1]] == nil {
				continue
			}
			if !up[[2]keys.PublicKey{cm.nodeKeys[lk[0]].Public, cm.nodeKeys[lk[1]].Public}] {
				return false
			}
		}
		return true
	})
	return l
}

func (cm *clusterMesh) ping(from, to int) error { return cm.pingFrom(cm.nodes[from], to) }

// pingFrom pings node to from n: for a goroutine, which must not read
// cm.nodes while the test's goroutine restarts nodes.
func (cm *clusterMesh) pingFrom(n *runningNode, to int) error {
	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(20*time.Second))
	defer cancel()
	n.CloseSession(cm.nodeKeys[to].Public) // a new route each time
	_, err := n.Ping(ctx, cm.nodeKeys[to].Public)
	return err
}

// TestClusterLeaderLoss: the leader is stopped; a new one is elected,
// the routes it committed are still known, installed routes keep
// forwarding, and new routes are set up through the new leader.
func TestClusterLeaderLoss(t *testing.T) {
	tstest.CheckLeaks(t)
	cm := newClusterMesh(t, 3, 4, meshtest.Line(4))
	l := cm.waitReady()
	if err := cm.ping(0, 3); err != nil {
		t.Fatalf("route before the leader loss: %v", err)
	}
	routes := cm.mgr(l).Routes()
	if len(routes) != 1 {
		t.Fatalf("leader has %d routes, want 1", len(routes))
	}
	// Followers hold the route from the log.
	for i := range cm.mgrs {
		tstest.WaitFor(t, fmt.Sprintf("m%d to hold the route", i+1), func() bool { return len(cm.mgr(i).Routes()) == 1 })
	}
	cm.stopMgr(l)
	nl := cm.waitReady()
	if nl == l {
		t.Fatal("the stopped manager still leads")
	}
	tstest.WaitFor(t, "the new leader to take over the route", func() bool {
		rs := cm.mgr(nl).Routes()
		return len(rs) == 1 && rs[0].ID == routes[0].ID
	})
	// The installed route still forwards (the session is the old one).
	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(20*time.Second))
	defer cancel()
	if _, err := cm.nodes[0].Ping(ctx, cm.nodeKeys[3].Public); err != nil {
		t.Fatalf("installed route after the leader loss: %v", err)
	}
	if err := cm.ping(1, 3); err != nil {
		t.Fatalf("new route after the leader loss: %v", err)
	}
	// The old leader comes back as a follower and catches up.
	cm.startMgr(l)
	tstest.WaitFor(t, "the old leader to catch up", func() bool {
		m := cm.mgr(l)
		return m != nil && !m.IsLeader() && len(m.Routes()) == len(cm.mgr(nl).Routes())
	})
}

// TestClusterNoQuorum: with two of three managers down, installed routes
// forward and a new route fails with ErrNoQuorum within the election
// wait; when one manager returns, routes are set up again.
func TestClusterNoQuorum(t *testing.T) {
	tstest.CheckLeaks(t)
	cm := newClusterMesh(t, 3, 3, meshtest.Line(3))
	l := cm.waitReady()
	if err := cm.ping(0, 2); err != nil {
		t.Fatal(err)
	}
	a, b := (l+1)%3, (l+2)%3
	cm.stopMgr(a)
	cm.stopMgr(b)
	tstest.WaitFor(t, "the lone manager to step down", func() bool { return !cm.mgr(l).IsLeader() })
	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(20*time.Second))
	defer cancel()
	if _, err := cm.nodes[0].Ping(ctx, cm.nodeKeys[2].Public); err != nil {
		t.Fatalf("installed route without quorum: %v", err)
	}
	start := time.Now()
	err := cm.ping(1, 2)
	if !errors.Is(err, node.ErrNoQuorum) {
		t.Fatalf("new route without quorum = %v, want ErrNoQuorum", err)
	}
	t.Logf("no quorum reported after %v", time.Since(start))
	// A caller whose own deadline comes before the node's election wait
	// (skywire ping gives a dial 5 s, the same as the wait) hears "no
	// quorum" too, not a timeout.
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err = cm.nodes[0].Ping(sctx, cm.nodeKeys[1].Public)
	scancel()
	if !errors.Is(err, node.ErrNoQuorum) {
		t.Fatalf("new route without quorum, the caller's deadline first = %v, want ErrNoQuorum", err)
	}
	cm.startMgr(a)
	cm.waitReady()
	if err := cm.ping(1, 2); err != nil {
		t.Fatalf("route after recovery: %v", err)
	}
}

// TestClusterDirectoryDropsNodeLostInElection: a node that dies while
// the cluster has no leader deregisters from nobody who can commit it;
// the next leader drops its registration from the replicated directory
// once nodes have had link_dead_after to link (before, every member
// listed it for good). And a leader that stops does not take the
// registrations of its nodes out of the log as its links close.
func TestClusterDirectoryDropsNodeLostInElection(t *testing.T) {
	tstest.CheckLeaks(t)
	cm := newClusterMesh(t, 3, 3, meshtest.Line(3))
	l := cm.waitReady()
	gone := cm.nodeKeys[2].Public
	inLog := func(i int) func() bool { return func() bool { return len(cm.mgr(i).ClusterNodes()) == 3 } }
	for i := range 3 {
		tstest.WaitFor(t, fmt.Sprintf("m%d's log to hold the 3 registrations", i+1), inLog(i))
	}
	cm.stopMgr(l)
	nl := cm.waitReady()
	f := 3 - l - nl
	// They are still there: the leader's links closing as it stopped
	// did not deregister its nodes from the log.
	for _, i := range []int{nl, f} {
		if n := len(cm.mgr(i).ClusterNodes()); n != 3 {
			t.Fatalf("m%d's log holds %d registrations after the leader stopped, want 3", i+1, n)
		}
	}
	// No quorum while the node goes: its deregistration cannot commit.
	cm.stopMgr(f)
	tstest.WaitFor(t, "the lone manager to step down", func() bool { return !cm.mgr(nl).IsLeader() })
	cm.stopNode(2)
	cm.startMgr(f)
	cm.waitReady()
	for _, i := range []int{nl, f} {
		tstest.WaitFor(t, fmt.Sprintf("m%d to drop node 2 from the directory", i+1), func() bool { return !listed(cm.mgr(i), gone) })
	}
	// The nodes that are up stay.
	for _, i := range []int{nl, f} {
		if !listed(cm.mgr(i), cm.nodeKeys[0].Public) || !listed(cm.mgr(i), cm.nodeKeys[1].Public) {
			t.Fatalf("m%d dropped a node that is up", i+1)
		}
	}
}

func listed(m *manager.Manager, k keys.PublicKey) bool {
	for _, ni := range m.Nodes() {
		if ni.Key == k {
			return true
		}
	}
	return false
}

// TestClusterTakeoverKeepsRouteThroughUnregisteredRelay: a new leader
// verifies the routes it took over once links have had time to be
// reported dead, but a relay of a working route may not have registered
// with it yet (a restarted member sees nodes come back one by one, at
// their reconnect backoff). Its neighbours still report their links to
// it, so the route is not known to be down and stays: it was torn down
// as "no path" before (an e2e cluster test lost its open stream so, on a
// loaded machine). A route across a link a registered node no longer
// reports is still repaired at once (TestClusterLeaderLoss, the e2e
// election tests).
func TestClusterTakeoverKeepsRouteThroughUnregisteredRelay(t *testing.T) {
	tstest.CheckLeaks(t)
	relayMgr := -1 // the one manager node 1 registers with; -1: all
	cm := &clusterMesh{nodeCfg: func(i int, cfg *node.Config) {
		if i == 1 && relayMgr >= 0 {
			cfg.Managers = cfg.Managers[relayMgr : relayMgr+1]
		}
	}}
	cm = newClusterMeshCfg(t, cm, 3, 3, meshtest.Line(3))
	l := cm.waitReady()
	relayMgr = l
	cm.stopNode(1)
	cm.startNode(1)
	tstest.WaitFor(t, "a route 0→2 through the restarted relay 1", func() bool { return cm.ping(0, 2) == nil })
	routes := cm.mgr(l).Routes()
	if len(routes) != 1 {
		t.Fatalf("leader has %d routes, want 1", len(routes))
	}
	for i := range cm.mgrs {
		tstest.WaitFor(t, fmt.Sprintf("m%d to hold the route", i+1), func() bool { return len(cm.mgr(i).Routes()) == 1 })
	}
	cm.stopMgr(l) // node 1 now has no manager; nodes 0 and 2 still report their links to it
	nl := cm.leader()
	tstest.WaitFor(t, "the new leader to take over the route", func() bool {
		rs := cm.mgr(nl).Routes()
		return len(rs) == 1 && rs[0].ID == routes[0].ID
	})
	// The new leader judges the routes it took over in the janitor tick
	// that also drops from the directory the nodes not linked to it
	// (both link_dead_after after it started to lead, under one lock):
	// once relay 1 has left the directory, the route has been judged.
	tstest.WaitFor(t, "the new leader to drop relay 1 from the directory", func() bool {
		return !listed(cm.mgr(nl), cm.nodeKeys[1].Public)
	})
	// A route judged down would now be repaired: no path, so no install
	// to wait for; a repair worker reports it within milliseconds. Watch
	// a while longer for that: the route must stay. (A worker starved
	// past the window lets a wrong verdict pass, never a right one fail.)
	for end := time.Now().Add(tstest.Scaled(2 * time.Second)); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if lost := cm.mgr(nl).Stats().RoutesLost; lost != 0 {
			t.Fatalf("the new leader lost %d routes: it tore down the route through the relay that has not registered with it", lost)
		}
		if rs := cm.mgr(nl).Routes(); len(rs) != 1 || rs[0].ID != routes[0].ID {
			t.Fatalf("the new leader's routes: %v, want the taken-over route %d", rs, routes[0].ID)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(20*time.Second))
	defer cancel()
	if _, err := cm.nodes[0].Ping(ctx, cm.nodeKeys[2].Public); err != nil {
		t.Fatalf("the installed route after the takeover: %v", err)
	}
}
