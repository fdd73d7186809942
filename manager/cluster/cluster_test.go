package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

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
	for i := range tc.mems {
		tstest.WaitFor(t, "route 1 on every member", func() bool { return len(tc.mems[i].Routes()) == 1 })
	}
	// A follower refuses writes and names the leader. (Only once it has
	// heard from the leader: the leader's Apply needs one follower, so
	// the other may still know no leader and answer "no quorum".)
	f := (l + 1) % 3
	var nle *NotLeaderError
	if err := tc.mems[f].Apply(route(2, 1, 2)); !errors.As(err, &nle) || nle.Key != tc.kps[l].Public {
		t.Fatalf("follower Apply = %v, want NotLeaderError naming %s", err, tc.kps[l].Public.Short())
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
	// Run on a follower, the add is forwarded to the leader.
	tc.onMember((l+1)%3, func(c *Cluster) error { return c.Add("d", cfg.RaftAddr, kp.Public) })
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
	// And the remove, run on a follower.
	tc.onMember((tc.leader()+2)%3, func(c *Cluster) error { return c.Remove("d") })
	st, _ = tc.mems[tc.leader()].Status(context.Background())
	if len(st.Members) != 3 {
		t.Fatalf("status after remove: %+v", st.Members)
	}
}

// onMember runs fn on member i until it succeeds (an election on a
// loaded machine fails a write with ErrNoQuorum; add and remove are
// idempotent).
func (tc *testCluster) onMember(i int, fn func(*Cluster) error) {
	tc.t.Helper()
	var last error
	tstest.WaitFor(tc.t, "the change through member "+tc.cfgs[i].ID, func() bool {
		last = fn(tc.mems[i])
		if last != nil {
			tc.t.Logf("retrying: %v", last)
		}
		return last == nil
	})
}

func member(k byte, invite string) *Command {
	return &Command{Op: OpMemberJoin, At: time.Now().UnixNano(), Member: &Member{Key: proto.Key{k}, Since: time.Now().UnixNano(), Invite: invite}}
}

func invite(id string, uses int, ttl time.Duration) *Command {
	now := time.Now()
	return &Command{Op: OpInvitePut, At: now.UnixNano(), Invite: &Invite{ID: id, Hash: "00", Uses: uses, Expires: now.Add(ttl).UnixNano()}}
}

// TestClusterForwardsMembership: membership writes submitted at a
// follower are forwarded to the leader, applied on every member, and
// visible at the follower when Submit returns; the state machine decides
// joins alike everywhere (one use per key however many members submit
// it, used-up and removed refused); route writes are not forwarded.
func TestClusterForwardsMembership(t *testing.T) {
	tstest.CheckLeaks(t)
	tc := newTestCluster(t, 3)
	l := tc.leader()
	f1, f2 := (l+1)%3, (l+2)%3
	tc.onMember(f1, func(c *Cluster) error { return c.Submit(invite("inv1", 1, time.Hour)) })
	if _, ok := tc.mems[f1].InviteByID("inv1"); !ok {
		t.Fatal("the invitation submitted at a follower is not there when Submit returns")
	}
	// The same key joins through both followers: one use.
	errs := make(chan error, 2)
	for _, f := range []int{f1, f2} {
		go func() { errs <- tc.mems[f].Submit(member(7, "inv1")) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("join through a follower: %v", err)
		}
	}
	for i := range tc.mems {
		tstest.WaitFor(t, "the join on every member", func() bool {
			j, _ := tc.mems[i].MemberOf(keys.PublicKey{7})
			iv, _ := tc.mems[i].InviteByID("inv1")
			return j && iv.Uses == 0
		})
	}
	// Another key: the invitation is used up, on whichever member.
	if err := tc.mems[f2].Submit(member(8, "inv1")); !errors.Is(err, ErrInviteRefused) || !strings.Contains(err.Error(), "used up") {
		t.Fatalf("join with a used-up invitation = %v, want ErrInviteRefused (used up)", err)
	}
	if err := tc.mems[f2].Submit(member(8, "nope")); !errors.Is(err, ErrInviteRefused) {
		t.Fatalf("join with an unknown invitation = %v, want ErrInviteRefused", err)
	}
	// Removed at a follower: gone everywhere, and it cannot join again.
	del := &Command{Op: OpMemberDel, At: time.Now().UnixNano(), Member: &Member{Key: proto.Key{7}}}
	if err := tc.mems[f1].Submit(del); err != nil {
		t.Fatal(err)
	}
	if err := tc.mems[f1].Submit(del); !errors.Is(err, ErrMemberUnknown) {
		t.Fatalf("removing a key twice = %v, want ErrMemberUnknown", err)
	}
	tc.onMember(f2, func(c *Cluster) error { return c.Submit(invite("inv2", 5, time.Hour)) })
	if err := tc.mems[f2].Submit(member(7, "inv2")); !errors.Is(err, ErrMemberRemoved) {
		t.Fatalf("a removed key joining again = %v, want ErrMemberRemoved", err)
	}
	// Only membership is forwarded.
	if err := tc.mems[f1].Submit(route(9, 1, 2)); err == nil {
		t.Fatal("a route write was submitted through a follower")
	}
	// The leader goes: the membership outlives it.
	tc.stop(l)
	nl := tc.leader()
	if j, gone := tc.mems[nl].MemberOf(keys.PublicKey{7}); j || !gone {
		t.Fatalf("after the leader loss: key 7 joined %v removed %v, want removed", j, gone)
	}
	if _, ok := tc.mems[nl].InviteByID("inv2"); !ok {
		t.Fatal("after the leader loss the invitation is gone")
	}
}

// TestForwardRefusesRouteWrites: a member's forwarded request may carry
// only a membership command.
func TestForwardRefusesRouteWrites(t *testing.T) {
	b, _ := route(1, 1, 2).Encode()
	req, _ := msgpack.Marshal(&forwardReq{Kind: fwdApply, Cmd: b})
	if _, _, err := decodeForwardReq(req); err == nil {
		t.Fatal("a forwarded route write decoded")
	}
	b, _ = invite("x", 1, time.Hour).Encode()
	req, _ = msgpack.Marshal(&forwardReq{Kind: fwdApply, Cmd: b})
	if _, c, err := decodeForwardReq(req); err != nil || c.Op != OpInvitePut {
		t.Fatalf("a forwarded invitation: %v, %v", c, err)
	}
}

// TestStatusBeforeRaftStarts: the stream layer accepts before raft runs;
// a status or forwarded request then must not touch raft (a member asked
// during another's start crashed it with a nil pointer: the e2e test
// found it).
func TestStatusBeforeRaftStarts(t *testing.T) {
	c := &Cluster{ready: make(chan struct{}), done: make(chan struct{}), fwdSem: make(chan struct{}, 1)}
	close(c.done)
	a, b := net.Pipe()
	defer b.Close()
	go func() { c.serveStatus(a); a.Close() }()
	if got, _ := io.ReadAll(b); len(got) != 0 {
		t.Fatalf("status before raft started: %q", got)
	}
}

// TestMembershipStateMachine: expiry is decided with the command's time;
// invitations expired before Prune are forgotten; MaxInvites holds.
func TestMembershipStateMachine(t *testing.T) {
	st := newState()
	now := time.Now()
	iv := invite("a", 2, time.Minute)
	if err := st.apply(iv); err != nil {
		t.Fatal(err)
	}
	late := member(1, "a")
	late.At = now.Add(2 * time.Minute).UnixNano()
	if err := st.apply(late); !errors.Is(err, ErrInviteRefused) || !strings.Contains(err.Error(), "expired") || late.Changed {
		t.Fatalf("join after expiry = %v (changed %v)", err, late.Changed)
	}
	ok := member(1, "a")
	if err := st.apply(ok); err != nil || !ok.Changed {
		t.Fatalf("join = %v (changed %v)", err, ok.Changed)
	}
	again := member(1, "a")
	if err := st.apply(again); err != nil || again.Changed || st.Invites["a"].Uses != 1 {
		t.Fatalf("second join of one key = %v (changed %v, uses %d)", err, again.Changed, st.Invites["a"].Uses)
	}
	prune := invite("b", 1, time.Hour)
	prune.Prune = now.Add(time.Hour).UnixNano()
	if err := st.apply(prune); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Invites["a"]; ok {
		t.Fatal("an invitation expired before Prune was kept")
	}
	for i := len(st.Invites); i < MaxInvites; i++ {
		st.Invites[fmt.Sprint(i)] = Invite{ID: fmt.Sprint(i), Uses: 1, Expires: now.Add(time.Hour).UnixNano()}
	}
	if err := st.apply(invite("over", 1, time.Hour)); !errors.Is(err, ErrTooMany) {
		t.Fatalf("invitation beyond MaxInvites = %v", err)
	}
	// An import adds a key the log lacks, as joined or removed, and
	// leaves one it has alone.
	imp := &Command{Op: OpMemberImport, Member: &Member{Key: proto.Key{9}, Since: 1}}
	if err := st.apply(imp); err != nil || !imp.Changed {
		t.Fatalf("import = %v (changed %v)", err, imp.Changed)
	}
	gone := &Command{Op: OpMemberImport, Removed: true, Member: &Member{Key: proto.Key{1}, Since: 2}}
	if err := st.apply(gone); err != nil || gone.Changed {
		t.Fatalf("import of a key already joined as removed = %v (changed %v), want a no-op", err, gone.Changed)
	}
	rm := &Command{Op: OpMemberImport, Removed: true, Member: &Member{Key: proto.Key{10}, Since: 2}}
	if err := st.apply(rm); err != nil || !rm.Changed {
		t.Fatal(err)
	}
	if _, ok := st.Removed[keys.PublicKey{10}]; !ok {
		t.Fatal("a removed key imported is not removed")
	}
	if err := st.apply(member(10, "b")); !errors.Is(err, ErrMemberRemoved) {
		t.Fatalf("an imported removed key joining = %v, want ErrMemberRemoved", err)
	}
	// A snapshot carries the membership.
	f := &fsm{st: st}
	snap, _ := f.Snapshot()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	back, err := decodeSnapshot(sink.b)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Invites) != MaxInvites || len(back.Members) != 2 || len(back.Removed) != 1 {
		t.Fatalf("snapshot restored %d invitations, %d members, %d removed", len(back.Invites), len(back.Members), len(back.Removed))
	}
}
