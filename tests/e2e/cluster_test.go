package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/cli/config"
	"github.com/skywire-mesh/skywire/internal/cli/rolectl"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/manager"
	"github.com/skywire-mesh/skywire/manager/cluster"
	"github.com/skywire-mesh/skywire/node"
)

// clusterNet is three managers in a raft cluster (m1..m3, each its own
// process, config file and state directory) and the nodes a..e of mesh
// (one config file, the same links and detour) listing all three
// managers. The nodes part is a *mesh, so its helpers (start, kill,
// waitRoute, ctl) work on the nodes.
type clusterNet struct {
	*mesh
	mgrs    []string // m1, m2, m3
	mgrCfg  map[string]string
	mgrDir  map[string]string
	mgrProc map[string]*exec.Cmd
}

var clusterMgrs = []string{"m1", "m2", "m3"}

// clusterOpts changes a clusterNet: members, if set, makes every manager
// admit members only, with these nodes as config members; start, if set,
// is the nodes started (all of them if nil).
type clusterOpts struct {
	members []string
	start   []string
}

func newClusterNet(t *testing.T) *clusterNet { return newClusterNetWith(t, clusterOpts{}) }

func newClusterNetWith(t *testing.T, opts clusterOpts) *clusterNet {
	t.Helper()
	dir := t.TempDir()
	cn := &clusterNet{
		mesh: &mesh{t: t, dir: dir, config: filepath.Join(dir, "nodes.toml"), state: filepath.Join(dir, "state"),
			procs: map[string]*exec.Cmd{}, keys: map[string]string{}, addrs: map[string]string{}},
		mgrs: clusterMgrs, mgrCfg: map[string]string{}, mgrDir: map[string]string{}, mgrProc: map[string]*exec.Cmd{},
	}
	m := cn.mesh
	raft := map[string]string{}
	for _, id := range cn.mgrs {
		m.keys[id] = config.DemoKeyPair("e2e-c" + id).Public.String()
		m.addrs[id], raft[id] = freePort(t), freePort(t)
		cn.mgrDir[id] = filepath.Join(dir, id)
		cn.mgrCfg[id] = filepath.Join(dir, id+".toml")
	}
	for _, n := range meshNodes {
		m.keys[n] = config.DemoKeyPair("e2e-" + n).Public.String()
		m.addrs[n] = freePort(t)
	}
	// Each manager: its own config, listing the other two as raft peers.
	for _, id := range cn.mgrs {
		var peers []string
		for _, o := range cn.mgrs {
			if o != id {
				peers = append(peers, fmt.Sprintf("{ id = %q, raft_addr = %q, public_key = %q }", o, raft[o], m.keys[o]))
			}
		}
		cfg := fmt.Sprintf("[viscript]\nstate_dir = %q\n\n[manager]\nidentity = \"demo:e2e-c%s\"\nlisten_addr = %q\n"+
			"cluster = { id = %q, raft_addr = %q, peers = [%s] }\n",
			cn.mgrDir[id], id, m.addrs[id], id, raft[id], strings.Join(peers, ", "))
		if opts.members != nil {
			var ks []string
			for _, n := range opts.members {
				ks = append(ks, fmt.Sprintf("%q", m.keys[n]))
			}
			cfg += fmt.Sprintf("admit = \"members\"\nmembers = [%s]\n", strings.Join(ks, ", "))
		}
		if err := os.WriteFile(cn.mgrCfg[id], []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cn.writeNodes(nil)
	t.Cleanup(cn.cleanup)
	for _, id := range cn.mgrs {
		cn.startMgr(id)
	}
	start := opts.start
	if start == nil {
		start = meshNodes
	}
	for _, n := range start {
		m.start(n, "node", "--profile", n)
	}
	return cn
}

// writeNodes writes the nodes' config: the mesh's line and detour, every
// manager listed, and the invitation each node in join joins with.
func (cn *clusterNet) writeNodes(join map[string]string) {
	m, t := cn.mesh, cn.t
	var mgrList []string
	for _, id := range cn.mgrs {
		mgrList = append(mgrList, fmt.Sprintf("{ public_key = %q, addr = %q }", m.keys[id], m.addrs[id]))
	}
	peer := func(n string) string { return fmt.Sprintf("{ public_key = %q, addr = %q }", m.keys[n], m.addrs[n]) }
	var b strings.Builder
	fmt.Fprintf(&b, "[viscript]\nstate_dir = %q\n\n", m.state)
	links := map[string][]string{"a": {"b"}, "b": {"c", "d"}, "c": {"d"}, "d": {"e"}}
	for _, n := range meshNodes {
		fmt.Fprintf(&b, "[nodes.%s]\nidentity = \"demo:e2e-%s\"\nlisten_addr = %q\nmanagers = [%s]\n", n, n, m.addrs[n], strings.Join(mgrList, ", "))
		var ps []string
		for _, p := range links[n] {
			ps = append(ps, peer(p))
		}
		fmt.Fprintf(&b, "peers = [%s]\n", strings.Join(ps, ", "))
		switch n {
		case "b":
			fmt.Fprintf(&b, "link_cost = { %q = \"50ms\" }\n", m.keys["d"])
		case "d":
			fmt.Fprintf(&b, "link_cost = { %q = \"50ms\" }\n", m.keys["b"])
		}
		if tok := join[n]; tok != "" {
			fmt.Fprintf(&b, "join = %q\n", tok)
		}
		b.WriteString("\n")
	}
	if err := os.WriteFile(m.config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (cn *clusterNet) mgrCmd(id string, args ...string) *exec.Cmd {
	cmd := exec.Command(skywireBin, append([]string{"--config", cn.mgrCfg[id]}, args...)...)
	cmd.Env = append(os.Environ(), "SKYWIRE_SIGNAL_ADDR=", "SKYWIRE_STATE_DIR=")
	return cmd
}

func (cn *clusterNet) startMgr(id string) {
	cn.t.Helper()
	cmd := cn.mgrCmd(id, "--log-level", "debug", "manager")
	startLogged(cn.t, cmd, filepath.Join(cn.dir, id+".log"))
	cn.mgrProc[id] = cmd
}

// killMgr kill -9s manager id and reaps it.
func (cn *clusterNet) killMgr(id string) {
	cn.t.Helper()
	cmd := cn.mgrProc[id]
	if cmd == nil {
		cn.t.Fatalf("manager %s is not running", id)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	delete(cn.mgrProc, id)
}

func (cn *clusterNet) cleanup() {
	for id, cmd := range cn.mgrProc {
		cmd.Process.Kill()
		cmd.Wait()
		delete(cn.mgrProc, id)
	}
	for name, cmd := range cn.procs {
		cmd.Process.Kill()
		cmd.Wait()
		delete(cn.procs, name)
	}
	if cn.t.Failed() {
		for _, n := range append(slices.Clone(cn.mgrs), meshNodes...) {
			if b, err := os.ReadFile(filepath.Join(cn.dir, n+".log")); err == nil {
				cn.t.Logf("%s.log:\n%s", n, tail(b, 4000))
			}
		}
	}
}

// status asks manager id for the cluster's status (what `skywire manager
// cluster status --json` prints).
func (cn *clusterNet) status(id string) (cluster.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var st cluster.Status
	err := rolectl.Get(ctx, filepath.Join(cn.mgrDir[id], "manager.ctl"), "/cluster", &st)
	return st, err
}

// waitLeader waits until a running manager other than not leads and
// every running manager knows it, and returns its ID.
func (cn *clusterNet) waitLeader(not string) string {
	cn.t.Helper()
	var leader string
	waitLong(cn.t, "a leader every running manager agrees on", func() bool {
		leader = ""
		for id := range cn.mgrProc {
			st, err := cn.status(id)
			if err != nil || st.LeaderID == "" || st.LeaderID == not || (leader != "" && st.LeaderID != leader) {
				return false
			}
			leader = st.LeaderID
		}
		_, running := cn.mgrProc[leader]
		return running
	})
	return leader
}

// dial makes node from set up a new route to to (a session, checked with
// one ping) and returns the error. Nodes wait out an election themselves
// (up to 5 s); the generous limit here is only a hang guard.
func (cn *clusterNet) dial(from, to string) error {
	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(90*time.Second))
	defer cancel()
	var r struct {
		RTTNs int64 `json:"rtt_ns"`
	}
	return rolectl.Get(ctx, cn.ctl(from), "/ping?to="+cn.keys[to], &r)
}

// hasSession says whether node from holds a session to to (the route a
// dial would reuse).
func (cn *clusterNet) hasSession(from, to string) bool {
	var ss []node.SessionInfo
	if err := rolectl.Get(context.Background(), cn.ctl(from), "/sessions", &ss); err != nil {
		return false
	}
	for _, s := range ss {
		if s.Remote.String() == cn.keys[to] {
			return true
		}
	}
	return false
}

// waitRegistered waits until every running manager has every node
// registered (replicated and live).
func (cn *clusterNet) waitRegistered() {
	cn.t.Helper()
	waitLong(cn.t, "every node registered with every manager", func() bool {
		for id := range cn.mgrProc {
			st, err := cn.status(id)
			if err != nil || st.Nodes < len(meshNodes) {
				return false
			}
		}
		return true
	})
}

// streamResult is what a clusterStream measured.
type streamResult struct {
	n      int64
	sum    string
	err    error
	maxGap time.Duration // the longest wait for the next bytes, first byte to last
}

// clusterStream streams size bytes from a to e with `skywire nc`, like
// mesh.transfer, but also measures the longest gap between two reads
// of the receiver (a stall), and calls during(sent) as bytes go out.
func (cn *clusterNet) clusterStream(size int64, during func(sent int64)) streamResult {
	t := cn.t
	t.Helper()
	recv := cn.cmd("nc", "--profile", "e", "-l", "9000")
	recv.Stdin = nil
	out, recvErr := startPiped(t, recv, recv.StdoutPipe)
	defer recv.Process.Kill()
	got := make(chan streamResult, 1)
	go func() {
		h := sha256.New()
		buf := make([]byte, 256<<10)
		var r streamResult
		var last time.Time
		for {
			k, err := out.Read(buf)
			if k > 0 {
				now := time.Now()
				if !last.IsZero() {
					r.maxGap = max(r.maxGap, now.Sub(last))
				}
				last = now
				h.Write(buf[:k])
				r.n += int64(k)
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					r.err = err
				}
				break
			}
		}
		r.sum = hex.EncodeToString(h.Sum(nil))
		got <- r
	}()
	send, in, sendErr := cn.ncToE("9000")
	defer send.Process.Kill()
	want := sendRandom(t, in, sendErr, 3, size, during)
	var r streamResult
	select {
	case r = <-got:
	case <-time.After(tstest.Scaled(180 * time.Second)):
		t.Fatalf("stream did not finish within 180 s after the last byte was sent; receiver said %s, sender %s", recvErr, sendErr)
	}
	if r.err != nil || r.n != size || r.sum != want {
		t.Fatalf("received %d bytes (sha256 %s, err %v); sent %d (sha256 %s); receiver said %s", r.n, r.sum, r.err, size, want, recvErr)
	}
	waitExit(t, send, "sender nc", sendErr)
	waitExit(t, recv, "receiver nc", recvErr)
	return r
}

// maxStall is the longest pause the stream may show across a leader
// kill. The issue asks for no stall over 3 s, and a stream does not
// need a manager at all (routes are installed on the nodes; the data
// plane never waits for the control plane), so on a quiet machine the
// gap is a few milliseconds (see the logged figure). The bound is scaled
// with MESHTEST_TIME_SCALE like every deadline: on a machine with two
// `make test` beside this one, process scheduling alone has shown
// pauses of a second or two. A real stall (the route torn down, the
// session re-established) is at least the link dead-after time plus a
// repair, and shows up well over 3 s unscaled.
var maxStall = 3 * time.Second

// TestClusterE2ELeaderKilled: three managers, five nodes, a 200 MB stream
// a→e across three relays while the leader is kill -9'd: it arrives
// byte-identical without a stall over 3 s; a dial made during the
// election (b→e, a new route) succeeds once a leader exists, and one
// after it (a→d) too; the new leader has every route the old one
// acknowledged.
func TestClusterE2ELeaderKilled(t *testing.T) {
	cn := newClusterNet(t)
	leader := cn.waitLeader("")
	cn.waitRegistered()
	cn.waitRoute("a", "e", 4)

	var killed atomic.Bool
	var duringErr error
	var during sync.WaitGroup
	var killedAt time.Time
	var elected time.Duration
	r := cn.clusterStream(bulk, func(sent int64) {
		if killed.Load() || sent < bulk/4 {
			return
		}
		killed.Store(true)
		cn.killMgr(leader)
		killedAt = time.Now()
		// A new route asked for at once, during the election.
		during.Go(func() { duringErr = cn.dial("b", "e") })
		// How long until both survivors name a new leader (a figure).
		during.Go(func() {
			for time.Since(killedAt) < tstest.Scaled(60*time.Second) {
				agreed := ""
				for id := range survivors(cn.mgrs, leader) {
					st, err := cn.status(id)
					if err != nil || st.LeaderID == "" || st.LeaderID == leader || (agreed != "" && st.LeaderID != agreed) {
						agreed = "-"
						break
					}
					agreed = st.LeaderID
				}
				if agreed != "-" {
					elected = time.Since(killedAt)
					return
				}
				time.Sleep(10 * time.Millisecond) // polling for a figure, not synchronising
			}
		})
	})
	during.Wait()
	t.Logf("200 MB a→e with the leader %s kill -9'd at 50 MB: largest gap between received bytes %v", leader, r.maxGap)
	if !killed.Load() {
		t.Fatal("the leader was never killed")
	}
	if duringErr != nil {
		t.Errorf("dial b→e made during the election failed: %v", duringErr)
	}
	if r.maxGap > tstest.Scaled(maxStall) {
		t.Errorf("the stream stalled for %v across the leader kill (bound %v)", r.maxGap, tstest.Scaled(maxStall))
	}
	newLeader := cn.waitLeader(leader)
	t.Logf("new leader %s (old %s), named by both survivors %v after the kill", newLeader, leader, elected)
	if err := cn.dial("a", "d"); err != nil {
		t.Errorf("dial a→d after the election: %v", err)
	}
	// The routes the old leader acknowledged and the ones made since are
	// all in the new leader's log.
	st, err := cn.status(newLeader)
	if err != nil {
		t.Fatal(err)
	}
	if st.Routes < 3 {
		t.Errorf("the new leader holds %d replicated routes, want at least 3 (a→e, b→e, a→d)", st.Routes)
	}
	if !cn.hasSession("b", "e") || !cn.hasSession("a", "d") {
		t.Error("b→e or a→d has no session after its dial")
	}
}

// TestClusterE2ERelayKilledInElection: the leader and the relay c are
// kill -9'd together while a 200 MB stream a→e crosses c: the route is
// repaired through the detour b—d once the new leader has verified its
// routes, and every byte arrives once.
func TestClusterE2ERelayKilledInElection(t *testing.T) {
	cn := newClusterNet(t)
	leader := cn.waitLeader("")
	cn.waitRegistered()
	if p := cn.waitRoute("a", "e", 4); p.Hops[2].String() != cn.keys["c"] {
		t.Fatalf("route a→e does not go through c: %v", p.Hops)
	}
	killed := false
	r := cn.clusterStream(bulk, func(sent int64) {
		if !killed && sent >= bulk/4 {
			killed = true
			cn.killMgr(leader)
			cn.kill("c", syscall.SIGKILL)
		}
	})
	t.Logf("200 MB a→e with the leader %s and relay c kill -9'd at 50 MB: largest gap %v (a repair after an election)", leader, r.maxGap)
	newLeader := cn.waitLeader(leader)
	if p := cn.waitRoute("a", "e", 3); p.Hops[2].String() != cn.keys["d"] {
		t.Errorf("after c died the route is %v, want a-b-d-e", p.Hops)
	}
	// c died with no leader to commit its deregistration: the new leader
	// drops it from the replicated directory.
	var st cluster.Status
	waitLong(t, "the new leader's directory to drop c", func() bool {
		var err error
		st, err = cn.status(newLeader)
		return err == nil && st.Nodes == len(meshNodes)-1
	})
	t.Logf("new leader %s: %d routes, %d nodes replicated", newLeader, st.Routes, st.Nodes)
}

// TestClusterE2EFollowerAndQuorum: a follower kill -9'd misses entries
// and catches up after its restart (its log index reaches the
// leader's); then two of three are killed: a session made before still
// carries data, a new route fails with "no quorum" within seconds, and
// once one manager is back new routes work again.
func TestClusterE2EFollowerAndQuorum(t *testing.T) {
	cn := newClusterNet(t)
	leader := cn.waitLeader("")
	cn.waitRegistered()
	cn.waitRoute("a", "e", 4)
	var follower, other string
	for _, id := range cn.mgrs {
		if id != leader {
			if follower == "" {
				follower = id
			} else {
				other = id
			}
		}
	}

	// A follower dies; routes made meanwhile go into the log without it.
	cn.killMgr(follower)
	for _, p := range [][2]string{{"a", "c"}, {"b", "e"}} {
		if err := cn.dial(p[0], p[1]); err != nil {
			t.Fatalf("dial %s→%s with a follower down: %v", p[0], p[1], err)
		}
	}
	before, err := cn.status(leader)
	if err != nil {
		t.Fatal(err)
	}
	cn.startMgr(follower)
	var fst cluster.Status
	waitLong(t, "the restarted follower's log to reach the leader's index", func() bool {
		fst, err = cn.status(follower)
		return err == nil && fst.AppliedIndex >= before.LastIndex && fst.LeaderID == leader
	})
	// And the leader's status shows it caught up (what `skywire manager
	// cluster status` prints).
	waitLong(t, "the leader to see the follower at its log index", func() bool {
		st, err := cn.status(leader)
		if err != nil {
			return false
		}
		for _, m := range st.Members {
			if m.ID == follower {
				return m.Err == "" && m.LastIndex >= before.LastIndex
			}
		}
		return false
	})
	out, err := cn.mgrCmd(leader, "manager", "cluster", "status").CombinedOutput()
	if err != nil || !strings.Contains(string(out), follower) || !strings.Contains(string(out), "Follower") {
		t.Errorf("skywire manager cluster status: %v:\n%s", err, out)
	}
	t.Logf("follower %s restarted: applied %d, leader's last index was %d", follower, fst.AppliedIndex, before.LastIndex)

	// An open stream a→e before the majority goes.
	recv := cn.cmd("nc", "--profile", "e", "-l", "9001")
	rout, recvErr := startPiped(t, recv, recv.StdoutPipe)
	defer recv.Process.Kill()
	send, sin, sendErr := cn.ncToE("9001")
	defer send.Process.Kill()
	line := make([]byte, 64)
	readLine := func(want string) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := io.ReadFull(rout, line[:len(want)])
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil || string(line[:len(want)]) != want {
				t.Fatalf("receiver read %q, %v; want %q (receiver said %s, sender %s)", line[:len(want)], err, want, recvErr, sendErr)
			}
		case <-time.After(tstest.Scaled(60 * time.Second)):
			t.Fatalf("%q did not arrive within 60 s (receiver said %s, sender %s)", want, recvErr, sendErr)
		}
	}
	io.WriteString(sin, "before\n")
	readLine("before\n")

	// Two of three die: the installed route still forwards.
	cn.killMgr(leader)
	cn.killMgr(other)
	io.WriteString(sin, "without a quorum\n")
	readLine("without a quorum\n")

	// A new route fails with "no quorum", fast (nodes wait out an
	// election for 5 s, then give up).
	start := time.Now()
	err = cn.dial("c", "e")
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "no quorum") {
		t.Errorf("dial c→e with two of three managers down: %v, want a \"no quorum\" error", err)
	}
	if took > tstest.Scaled(30*time.Second) {
		t.Errorf("dial c→e without a quorum took %v to fail", took)
	}
	t.Logf("dial without a quorum failed after %v: %v", took, err)
	// What a user runs says so too.
	out, _ = cn.cmd("ping", "--profile", "c", "-c", "1", cn.keys["e"]).CombinedOutput()
	if !strings.Contains(string(out), "no quorum") {
		t.Errorf("skywire ping without a quorum does not say \"no quorum\":\n%s", out)
	}

	// One comes back: a majority again, a leader, new routes work.
	cn.startMgr(leader)
	cn.waitLeader("")
	waitLong(t, "a new route c→e once a majority is back", func() bool { return cn.dial("c", "e") == nil })
	io.WriteString(sin, "after\n")
	readLine("after\n")
	sin.Close()
	waitExit(t, send, "sender nc", sendErr)
}

// TestClusterE2EMembership: managers that admit members only (a..d in
// their config). `skywire manager invite` run at a follower makes an
// invitation every manager honours: e joins with it through all three,
// every manager lists it (`skywire manager members`), a route to it is
// set up, and it stays a member after the leader is kill -9'd. `skywire
// manager remove` run at the other follower evicts it at every manager.
func TestClusterE2EMembership(t *testing.T) {
	cn := newClusterNetWith(t, clusterOpts{members: []string{"a", "b", "c", "d"}, start: []string{"a", "b", "c", "d"}})
	leader := cn.waitLeader("")
	var f1, f2 string
	for _, id := range cn.mgrs {
		switch {
		case id == leader:
		case f1 == "":
			f1 = id
		default:
			f2 = id
		}
	}
	run := func(id string, args ...string) (string, error) {
		cmd := cn.mgrCmd(id, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out), fmt.Errorf("skywire manager %s at %s: %w: %s", strings.Join(args, " "), id, err, stderr.String())
		}
		return string(out), nil
	}
	// At a follower: forwarded to the leader.
	var tok string
	waitLong(t, "an invitation made at a follower", func() bool {
		out, err := run(f1, "manager", "invite", "--uses", "1", "--expires", "1h")
		if err != nil {
			t.Logf("retrying: %v", err)
			return false
		}
		tok = strings.TrimSpace(out)
		return true
	})
	if !strings.HasPrefix(tok, "swinv1-") {
		t.Fatalf("invite printed %q", tok)
	}
	cn.writeNodes(map[string]string{"e": tok})
	cn.start("e", "node", "--profile", "e")
	isJoined := func(id, n string) bool {
		out, err := run(id, "manager", "members", "--json")
		var ms []manager.MemberInfo
		if err != nil || json.Unmarshal([]byte(out), &ms) != nil {
			return false
		}
		return slices.ContainsFunc(ms, func(mi manager.MemberInfo) bool { return mi.Key.String() == cn.keys[n] && mi.How == "joined" })
	}
	registeredAll := func(n string) (bool, []string) {
		var st node.Status
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if rolectl.Get(ctx, cn.ctl(n), "/status", &st) != nil {
			return false, nil
		}
		var refused []string
		reg := 0
		for _, ms := range st.Managers {
			if ms.Registered {
				reg++
			}
			if ms.Refused != "" {
				refused = append(refused, ms.Refused)
			}
		}
		return reg == len(cn.mgrs), refused
	}
	for _, id := range cn.mgrs {
		waitLong(t, "e listed as joined by "+id, func() bool { return isJoined(id, "e") })
	}
	waitLong(t, "e registered with every manager", func() bool { ok, _ := registeredAll("e"); return ok })
	cn.waitRoute("a", "e", 4)
	if err := cn.dial("a", "e"); err != nil {
		t.Fatalf("route to e after it joined: %v", err)
	}

	// The leader goes; e stays a member.
	cn.killMgr(leader)
	nl := cn.waitLeader(leader)
	for _, id := range []string{f1, f2} {
		if !isJoined(id, "e") {
			t.Errorf("%s no longer lists e after the leader was killed", id)
		}
	}
	// Removed at the survivor that does not lead: evicted everywhere.
	rf := f1
	if rf == nl {
		rf = f2
	}
	waitLong(t, "e removed at a follower", func() bool {
		_, err := run(rf, "manager", "remove", cn.keys["e"])
		if err != nil {
			t.Logf("retrying: %v", err)
		}
		return err == nil || strings.Contains(err.Error(), "not a member")
	})
	for _, id := range []string{f1, f2} {
		waitLong(t, id+" to drop e", func() bool { return !isJoined(id, "e") })
	}
	waitLong(t, "e refused as removed by the running managers", func() bool {
		_, refused := registeredAll("e")
		n := 0
		for _, r := range refused {
			if strings.Contains(r, "removed") {
				n++
			}
		}
		return n == 2
	})
}

// survivors is ids without dead, as a set.
func survivors(ids []string, dead string) map[string]bool {
	out := map[string]bool{}
	for _, id := range ids {
		if id != dead {
			out[id] = true
		}
	}
	return out
}
