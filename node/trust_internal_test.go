package node

import (
	"context"
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
	"github.com/skywire-mesh/skywire/keys"
)

// waitUntil polls cond until it holds or a generous deadline passes.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runningTestNode is a Node whose life has begun (goroutines it starts
// are waited for at cleanup) but that runs no accept loop, manager or
// janitor. mod adjusts the config.
func runningTestNode(t testing.TB, mod func(*Config)) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Identity = testKey(t)
	cfg.ListenAddr = ""
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
	nb := &neighbour{keys: testKey(t)}
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
	waitUntil(t, "link registered", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		p := n.peers[nb.keys.Public]
		return p != nil && p.current() != nil
	})
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
// finishes with the genuine one (docs/crypto.md, "Lossy transports").
func TestForgedHandshakeReplyIgnored(t *testing.T) {
	n := runningTestNode(t, nil)
	var forged atomic.Int64
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
			make([]byte, 300), // too long
		} {
			forged.Add(1)
			nb.sendData(7, proto.KindHandshake2, bad)
		}
		msg2, _, err := secure.Respond(secure.Config{Local: nb.keys, Prologue: SessionPrologue}, body)
		if err != nil {
			t.Errorf("neighbour: respond: %v", err)
			return
		}
		nb.sendData(7, proto.KindHandshake2, msg2)
	}
	var nb *neighbour
	nb = linkNeighbour(t, n, onFrame)
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
	cfg.Identity = testKey(t)
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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := link.Config{Local: testKey(t), HandshakeTimeout: 20 * time.Second}
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
	waitUntil(t, "the accept errors to pass", func() bool { return fl.fails.Load() < 0 })
	if _, err := linkTo(t, addr, n.PublicKey()); err != nil {
		t.Fatalf("link after accept errors: %v", err)
	}
	waitUntil(t, "the link to register", func() bool { return len(n.Links()) == 1 })
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
	waitUntil(t, "refusals", func() bool { return n.Counters().LinkHandshakesRefused == 2*capHS })
	if g := runtime.NumGoroutine(); g > base+2*capHS {
		t.Fatalf("%d goroutines with %d idle connections, %d before", g, len(idle), base)
	}
	for _, c := range idle {
		c.Close()
	}
	idle = nil
	if _, err := linkTo(t, addr, n.PublicKey()); err != nil {
		t.Fatalf("link after the idle connections went: %v", err)
	}
}
