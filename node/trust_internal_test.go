package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/internal/mesh/secure"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

// runningTestNode is a Node whose life has begun (goroutines it starts
// are waited for at cleanup) but that runs no accept loop, manager or
// janitor. mod adjusts the config.
func runningTestNode(t testing.TB, mod func(*Config)) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Identity = tstest.KeyPair(t)
	cfg.ListenAddr = ""
	cfg.AcceptPeers.Mode = AcceptAny // these tests are about caps, not membership
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.running.Store(true)
	t.Cleanup(func() {
		n.shutdown()
		n.wg.Wait()
	})
	return n
}

// neighbour is the far end of a link to a node under test: it sees every
// frame the node sends it, and can send any frame back.
type neighbour struct {
	keys keys.KeyPair
	lc   *link.Conn // the neighbour's end
}

// linkNeighbour links n to a new neighbour over net.Pipe and serves n's
// end like an accepted link. onFrame runs on the neighbour's reader for
// every frame n sends.
func linkNeighbour(t testing.TB, n *Node, onFrame func(nb *neighbour, typ uint8, payload []byte)) *neighbour {
	t.Helper()
	nb := linkAs(t, n, tstest.KeyPair(t), onFrame)
	tstest.WaitFor(t, "link registered", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		p := n.peers[nb.keys.Public]
		return p != nil && p.current() != nil
	})
	return nb
}

// linkAs is linkNeighbour with the neighbour's key given, without waiting
// for the node to register the link (it may refuse it).
func linkAs(t testing.TB, n *Node, kp keys.KeyPair, onFrame func(nb *neighbour, typ uint8, payload []byte)) *neighbour {
	t.Helper()
	nb := &neighbour{keys: kp}
	c1, c2 := net.Pipe()
	srv := make(chan *link.Conn, 1)
	go func() {
		lc, _ := link.Server(context.Background(), c2, link.Config{Local: nb.keys}, nil)
		srv <- lc
	}()
	lc, err := link.Client(context.Background(), c1, n.linkCfg, nb.keys.Public)
	if err != nil {
		t.Fatal(err)
	}
	if nb.lc = <-srv; nb.lc == nil {
		t.Fatal("neighbour handshake failed")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			typ, payload, err := nb.lc.Recv()
			if err != nil {
				return
			}
			if onFrame != nil {
				onFrame(nb, typ, payload)
			}
		}
	}()
	n.wg.Go(func() { n.serveLink(lc) })
	t.Cleanup(func() { nb.lc.Close(); lc.Close(); <-done })
	return nb
}

// sendData sends n a data frame of kind on label.
func (nb *neighbour) sendData(label uint32, kind proto.Kind, payload []byte) error {
	return nb.lc.Send(proto.LinkData, proto.AppendData(nil, label, kind, payload))
}

// installEnd installs route id on n: an endpoint towards remote through
// neighbour via, in on inLabel, out on outLabel.
func installEnd(t testing.TB, n *Node, id uint64, remote, via keys.PublicKey, initiator bool, inLabel, outLabel uint32) *endpoint {
	t.Helper()
	code, msg := n.installRules(&proto.Install{Route: id, End: &proto.Endpoint{
		Remote: proto.Key(remote), Peer: proto.Key(via), Initiator: initiator, InLabel: inLabel, OutLabel: outLabel}})
	if code != proto.CodeOK {
		t.Fatal(code, msg)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.endpoints[id]
}

// A relay on the path that answers msg1 first, with garbage, must not stop
// the session: the initiator drops replies that do not authenticate and
// finishes with the genuine one (docs/crypto.md, "Lossy transports"). The
// remote is a node of this release (handshake version 2) or of an older
// one (version 1 only, answering the initiator's version 1 retransmission).
func TestForgedHandshakeReplyIgnored(t *testing.T) {
	for _, old := range []bool{false, true} {
		t.Run(fmt.Sprintf("old_remote=%v", old), func(t *testing.T) { testForgedHandshakeReplyIgnored(t, old) })
	}
}

func testForgedHandshakeReplyIgnored(t *testing.T, old bool) {
	n := runningTestNode(t, nil)
	var forged atomic.Int64
	cfg := secure.Config{Prologue: SessionPrologue, Suites: secure.DefaultSuites(), Packets: true}
	if old {
		cfg.Suites, cfg.Packets = nil, false
	}
	// The neighbour is the route's remote and lies before it answers:
	// for each msg1 it first sends replies that do not authenticate.
	onFrame := func(nb *neighbour, typ uint8, payload []byte) {
		_, kind, body, err := proto.ParseData(payload)
		if typ != proto.LinkData || err != nil || kind != proto.KindHandshake1 {
			return
		}
		for _, bad := range [][]byte{
			make([]byte, 50),  // right size, zero bytes
			{1, 2},            // a fragment
			{2, 2},            // a fragment of version 2
			make([]byte, 300), // too long
		} {
			forged.Add(1)
			nb.sendData(7, proto.KindHandshake2, bad)
		}
		if old && len(body) > 0 && body[0] == secure.Version2 {
			return // an old node cannot read it and says nothing
		}
		if !old && len(body) > 0 && body[0] != secure.Version2 {
			// A node of this release answers the version 2 msg1 and
			// ignores the version 1 one the initiator retransmits when
			// the reply is late (on a loaded machine the forged replies
			// above can fill the reply queue before the genuine one).
			return
		}
		c := cfg
		c.Local = nb.keys
		msg2, _, err := secure.Respond(c, body)
		if err != nil {
			t.Errorf("neighbour: respond: %v", err)
			return
		}
		nb.sendData(7, proto.KindHandshake2, msg2)
	}
	nb := linkNeighbour(t, n, onFrame)
	ep := installEnd(t, n, 1, nb.keys.Public, nb.keys.Public, true, 7, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rs, err := n.initiate(ctx, ep)
	if err != nil {
		t.Fatalf("initiate with a lying relay on the path: %v", err)
	}
	if rs == nil || !rs.alive() {
		t.Fatal("no live session")
	}
	if want := map[bool]byte{false: secure.Version2, true: secure.Version1}[old]; rs.version != want {
		t.Fatalf("session of handshake version %d, want %d", rs.version, want)
	}
	if got := n.Counters().BadHandshakeReplies; got == 0 || forged.Load() == 0 {
		t.Fatalf("BadHandshakeReplies = %d after %d forged replies", got, forged.Load())
	}
	if got := n.Counters().HandshakesFailed; got != 0 {
		t.Fatalf("HandshakesFailed = %d, want 0", got)
	}
}

// failingListener fails Accept with EMFILE while fails > 0, like a
// process out of file descriptors.
type failingListener struct {
	net.Listener
	fails atomic.Int64
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// startNode runs a node on a loopback listener wrapped by wrap and returns
// it and its address; cleanup stops it.
func startNode(t *testing.T, mod func(*Config), wrap func(net.Listener) net.Listener) (*Node, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Identity = tstest.KeyPair(t)
	cfg.AcceptPeers.Mode = AcceptAny // these tests are about caps, not membership
	cfg.Listener = ln
	if wrap != nil {
		cfg.Listener = wrap(ln)
	}
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return n, ln.Addr().String()
}

// linkTo dials a link to the node at addr with a fresh key; the handshake
// has a generous deadline.
func linkTo(t *testing.T, addr string, remote keys.PublicKey) (*link.Conn, error) {
	t.Helper()
	return linkFrom(t, nil, addr, remote)
}

// linkFrom is linkTo from the local address from (nil: any).
func linkFrom(t *testing.T, from net.Addr, addr string, remote keys.PublicKey) (*link.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := (&net.Dialer{LocalAddr: from}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := link.Config{Local: tstest.KeyPair(t), HandshakeTimeout: 20 * time.Second}
	lc, err := link.Client(ctx, c, cfg, remote)
	if err == nil {
		t.Cleanup(func() { lc.Close() })
	}
	return lc, err
}

// After accept errors (out of file descriptors), the node goes on
// accepting once they stop.
func TestAcceptRecoversFromErrors(t *testing.T) {
	var fl *failingListener
	n, addr := startNode(t, nil, func(ln net.Listener) net.Listener {
		fl = &failingListener{Listener: ln}
		fl.fails.Store(10) // backoff 5 ms doubling to 1 s: about 3 s in all
		return fl
	})
	tstest.WaitFor(t, "the accept errors to pass", func() bool { return fl.fails.Load() < 0 })
	if _, err := linkTo(t, addr, n.PublicKey()); err != nil {
		t.Fatalf("link after accept errors: %v", err)
	}
	tstest.WaitFor(t, "the link to register", func() bool { return len(n.Links()) == 1 })
	if got := n.Counters().AcceptErrors; got != 10 {
		t.Fatalf("AcceptErrors = %d, want 10", got)
	}
}

// Connections that never finish their link handshake are capped: more are
// closed at once, and when the idle ones go, a real peer links.
func TestLinkHandshakeCap(t *testing.T) {
	const capHS = 4
	n, addr := startNode(t, func(c *Config) { c.MaxLinkHandshakes = capHS }, nil)
	base := runtime.NumGoroutine()
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 3 * capHS {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	tstest.WaitFor(t, "refusals", func() bool { return n.Counters().LinkHandshakesRefused == 2*capHS })
	if g := runtime.NumGoroutine(); g > base+2*capHS {
		t.Fatalf("%d goroutines with %d idle connections, %d before", g, len(idle), base)
	}
	for _, c := range idle {
		c.Close()
	}
	idle = nil
	// The node sees each close as a failed handshake and frees its slot.
	tstest.WaitFor(t, "handshake slots freed", func() bool {
		c, _ := n.linkHS.InPhase()
		return c == 0
	})
	if _, err := linkTo(t, addr, n.PublicKey()); err != nil {
		t.Fatalf("link after the idle connections went: %v", err)
	}
}

// One host cannot hold every link-handshake slot: it gets
// max_link_handshakes_per_source of them, and a peer from another address
// links while its idle connections hold theirs. (Before, the cap was per
// process: a peer could not link until the flood went.)
func TestLinkHandshakeCapPerSource(t *testing.T) {
	const capHS, perSource, flood = 64, 2, 20
	n, addr := startNode(t, func(c *Config) { c.MaxLinkHandshakes, c.MaxLinkHandshakesPerSource = capHS, perSource }, nil)
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	for range flood {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	tstest.WaitFor(t, "per-source refusals", func() bool { return n.Counters().LinkHandshakesRefused == flood-perSource })
	// All of 127.0.0.0/8 is loopback on Linux: another source.
	if _, err := linkFrom(t, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, addr, n.PublicKey()); err != nil {
		t.Fatalf("a peer from another address could not link while one source held its slots: %v", err)
	}
	// The other source's slot is freed once the node's side of that
	// handshake returns (just after the client's); the flood keeps its own.
	tstest.WaitFor(t, "only the flood's connections in their handshake", func() bool {
		c, s := n.linkHS.InPhase()
		return c == perSource && s == 1
	})
}

// usage is a sample of the process: goroutines and heap in use.
type usage struct {
	goroutines int
	heap       uint64
}

func measure() usage {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{runtime.NumGoroutine(), ms.HeapInuse}
}

func (u usage) String() string {
	return fmt.Sprintf("%d goroutines, %.1f MiB heap", u.goroutines, float64(u.heap)/(1<<20))
}

// peakGoroutines samples runtime.NumGoroutine until stop is closed and
// returns the highest count seen.
func peakGoroutines(stop <-chan struct{}) <-chan int {
	out := make(chan int, 1)
	go func() {
		peak := 0
		for {
			peak = max(peak, runtime.NumGoroutine())
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return out
}

// A route neighbour flooding pings while it reads nothing back must not
// park a goroutine (and a frame buffer) per ping: pongs beyond
// max_pending_pongs are dropped.
func TestPingFloodBounded(t *testing.T) {
	const pongs = 4
	n := runningTestNode(t, func(c *Config) { c.MaxPendingPongs = pongs })
	stall := make(chan struct{})
	nb := linkNeighbour(t, n, func(nb *neighbour, typ uint8, payload []byte) {
		if _, kind, _, err := proto.ParseData(payload); err == nil && kind == proto.KindPong {
			<-stall // stop reading: the node's sends back pile up
		}
	})
	installEnd(t, n, 1, nb.keys.Public, nb.keys.Public, false, 7, 8)
	before := measure()
	const flood = 20000
	var id [8]byte
	for i := range flood {
		binary.BigEndian.PutUint64(id[:], uint64(i))
		if err := nb.sendData(7, proto.KindPing, id[:]); err != nil {
			t.Fatal(err)
		}
	}
	tstest.WaitFor(t, "the flood to be handled", func() bool {
		c := n.Counters()
		return c.Delivered >= flood
	})
	during := measure()
	close(stall)
	tstest.WaitFor(t, "goroutines back near the baseline", func() bool { return runtime.NumGoroutine() <= before.goroutines+2 })
	after := measure()
	t.Logf("ping flood of %d: before %v; during %v; after %v; dropped %d", flood, before, during, after, n.Counters().PingsDropped)
	if during.goroutines > before.goroutines+pongs+4 {
		t.Fatalf("%d goroutines during the flood, %d before (cap %d)", during.goroutines, before.goroutines, pongs)
	}
	if during.heap > before.heap+16<<20 {
		t.Fatalf("heap grew from %v to %v", before, during)
	}
	if n.Counters().PingsDropped == 0 {
		t.Fatal("no ping counted as dropped")
	}
}

// A neighbour flooding msg1 on a route makes the node compute at most
// max_pending_handshakes at once and one per route, never a goroutine per
// frame.
func TestHandshakeFloodBounded(t *testing.T) {
	const pending = 2
	n := runningTestNode(t, func(c *Config) { c.MaxPendingHandshakes = pending })
	nb := linkNeighbour(t, n, nil)
	const routes = 4
	for i := range routes {
		installEnd(t, n, uint64(1+i), nb.keys.Public, nb.keys.Public, false, uint32(10+i), uint32(20+i))
	}
	before := measure()
	stop := make(chan struct{})
	peak := peakGoroutines(stop)
	const flood = 4000
	junk := make([]byte, 106)
	junk[0], junk[1] = 1, 1
	for i := range flood {
		if err := nb.sendData(uint32(10+i%routes), proto.KindHandshake1, junk); err != nil {
			t.Fatal(err)
		}
	}
	tstest.WaitFor(t, "every msg1 handled or dropped", func() bool {
		c := n.Counters()
		return c.BadHandshakes+c.HandshakesDropped >= flood
	})
	close(stop)
	top := <-peak
	tstest.WaitFor(t, "goroutines back near the baseline", func() bool { return runtime.NumGoroutine() <= before.goroutines+2 })
	after := measure()
	c := n.Counters()
	t.Logf("msg1 flood of %d: before %v; peak %d goroutines; after %v; bad %d, dropped %d", flood, before, top, after, c.BadHandshakes, c.HandshakesDropped)
	if top > before.goroutines+pending+4 {
		t.Fatalf("peak %d goroutines during the flood, %d before (cap %d)", top, before.goroutines, pending)
	}
}

// One remote key cannot hold more than max_sessions_per_remote sessions,
// however many routes a manager installed for it.
func TestSessionsPerRemoteCap(t *testing.T) {
	const maxSess = 3
	n := runningTestNode(t, func(c *Config) { c.MaxSessionsPerRemote = maxSess })
	nb := linkNeighbour(t, n, nil)
	const routes = 20
	before := measure()
	for i := range routes {
		installEnd(t, n, uint64(1+i), nb.keys.Public, nb.keys.Public, false, uint32(100+i), uint32(200+i))
		msg1, _, err := secure.Initiate(secure.Config{Local: nb.keys, Prologue: SessionPrologue}, n.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		if err := nb.sendData(uint32(100+i), proto.KindHandshake1, msg1); err != nil {
			t.Fatal(err)
		}
	}
	tstest.WaitFor(t, "every handshake answered or refused", func() bool {
		c := n.Counters()
		return int(c.SessionsRefused)+n.Status().Sessions >= routes
	})
	during := measure()
	t.Logf("%d routes from one key: before %v; with sessions %v; %d sessions, %d refused", routes, before, during, n.Status().Sessions, n.Counters().SessionsRefused)
	if s := n.Status().Sessions; s != maxSess {
		t.Fatalf("%d sessions with one remote, want the cap %d", s, maxSess)
	}
}

// A peer entry is forgotten when its last link goes and it has no rules;
// max_peers and max_links_per_peer bound what is kept meanwhile.
func TestPeerStateBounded(t *testing.T) {
	n := runningTestNode(t, func(c *Config) { c.MaxPeers = 3; c.MaxLinksPerPeer = 2 })
	npeers := func() int {
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.peers)
	}
	for range 20 {
		nb := linkNeighbour(t, n, nil)
		nb.lc.Close()
	}
	tstest.WaitFor(t, "peer entries forgotten", func() bool { return npeers() == 0 })

	// One with a rule is kept after its link goes, until the rule goes.
	keep := linkNeighbour(t, n, nil)
	ep := installEnd(t, n, 1, keep.keys.Public, keep.keys.Public, false, 5, 6)
	keep.lc.Close()
	tstest.WaitFor(t, "link gone", func() bool { return len(n.Links()) == 0 })
	if npeers() != 1 {
		t.Fatalf("%d peer entries, want the one with a rule", npeers())
	}
	n.removeEndpoint(ep)
	tstest.WaitFor(t, "the entry forgotten with its endpoint", func() bool { return npeers() == 0 })

	// Likewise with a relay rule, when it expires.
	relay := linkNeighbour(t, n, nil)
	if code, msg := n.installRules(&proto.Install{Route: 2, Rules: []proto.Rule{{
		InPeer: proto.Key(relay.keys.Public), InLabel: 5, OutPeer: proto.Key(relay.keys.Public), OutLabel: 6}}}); code != proto.CodeOK {
		t.Fatal(code, msg)
	}
	relay.lc.Close()
	tstest.WaitFor(t, "link gone", func() bool { return len(n.Links()) == 0 })
	if npeers() != 1 {
		t.Fatalf("%d peer entries, want the one with a rule", npeers())
	}
	n.expireRules(time.Now().Add(2 * n.cfg.RuleIdle))
	if npeers() != 0 {
		t.Fatalf("%d peer entries after its rule expired, want 0", npeers())
	}

	// Over max_peers: links from more keys are closed.
	var nbs []*neighbour
	for range 5 {
		nbs = append(nbs, linkAs(t, n, tstest.KeyPair(t), nil))
	}
	tstest.WaitFor(t, "refusals", func() bool { return n.Counters().PeersRefused >= 2 })
	if p := npeers(); p > 3 {
		t.Fatalf("%d peer entries, cap 3", p)
	}
	// Over max_links_per_peer: more links from one key are closed.
	for _, nb := range nbs {
		nb.lc.Close()
	}
	tstest.WaitFor(t, "peer entries forgotten", func() bool { return npeers() == 0 })
	kp := tstest.KeyPair(t)
	for range 4 {
		linkAs(t, n, kp, nil)
	}
	tstest.WaitFor(t, "link refusals", func() bool { return n.Counters().PeersRefused >= 4 })
	tstest.WaitFor(t, "two links kept", func() bool { l := n.Links(); return len(l) == 1 && l[0].Conns == 2 })
}
