package node_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/node"
)

// A known plaintext sent through a relay never appears in any frame the
// relay handles.
func TestRelaySeesNoPlaintext(t *testing.T) {
	tstest.CheckLeaks(t)
	marker := []byte("SKYWIRE-PLAINTEXT-MARKER-0123456789")
	var mu sync.Mutex
	var frames, total int
	var leaked bool
	hook := func(_ keys.PublicKey, typ uint8, payload []byte) {
		mu.Lock()
		defer mu.Unlock()
		frames++
		total += len(payload)
		if bytes.Contains(payload, marker[:16]) {
			leaked = true
		}
	}
	m := meshtest.New(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3), Node: func(i int, c *node.Config) {
		if i == 1 {
			c.FrameHook = hook
		}
	}})
	m.WaitReady()
	c := dialEcho(t, m, ctxT(t, 20*time.Second))
	msg := bytes.Repeat(marker, 3000)
	go func() { c.Write(msg); c.(*node.Conn).CloseWrite() }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if total < 2*len(msg) {
		t.Fatalf("the hook saw only %d bytes in %d frames; is it on the relay?", total, frames)
	}
	if leaked {
		t.Fatal("the relay handled a frame containing the plaintext")
	}
}

// rogue links to node i of m as an ordinary peer with a fresh key.
func rogue(t *testing.T, m *meshtest.Mesh, i int) *link.Conn {
	t.Helper()
	kp := tstest.KeyPair(t)
	return rogueAs(t, m, i, kp)
}

// rogueAs links to node i of m as an ordinary peer with key kp.
func rogueAs(t *testing.T, m *meshtest.Mesh, i int, kp keys.KeyPair) *link.Conn {
	t.Helper()
	ctx := ctxT(t, 5*time.Second)
	conn, err := m.Net.Dialer("rogue")(ctx, m.Nodes[i].Name)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := link.Client(ctx, conn, link.Config{Local: kp, KeepaliveInterval: 50 * time.Millisecond, DeadAfter: tstest.Scaled(10 * time.Second)}, m.Nodes[i].Keys.Public)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.Close() })
	return lc
}

func TestBadInput(t *testing.T) {
	m := readyMesh(t, meshtest.Options{Nodes: 2, Links: meshtest.Line(2)})
	n0 := m.Nodes[0]
	install, _ := proto.Encode(nil, &proto.Install{Req: 1, Route: 9, Rules: []proto.Rule{{
		InPeer: proto.Key(m.Nodes[1].Keys.Public), InLabel: 5, OutPeer: proto.Key(m.Nodes[1].Keys.Public), OutLabel: 6}}})
	tests := []struct {
		name    string
		typ     uint8
		payload []byte
		counter func(node.Counters) uint64
	}{
		{"install from a peer", proto.LinkControl, install, func(c node.Counters) uint64 { return c.Untrusted }},
		{"malformed control", proto.LinkControl, []byte{6, 0xc1}, func(c node.Counters) uint64 { return c.BadControl }},
		{"short data frame", proto.LinkData, []byte{1, 2}, func(c node.Counters) uint64 { return c.Malformed }},
		{"unknown label", proto.LinkData, []byte{0, 0, 0, 77, 0, 1, 2, 3}, func(c node.Counters) uint64 { return c.UnknownLabel }},
		{"oversized label", proto.LinkData, []byte{0xff, 0xff, 0xff, 0xff, 0}, func(c node.Counters) uint64 { return c.UnknownLabel }},
	}
	lc := rogue(t, m, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.counter(n0.Counters())
			if err := lc.Send(tt.typ, tt.payload); err != nil {
				t.Fatal(err)
			}
			m.WaitFor("counter", func() bool { return tt.counter(n0.Counters()) > before })
		})
	}
	if rs := n0.Routes(); len(rs) != 0 {
		t.Fatalf("rules installed by a rogue peer: %+v", rs)
	}
	// An unknown link frame type drops that link, and only that link.
	if err := lc.Send(99, []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lc.Done():
	case <-time.After(tstest.Scaled(10 * time.Second)):
		t.Fatal("link with an unknown frame type not dropped")
	}
	echo(t, m.Nodes[1].Node, 1)
	c, err := n0.Dial(ctxT(t, 10*time.Second), m.Nodes[1].Keys.Public, 1)
	if err != nil {
		t.Fatalf("node unusable after bad input: %v", err)
	}
	c.Close()
}

// A peer at a configured address that presents another key is refused.
func TestPeerWithWrongKey(t *testing.T) {
	tstest.CheckLeaks(t)
	other := tstest.KeyPair(t)
	m := meshtest.New(t, meshtest.Options{Nodes: 2, Node: func(i int, c *node.Config) {
		if i == 0 { // n1 listens at "n1" but is not `other`
			c.Peers = append(c.Peers, node.Peer{PublicKey: other.Public, Addr: "n1"})
		}
	}})
	m.WaitFor("refused link", func() bool { return m.Nodes[0].Counters().LinksRefused > 0 })
	if l := m.Nodes[0].Links(); len(l) != 0 {
		t.Fatalf("links: %+v", l)
	}
}

// Rules are accepted only from a trusted manager: a manager the node does
// not list cannot even register it.
func TestUntrustedManager(t *testing.T) {
	tstest.CheckLeaks(t)
	m := meshtest.New(t, meshtest.Options{Nodes: 1})
	m.WaitFor("registration", func() bool { return len(m.Manager().Nodes()) == 1 })
	// A second node that lists another key for the manager's address.
	fake, _ := keys.Generate()
	cfg := node.DefaultConfig()
	meshtest.FastTimers(&cfg)
	cfg.Identity, _ = keys.Generate()
	cfg.ListenAddr = ""
	cfg.Dial = m.Net.Dialer("x")
	cfg.Managers = []node.Peer{{PublicKey: fake.Public, Addr: meshtest.ManagerAddr}}
	n, err := node.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	defer func() { cancel(); <-done }()
	m.WaitFor("refused manager link", func() bool { return n.Counters().LinksRefused > 0 })
	if st := n.Status(); st.Managers[0].Registered {
		t.Fatal("registered with a manager presenting the wrong key")
	}
}

// registeredRogue is a key registered with the manager as a node (it is
// in the directory), linked to node i as a peer.
func registeredRogue(t *testing.T, m *meshtest.Mesh, i int) *link.Conn {
	t.Helper()
	kp := tstest.KeyPair(t)
	ctx := ctxT(t, 10*time.Second)
	conn, err := m.Net.Dialer("rogue")(ctx, meshtest.ManagerAddr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := link.Config{Local: kp, KeepaliveInterval: 50 * time.Millisecond, DeadAfter: tstest.Scaled(10 * time.Second)}
	mlc, err := link.Client(ctx, conn, cfg, m.ManagerKey.Public)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mlc.Close() })
	hello, _ := proto.Encode(nil, &proto.Hello{Version: proto.Version})
	if err := mlc.Send(proto.LinkControl, hello); err != nil {
		t.Fatal(err)
	}
	typ, payload, err := mlc.Recv()
	if err != nil || typ != proto.LinkControl {
		t.Fatalf("register: %v", err)
	}
	if msg, err := proto.Decode(payload); err != nil {
		t.Fatal(err)
	} else if w, ok := msg.(*proto.Welcome); !ok || w.Code != proto.CodeOK {
		t.Fatalf("register: manager answered %+v", msg)
	}
	go func() { // keep the manager link read
		for {
			if _, _, err := mlc.Recv(); err != nil {
				return
			}
		}
	}()
	return rogueAs(t, m, i, kp)
}

// RouteDown, like Install, is taken only from a configured manager: a
// peer, even one registered with the manager, cannot break a route.
func TestRouteDownFromPeer(t *testing.T) {
	m := readyMesh(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3)})
	n0, far := m.Nodes[0], m.Nodes[2].Keys.Public
	echo(t, m.Nodes[2].Node, 1)
	dial := func() {
		t.Helper()
		c, err := n0.Dial(ctxT(t, 20*time.Second), far, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		roundTrip(t, c, 4096)
	}
	dial()
	ss := n0.Sessions()
	if len(ss) != 1 {
		t.Fatalf("sessions: %+v", ss)
	}
	route := ss[0].Route
	for _, tt := range []struct {
		name string
		link func() *link.Conn
	}{
		{"peer", func() *link.Conn { return rogue(t, m, 0) }},
		{"registered node", func() *link.Conn { return registeredRogue(t, m, 0) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := n0.Counters()
			down, _ := proto.Encode(nil, &proto.RouteDown{Route: route, Code: proto.CodeNoPath, Msg: "forged"})
			if err := tt.link().Send(proto.LinkControl, down); err != nil {
				t.Fatal(err)
			}
			m.WaitFor("RouteDown counted", func() bool {
				return n0.Counters().Untrusted > before.Untrusted
			})
			if ss := n0.Sessions(); len(ss) != 1 || ss[0].Route != route {
				t.Fatalf("sessions after a RouteDown from a %s: %+v", tt.name, ss)
			}
			dial()
			if ss := n0.Sessions(); len(ss) != 1 || ss[0].Route != route {
				t.Fatalf("the session moved after a RouteDown from a %s: %+v", tt.name, ss)
			}
		})
	}
}

// A remote cannot keep more than max_streams_per_session streams open in
// one session: more are reset and counted.
func TestStreamsPerSessionCap(t *testing.T) {
	tstest.CheckLeaks(t)
	const maxStreams = 3
	m := meshtest.New(t, meshtest.Options{Nodes: 2, Links: meshtest.Line(2), Node: func(i int, c *node.Config) {
		if i == 1 {
			c.MaxStreamsPerSession = maxStreams
		}
	}})
	m.WaitReady()
	l, err := m.Nodes[1].Listen(1) // never accepts: streams stay open
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := ctxT(t, 20*time.Second)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range maxStreams {
		c, err := m.Nodes[0].Dial(ctx, m.Nodes[1].Keys.Public, 1)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// The refused ones fail on the dialling side, at Dial.
	for range 2 {
		c, err := m.Nodes[0].Dial(ctx, m.Nodes[1].Keys.Public, 1)
		if err == nil {
			conns = append(conns, c)
			t.Fatal("a dial beyond max_streams_per_session succeeded")
		}
		if !errors.Is(err, node.ErrRefused) {
			t.Fatalf("dial beyond max_streams_per_session: %v, want ErrRefused", err)
		}
	}
	m.WaitFor("streams refused", func() bool { return m.Nodes[1].Counters().StreamsRefused == 2 })
}
