package cluster

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

// testCluster is n members on loopback, each with its own data_dir.
type testCluster struct {
	t     *testing.T
	kps   []keys.KeyPair
	cfgs  []Config
	mems  []*Cluster
	hooks []Hooks
}

func newTestCluster(t *testing.T, n int) *testCluster { return newTestClusterFor(t, n, false) }

func newTestClusterFor(t *testing.T, n int, figures bool) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, kps: make([]keys.KeyPair, n), cfgs: make([]Config, n), mems: make([]*Cluster, n), hooks: make([]Hooks, n)}
	var peers []Peer
	for i := range n {
		tc.kps[i] = tstest.KeyPair(t)
		// Reserve a port: raft addresses are fixed in the configuration.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		peers = append(peers, Peer{ID: string(rune('a' + i)), RaftAddr: addr, PublicKey: tc.kps[i].Public})
	}
	for i := range n {
		// Timers for a loaded machine running -race (raft's defaults are
		// 1 s); the figures test sets the shipped defaults.
		hb := tstest.Scaled(time.Second)
		if figures {
			hb = DefaultHeartbeatTimeout
		}
		tc.cfgs[i] = Config{ID: peers[i].ID, RaftAddr: peers[i].RaftAddr, Peers: peers, DataDir: t.TempDir(),
			HeartbeatTimeout: hb, ElectionTimeout: hb}
		if err := tc.cfgs[i].Validate(tc.kps[i].Public); err != nil {
			t.Fatal(err)
		}
		tc.start(i)
	}
	t.Cleanup(func() {
		for i := range tc.mems {
			tc.stop(i)
		}
	})
	return tc
}

func (tc *testCluster) start(i int) {
	tc.t.Helper()
	c, err := Open(tc.cfgs[i], link.Config{Local: tc.kps[i]}, tstest.Logger(tc.t, tc.cfgs[i].ID+": "), tc.hooks[i])
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.mems[i] = c
}

func (tc *testCluster) stop(i int) {
	if tc.mems[i] != nil {
		tc.mems[i].Close()
		tc.mems[i] = nil
	}
}

// leader waits for one running member to lead and returns its index.
func (tc *testCluster) leader() int {
	tc.t.Helper()
	at := -1
	tstest.WaitFor(tc.t, "a leader", func() bool {
		for i, c := range tc.mems {
			if c != nil && c.IsLeader() {
				at = i
				return true
			}
		}
		return false
	})
	return at
}

func route(id uint64, hops ...byte) *Command {
	r := &Route{ID: id, MaxHops: 8}
	for _, h := range hops {
		var k proto.Key
		k[0] = h
		r.Hops = append(r.Hops, k)
	}
	return &Command{Op: OpRoutePut, Route: r}
}

func TestClusterReplicatesAndSurvivesLeaderLoss(t *testing.T) {
	tstest.CheckLeaks(t)
	tc := newTestCluster(t, 3)
	l := tc.leader()
	if err := tc.mems[l].Apply(route(1, 1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	// A follower refuses writes and names the leader.
	f := (l + 1) % 3
	var nle *NotLeaderError
	if err := tc.mems[f].Apply(route(2, 1, 2)); !errors.As(err, &nle) || nle.Key != tc.kps[l].Public {
		t.Fatalf("follower Apply = %v, want NotLeaderError naming %s", err, tc.kps[l].Public.Short())
	}
	for i := range tc.mems {
		tstest.WaitFor(t, "route 1 on every member", func() bool { return len(tc.mems[i].Routes()) == 1 })
	}

	tc.stop(l)
	nl := tc.leader()
	if err := tc.mems[nl].Apply(route(3, 4, 5)); err != nil {
		t.Fatalf("apply on the new leader: %v", err)
	}
	// The old leader comes back and catches up from the log.
	tc.start(l)
	tstest.WaitFor(t, "the restarted member to catch up", func() bool { return len(tc.mems[l].Routes()) == 2 })

	st, err := tc.mems[nl].Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 3 || st.LeaderID != tc.cfgs[nl].ID {
		t.Fatalf("status: %+v", st)
	}
	for _, m := range st.Members {
		if m.Err != "" || m.LastIndex == 0 {
			t.Fatalf("member %s: %+v", m.ID, m)
		}
	}
}

func TestClusterNoQuorum(t *testing.T) {
	tstest.CheckLeaks(t)
	tc := newTestCluster(t, 3)
	l := tc.leader()
	tc.stop((l + 1) % 3)
	tc.stop((l + 2) % 3)
	tstest.WaitFor(t, "the lone member to step down", func() bool { return !tc.mems[l].IsLeader() })
	start := time.Now()
	err := tc.mems[l].Apply(route(1, 1, 2))
	if !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("apply without quorum = %v, want ErrNoQuorum", err)
	}
	t.Logf("no quorum answered in %v", time.Since(start))
	tc.start((l + 1) % 3)
	nl := tc.leader()
	if err := tc.mems[nl].Apply(route(1, 1, 2)); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestClusterRefusesOtherKeys(t *testing.T) {
	tstest.CheckLeaks(t)
	tc := newTestCluster(t, 1)
	tc.leader()
	stranger := tstest.KeyPair(t)
	c, err := net.Dial("tcp", tc.cfgs[0].RaftAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(10*time.Second))
	defer cancel()
	lc, err := link.Client(ctx, c, link.Config{Local: stranger}, tc.kps[0].Public)
	if err == nil {
		// The server refuses after the handshake: the link dies.
		_, _, err = lc.Recv()
		lc.Close()
	}
	if err == nil {
		t.Fatal("a key outside the cluster got a raft link")
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	tstest.CheckLeaks(t)
	tc := newTestCluster(t, 1)
	tc.leader()
	for i := range 50 {
		if err := tc.mems[0].Apply(route(uint64(i+1), 1, byte(i+2))); err != nil {
			t.Fatal(err)
		}
	}
	if err := tc.mems[0].Snapshot(); err != nil {
		t.Fatal(err)
	}
	tc.stop(0)
	tc.start(0)
	tstest.WaitFor(t, "the state restored", func() bool { return len(tc.mems[0].Routes()) == 50 })
}

// TestClusterAddRemove: a fourth member started with join = true does
// not bootstrap; once the leader adds it, it gets the log, and status
// lists it with its index; removed, it is gone from the configuration.
func TestClusterAddRemove(t *testing.T) {
	tstest.CheckLeaks(t)
	tc := newTestCluster(t, 3)
	l := tc.leader()
	if err := tc.mems[l].Apply(route(1, 1, 2)); err != nil {
		t.Fatal(err)
	}
	kp := tstest.KeyPair(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{ID: "d", RaftAddr: ln.Addr().String(), Listener: ln, Peers: tc.cfgs[0].Peers, DataDir: t.TempDir(), Join: true}
	if err := cfg.Validate(kp.Public); err != nil {
		t.Fatal(err)
	}
	d, err := Open(cfg, link.Config{Local: kp}, tstest.Logger(t, "d: "), Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// A follower may not add.
	if err := tc.mems[(l+1)%3].Add("d", cfg.RaftAddr, kp.Public); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("add on a follower = %v, want ErrNotLeader", err)
	}
	tc.onLeader(func(c *Cluster) error { return c.Add("d", cfg.RaftAddr, kp.Public) })
	tstest.WaitFor(t, "the new member to get the log", func() bool { return len(d.Routes()) == 1 })
	st, err := tc.mems[tc.leader()].Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var seen bool
	for _, m := range st.Members {
		if m.ID == "d" {
			seen = m.Err == "" && m.LastIndex > 0 && m.PublicKey == kp.Public
		}
	}
	if len(st.Members) != 4 || !seen {
		t.Fatalf("status after add: %+v", st.Members)
	}
	leader := tc.onLeader(func(c *Cluster) error { return c.Remove("d") })
	st, _ = leader.Status(context.Background())
	if len(st.Members) != 3 {
		t.Fatalf("status after remove: %+v", st.Members)
	}
}

// onLeader runs fn on the leader until it succeeds: a loaded machine may
// hold an election meanwhile, and add and remove are idempotent.
func (tc *testCluster) onLeader(fn func(*Cluster) error) *Cluster {
	tc.t.Helper()
	var c *Cluster
	var last error
	tstest.WaitFor(tc.t, "the change on the leader", func() bool {
		c = tc.mems[tc.leader()]
		last = fn(c)
		if last != nil {
			tc.t.Logf("retrying: %v", last)
		}
		return last == nil
	})
	return c
}
