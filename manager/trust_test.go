package manager

// Regression tests for "trust in the control plane": each one is an attack
// by a registered node (internal/tstest/rogue) that worked against the
// manager before the fix.

import (
	"context"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/rogue"
	"github.com/skywire-mesh/skywire/keys"
)

// logLines records the messages a manager logs.
type logLines struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }

// count is how many logged messages contain s.
func (l *logLines) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

type trustManager struct {
	*testManager
	logs *logLines
}

// startTrustManager runs a manager over pipes; mod (may be nil) changes
// its config and verify, if not zero, how long it waits after a restart
// before verifying re-reported routes.
func startTrustManager(t *testing.T, mod func(*Config), verify time.Duration) *trustManager {
	t.Helper()
	logs := &logLines{}
	cfg, ln := pipeConfig(t)
	cfg.Admit = AdmitOpen // these tests are about binding and caps, not membership
	if mod != nil {
		mod(&cfg)
	}
	m, err := New(cfg, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	if verify != 0 {
		m.verifyDelay = verify
	}
	runManager(t, m)
	return &trustManager{&testManager{m, ln}, logs}
}

// node links a scripted node (honest or not: the test decides) to tm.
func (tm *testManager) node(t *testing.T, kp keys.KeyPair) *rogue.Node {
	t.Helper()
	a, err := tm.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	return rogue.Link(t, a, kp, tm.PublicKey())
}

// registered links kp and registers it with links to peers (1 ms each).
func (tm *testManager) registered(t *testing.T, kp keys.KeyPair, routes []proto.RouteState, peers ...keys.PublicKey) *rogue.Node {
	t.Helper()
	n := tm.node(t, kp)
	h := &proto.Hello{Routes: routes}
	for _, p := range peers {
		h.Links = append(h.Links, proto.LinkState{Peer: proto.Key(p), RTT: time.Millisecond})
	}
	n.Register(t, h)
	return n
}

// sync returns once tm has handled everything n sent before it: messages
// on one link are handled in order, and a directory query is answered.
func syncLink(t *testing.T, n *rogue.Node) {
	t.Helper()
	n.Send(t, &proto.DirectoryQuery{Req: 0xd1})
	rogue.Next(t, n, func(r *proto.DirectoryReply) bool { return r.Req == 0xd1 })
}

func isInstall(id uint64) func(*proto.Install) bool {
	return func(in *proto.Install) bool { return in.Route == id }
}

// Finding 1: a registered node on no path of a route acknowledges (or
// fails) the installs of someone else's route set-up.
func TestForgedAckDuringSetupIgnored(t *testing.T) {
	tstest.CheckLeaks(t)
	tm := startTrustManager(t, nil, 0)
	a, b, r := tstest.KeyPair(t), tstest.KeyPair(t), tstest.KeyPair(t)
	na := tm.registered(t, a, nil, b.Public)
	nb := tm.registered(t, b, nil, a.Public)
	nr := tm.registered(t, r, nil)

	na.Send(t, &proto.RouteRequest{Req: 1, Dst: proto.Key(b.Public)})
	ia := rogue.Next[*proto.Install](t, na, nil)
	ib := rogue.Next[*proto.Install](t, nb, nil)
	// The attacker confirms a's hop and fails b's before either answers.
	nr.ForgeAck(t, ia.Req, proto.CodeOK)
	nr.ForgeAck(t, ib.Req, proto.CodeInstallFailed)
	syncLink(t, nr)
	if got := tm.Stats().ForgedAcks; got != 2 {
		t.Errorf("ForgedAcks = %d, want 2", got)
	}
	if tm.logs.count("install ack from a node the install did not go to") == 0 {
		t.Error("forged acks not logged")
	}
	na.Send(t, &proto.InstallAck{Req: ia.Req})
	nb.Send(t, &proto.InstallAck{Req: ib.Req})
	reply := rogue.Next[*proto.RouteReply](t, na, nil)
	if reply.Code != proto.CodeOK || reply.Route != ia.Route {
		t.Fatalf("route reply %+v: the forged ack decided the set-up", reply)
	}
	if st := tm.Stats(); st.InstallsFailed != 0 {
		t.Fatalf("InstallsFailed = %d after forged acks", st.InstallsFailed)
	}
}

// Finding 1, during a repair: the same forgery turned a repairable route
// into a RouteDown.
func TestForgedAckDuringRepairIgnored(t *testing.T) {
	tstest.CheckLeaks(t)
	tm := startTrustManager(t, nil, 0)
	a, b, c, r := tstest.KeyPair(t), tstest.KeyPair(t), tstest.KeyPair(t), tstest.KeyPair(t)
	na := tm.registered(t, a, nil, b.Public, c.Public)
	nb := tm.registered(t, b, nil, a.Public, c.Public)
	nc := tm.registered(t, c, nil, a.Public, b.Public)
	nr := tm.registered(t, r, nil)
	na.AutoAck(true)
	nb.AutoAck(true)
	na.Send(t, &proto.RouteRequest{Req: 1, Dst: proto.Key(b.Public)})
	reply := rogue.Next[*proto.RouteReply](t, na, nil)
	if reply.Code != proto.CodeOK || len(reply.Hops) != 2 {
		t.Fatalf("route reply %+v", reply)
	}
	na.AutoAck(false)
	nb.AutoAck(false)
	rogue.Next[*proto.Install](t, nb, nil) // the set-up's, acknowledged
	id := reply.Route
	// a–b dies; the route must move to a–c–b. Every attempt the manager
	// makes, the attacker fails every hop first.
	na.Send(t, &proto.Links{Links: []proto.LinkState{{Peer: proto.Key(c.Public), RTT: time.Millisecond}}})
	for attempt := range installAttempts {
		ins := []*proto.Install{
			rogue.Next(t, na, isInstall(id)), rogue.Next(t, nc, isInstall(id)), rogue.Next(t, nb, isInstall(id)),
		}
		for _, in := range ins {
			nr.ForgeAck(t, in.Req, proto.CodeInstallFailed)
		}
		syncLink(t, nr)
		for i, n := range []*rogue.Node{na, nc, nb} {
			n.Send(t, &proto.InstallAck{Req: ins[i].Req})
		}
		tstest.WaitFor(t, "the repair to finish or fail", func() bool {
			st := tm.Stats()
			return st.Repairs > 0 || st.InstallsFailed > uint64(attempt)
		})
		if tm.Stats().Repairs > 0 {
			break
		}
	}
	st := tm.Stats()
	if st.Repairs != 1 || st.InstallsFailed != 0 || st.RoutesLost != 0 {
		t.Fatalf("stats %+v: forged acks failed the repair", st)
	}
	if rs := tm.Routes(); len(rs) != 1 || len(rs[0].Hops) != 3 {
		t.Fatalf("routes %+v", rs)
	}
}

// Finding 2: after a restart a relay claims a route it learnt from an
// install; verification then sent RouteDown to (or re-pointed) the real
// initiator.
func TestRouteClaimByRelayAfterRestart(t *testing.T) {
	tstest.CheckLeaks(t)
	tm := startTrustManager(t, nil, 500*time.Millisecond)
	a, relay, c, x := tstest.KeyPair(t), tstest.KeyPair(t), tstest.KeyPair(t), tstest.KeyPair(t)
	const id = 0x5eed
	genuine := []keys.PublicKey{a.Public, relay.Public, c.Public}
	// The relay registers first and claims to be the route's far end over
	// a path whose middle hop does not exist, so verification repairs it.
	nr := tm.registered(t, relay, []proto.RouteState{rogue.RouteState(id, false, a.Public, x.Public, relay.Public)}, a.Public, c.Public)
	na := tm.registered(t, a, []proto.RouteState{rogue.RouteState(id, true, genuine...)}, relay.Public)
	tm.registered(t, c, []proto.RouteState{rogue.RouteState(id, false, genuine...)}, relay.Public)
	nr.AutoAck(true)

	// Verification has happened once the relay hears about its claim.
	rogue.Next(t, nr, func(m proto.Message) bool {
		switch m := m.(type) {
		case *proto.RouteDown:
			return m.Route == id
		case *proto.Install:
			return m.Route == id
		}
		return false
	})
	tstest.WaitFor(t, "route id to be verified (or lost)", func() bool {
		tm.mu.Lock()
		defer tm.mu.Unlock()
		r := tm.routes[id]
		return r == nil || r.verifyAt.IsZero() && !r.repairing && !tm.repairQueued[id]
	})
	syncLink(t, na) // anything sent to a before the relay heard has arrived
	for _, m := range na.Received() {
		switch m := m.(type) {
		case *proto.RouteDown:
			t.Fatalf("the real initiator got %+v because of the relay's claim", m)
		case *proto.Install:
			t.Fatalf("the real initiator's route was re-pointed: %+v", m)
		}
	}
	rs := tm.Routes()
	if len(rs) != 1 || rs[0].ID != id || !slices.Equal(rs[0].Hops, genuine) {
		t.Fatalf("routes %+v, want the genuine route", rs)
	}
}

// Finding 2: a route one endpoint reports is pending until the other agrees.
func TestRouteImportNeedsBothEndpoints(t *testing.T) {
	tstest.CheckLeaks(t)
	tm := startTrustManager(t, nil, 0)
	a, b := tstest.KeyPair(t), tstest.KeyPair(t)
	hops := []keys.PublicKey{a.Public, b.Public}
	na := tm.registered(t, a, []proto.RouteState{rogue.RouteState(7, true, hops...)}, b.Public)
	syncLink(t, na)
	if rs := tm.Routes(); len(rs) != 0 {
		t.Fatalf("route imported on one endpoint's word: %+v", rs)
	}
	// b disagrees about the path: still nothing.
	nb := tm.registered(t, b, []proto.RouteState{rogue.RouteState(7, false, b.Public, a.Public)}, a.Public)
	syncLink(t, nb)
	if rs := tm.Routes(); len(rs) != 0 {
		t.Fatalf("route imported on conflicting reports: %+v", rs)
	}
	nb.Send(t, &proto.Hello{Version: proto.Version, Routes: []proto.RouteState{rogue.RouteState(7, false, hops...)},
		Links: []proto.LinkState{{Peer: proto.Key(a.Public), RTT: time.Millisecond}}})
	syncLink(t, nb)
	if rs := tm.Routes(); len(rs) != 1 || rs[0].ID != 7 {
		t.Fatalf("routes %+v, want route 7 once both endpoints agree", rs)
	}
	// Only an endpoint closes it.
	nx := tm.registered(t, tstest.KeyPair(t), nil)
	nx.Send(t, &proto.RouteClosed{Route: 7})
	syncLink(t, nx)
	if rs := tm.Routes(); len(rs) != 1 {
		t.Fatalf("a stranger closed route 7")
	}
}

// An endpoint that closes a route (its node stopping, its session over)
// gets the other endpoint told at once: the goodbye the closing session
// sends travels on the route, which a stopping node may have cut already,
// and the other end's session used to wait for its 30 s idle timeout (a
// socks-client's first dial after the server's node stopped took 27 s).
// A relay's or a stranger's route-closed tells nobody anything.
func TestRouteClosedTellsTheOtherEndpoint(t *testing.T) {
	tstest.CheckLeaks(t)
	tm := startTrustManager(t, nil, 0)
	a, b, c := tstest.KeyPair(t), tstest.KeyPair(t), tstest.KeyPair(t)
	na := tm.registered(t, a, nil, b.Public)
	nb := tm.registered(t, b, nil, a.Public, c.Public)
	nc := tm.registered(t, c, nil, b.Public)
	for _, n := range []*rogue.Node{na, nb, nc} {
		n.AutoAck(true)
	}
	na.Send(t, &proto.RouteRequest{Req: 1, Dst: proto.Key(c.Public)})
	reply := rogue.Next(t, na, func(r *proto.RouteReply) bool { return r.Req == 1 })
	if reply.Code != proto.CodeOK {
		t.Fatalf("route a→c: %+v", reply)
	}
	id := reply.Route
	stranger := tm.registered(t, tstest.KeyPair(t), nil)
	for _, n := range []*rogue.Node{nb, stranger} {
		n.Send(t, &proto.RouteClosed{Route: id})
		syncLink(t, n)
	}
	syncLink(t, na)
	syncLink(t, nc)
	for _, n := range []*rogue.Node{na, nc} {
		for _, m := range n.Received() {
			if d, ok := m.(*proto.RouteDown); ok {
				t.Fatalf("route-down %+v after a non-endpoint closed the route", d)
			}
		}
	}
	if len(tm.Routes()) != 1 {
		t.Fatalf("routes %+v: a non-endpoint closed route %d", tm.Routes(), id)
	}
	nc.Send(t, &proto.RouteClosed{Route: id})
	down := rogue.Next(t, na, func(d *proto.RouteDown) bool { return d.Route == id })
	if down.Code != proto.CodeRemoteGone {
		t.Errorf("route-down code %v, want %v", down.Code, proto.CodeRemoteGone)
	}
	if rs := tm.Routes(); len(rs) != 0 {
		t.Errorf("routes %+v after an endpoint closed the only one", rs)
	}
	// The other endpoint's own route-closed, which follows, is a no-op:
	// nothing goes back to the node that closed first.
	na.Send(t, &proto.RouteClosed{Route: id})
	syncLink(t, na)
	syncLink(t, nc)
	for _, m := range nc.Received() {
		if d, ok := m.(*proto.RouteDown); ok {
			t.Fatalf("route-down %+v to the endpoint that closed first", d)
		}
	}
}

// Finding 3: request IDs were a counter, so a node that saw one could
// guess the next.
func TestRequestIDsUnpredictable(t *testing.T) {
	tstest.CheckLeaks(t)
	tm := startTrustManager(t, nil, 0)
	a, b := tstest.KeyPair(t), tstest.KeyPair(t)
	na := tm.registered(t, a, nil, b.Public)
	nb := tm.registered(t, b, nil, a.Public)
	var reqs []uint64
	for i := range 4 {
		na.Send(t, &proto.RouteRequest{Req: uint64(i + 1), Dst: proto.Key(b.Public)})
		ia := rogue.Next[*proto.Install](t, na, nil)
		ib := rogue.Next[*proto.Install](t, nb, nil)
		reqs = append(reqs, ia.Req, ib.Req)
		na.Send(t, &proto.InstallAck{Req: ia.Req})
		nb.Send(t, &proto.InstallAck{Req: ib.Req})
		rogue.Next[*proto.RouteReply](t, na, nil)
	}
	for i, p := range reqs {
		for _, q := range reqs[i+1:] {
			d := max(p, q) - min(p, q)
			if d < 1<<32 { // for random IDs: probability 2^-31 per pair
				t.Fatalf("request IDs %d and %d are %d apart: %v", p, q, d, reqs)
			}
		}
	}
}

// usage is the manager's footprint at one moment.
type usage struct {
	goroutines int
	heapMiB    float64
}

func measure() usage {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{runtime.NumGoroutine(), float64(ms.HeapAlloc) / (1 << 20)}
}

// peak samples the goroutine count until stop is called and returns the
// highest count seen.
func peak() (stop func() int) {
	var hi atomic.Int64
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			if n := int64(runtime.NumGoroutine()); n > hi.Load() {
				hi.Store(n)
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return func() int { close(done); <-exited; return int(hi.Load()) - 1 }
}

// Finding 4: routes imported from hellos had no cap (and one repair
// goroutine each).
func TestHelloRouteFloodCapped(t *testing.T) {
	tstest.CheckLeaks(t)
	const limit = 200
	// Unconfirmed claims expire after verifyDelay (15 s), which frees room
	// under the cap: on a loaded machine the flood outlasted it and 200 or
	// 400 more routes were imported than the count below allows. The test
	// is about the cap, so the claims must not expire during it.
	tm := startTrustManager(t, func(c *Config) { c.MaxRoutesPerNode = limit }, time.Hour)
	r, victim := tstest.KeyPair(t), tstest.KeyPair(t)
	tm.registered(t, victim, nil)
	nr := tm.registered(t, r, nil)
	before := measure()
	stop := peak()
	const hellos, perHello = 100, 400
	if sent := nr.FloodHellos(hellos, perHello, victim.Public); sent != hellos {
		t.Fatalf("only %d hellos sent", sent)
	}
	syncLink(t, nr)
	during := measure()
	hi := stop()
	st := tm.Stats()
	tm.mu.Lock()
	held := len(tm.routes) + len(tm.claims)
	tm.mu.Unlock()
	// The flooder leaves: its claims go with it.
	nr.Conn.Close()
	tstest.WaitFor(t, "the flooder's claims to be dropped", func() bool {
		tm.mu.Lock()
		defer tm.mu.Unlock()
		return len(tm.claims) == 0 && len(tm.owned) == 0
	})
	tstest.WaitFor(t, "the flooder's goroutines to end", func() bool { return runtime.NumGoroutine() <= before.goroutines })
	after := measure()
	t.Logf("hello flood (%d hellos x %d routes): goroutines %d before, peak %d, %d during, %d after; heap %.1f / %.1f / %.1f MiB; %d routes held, %d refused",
		hellos, perHello, before.goroutines, hi, during.goroutines, after.goroutines, before.heapMiB, during.heapMiB, after.heapMiB, held, st.RoutesRefused)
	if held > limit {
		t.Errorf("manager holds %d routes of one node, cap %d", held, limit)
	}
	if st.RoutesRefused != hellos*perHello-limit {
		t.Errorf("RoutesRefused = %d, want %d", st.RoutesRefused, hellos*perHello-limit)
	}
	if tm.logs.count("route import refused") == 0 {
		t.Error("refusal not logged")
	}
	if hi > before.goroutines+20 {
		t.Errorf("goroutines peaked at %d (baseline %d)", hi, before.goroutines)
	}
	if during.heapMiB > before.heapMiB+16 || after.heapMiB > before.heapMiB+4 {
		t.Errorf("heap %.1f MiB before, %.1f during, %.1f after", before.heapMiB, during.heapMiB, after.heapMiB)
	}
}

// Finding 4: route requests had no rate limit (one goroutine each).
func TestRouteRequestFloodLimited(t *testing.T) {
	tstest.CheckLeaks(t)
	tm := startTrustManager(t, func(c *Config) { c.RouteRequestRate, c.RouteRequestBurst = 1, 5 }, 0)
	r, victim := tstest.KeyPair(t), tstest.KeyPair(t)
	nv := tm.registered(t, victim, nil)
	nr := tm.registered(t, r, nil, victim.Public)
	tm.registered(t, tstest.KeyPair(t), nil) // a bystander
	_ = nv
	before := measure()
	stop := peak()
	const flood = 2000
	if sent := nr.FloodRouteRequests(flood, victim.Public); sent != flood {
		t.Fatalf("only %d requests sent", sent)
	}
	syncLink(t, nr)
	hi := stop()
	during := measure()
	st := tm.Stats()
	tstest.WaitFor(t, "route request goroutines to finish", func() bool { return runtime.NumGoroutine() <= before.goroutines+2 })
	after := measure()
	t.Logf("route request flood (%d): goroutines %d before, peak %d, %d during, %d after; heap %.1f / %.1f / %.1f MiB; %d refused",
		flood, before.goroutines, hi, during.goroutines, after.goroutines, before.heapMiB, during.heapMiB, after.heapMiB, st.RequestsRefused)
	// At most the burst plus what refills during the flood is served.
	if st.RequestsRefused < flood/2 {
		t.Errorf("RequestsRefused = %d of %d", st.RequestsRefused, flood)
	}
	if tm.logs.count("route request refused") == 0 {
		t.Error("refusal not logged")
	}
	refused := 0
	for _, m := range nr.Received() {
		if rr, ok := m.(*proto.RouteReply); ok && rr.Code == proto.CodeBadRequest && strings.Contains(rr.Msg, "rate") {
			refused++
		}
	}
	if refused == 0 {
		t.Error("the flooder was not told")
	}
	if hi > before.goroutines+100 {
		t.Errorf("goroutines peaked at %d (baseline %d)", hi, before.goroutines)
	}
}

// Finding 4: every imported route that needed repair got its own
// goroutine at once.
func TestRepairsUseBoundedWorkers(t *testing.T) {
	tstest.CheckLeaks(t)
	const workers, routes = 4, 300
	tm := startTrustManager(t, func(c *Config) { c.RepairWorkers = workers }, 100*time.Millisecond)
	a, b, gone := tstest.KeyPair(t), tstest.KeyPair(t), tstest.KeyPair(t)
	var ra, rb []proto.RouteState
	for i := range routes {
		// Routes over a hop that never comes back: all need repair.
		ra = append(ra, rogue.RouteState(uint64(2*i+1), true, a.Public, gone.Public, b.Public))
		rb = append(rb, rogue.RouteState(uint64(2*i+1), false, a.Public, gone.Public, b.Public))
	}
	before := measure()
	stop := peak()
	na := tm.registered(t, a, ra, b.Public)
	nb := tm.registered(t, b, rb, a.Public)
	na.AutoAck(true)
	nb.AutoAck(true)
	tstest.WaitFor(t, "every route repaired", func() bool { return tm.Stats().Repairs == routes })
	hi := stop()
	during := measure()
	na.Conn.Close()
	nb.Conn.Close()
	tstest.WaitFor(t, "the routes to be forgotten", func() bool { return len(tm.Routes()) == 0 })
	tstest.WaitFor(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= before.goroutines })
	after := measure()
	t.Logf("repair of %d routes with %d workers: goroutines %d before, peak %d, %d when repaired, %d after; heap %.1f / %.1f / %.1f MiB",
		routes, workers, before.goroutines, hi, during.goroutines, after.goroutines, before.heapMiB, during.heapMiB, after.heapMiB)
	// Two registered nodes take a handful of goroutines (links, readers).
	if hi > before.goroutines+workers+30 {
		t.Errorf("goroutines peaked at %d with %d workers (baseline %d)", hi, workers, before.goroutines)
	}
}
