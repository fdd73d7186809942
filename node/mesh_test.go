package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/node"
)

// ctxT is a context that ends after d (stretched by tstest.TimeScale)
// or with the test.
func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(d))
	t.Cleanup(cancel)
	return ctx
}

// readyMesh checks for leaks and builds a mesh of opts that is ready.
func readyMesh(t *testing.T, opts meshtest.Options) *meshtest.Mesh {
	t.Helper()
	tstest.CheckLeaks(t)
	m := meshtest.New(t, opts)
	m.WaitReady()
	return m
}

// dialEcho serves echo on port 1 of m's third node and dials it from the
// first; the stream is closed when the test ends.
func dialEcho(t *testing.T, m *meshtest.Mesh, ctx context.Context) net.Conn {
	t.Helper()
	echo(t, m.Nodes[2].Node, 1)
	c, err := m.Nodes[0].Dial(ctx, m.Nodes[2].Keys.Public, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echo serves port on n: every stream is echoed back until EOF.
func echo(t *testing.T, n *node.Node, port uint16) {
	t.Helper()
	l, err := n.Listen(port)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := tstest.ServeStreams(ctx, l.Accept, tstest.Echo)
	t.Cleanup(func() { cancel(); l.Close(); <-done })
}

func roundTrip(t *testing.T, c net.Conn, size int) {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	c.SetDeadline(time.Now().Add(tstest.Scaled(30 * time.Second)))
	defer c.SetDeadline(time.Time{})
	if err := tstest.CheckEcho(c, data); err != nil {
		t.Fatal(err)
	}
}

// One test body, two transports: in-memory pipes and TCP on loopback.
func TestStreamThroughRelays(t *testing.T) {
	tstest.CheckLeaks(t)
	for _, tcp := range []bool{false, true} {
		for _, n := range []int{2, 3, 5} {
			name := fmt.Sprintf("mem/%d-relays", n-2)
			if tcp {
				name = fmt.Sprintf("tcp/%d-relays", n-2)
			}
			t.Run(name, func(t *testing.T) { testStreamThroughRelays(t, n, tcp) })
		}
	}
}

func testStreamThroughRelays(t *testing.T, n int, tcp bool) {
	m := meshtest.New(t, meshtest.Options{Nodes: n, Links: meshtest.Line(n), TCP: tcp})
	m.WaitReady()
	last := m.Nodes[n-1]
	echo(t, last.Node, 7)
	ctx := ctxT(t, 20*time.Second)
	c, err := m.Nodes[0].Dial(ctx, last.Keys.Public, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, 1<<20)
	ss := m.Nodes[0].Sessions()
	if len(ss) != 1 || len(ss[0].Hops) != n {
		t.Fatalf("sessions = %+v, want one over %d hops", ss, n)
	}
	for i := 1; i < n-1; i++ {
		if f := m.Nodes[i].Counters().Forwarded; f == 0 {
			t.Errorf("relay %d forwarded nothing", i)
		}
	}
}

func TestRouteChoiceAndHopLimit(t *testing.T) {
	tstest.CheckLeaks(t)
	// 0-1-2-3 is fast (1 ms per link, 3 links); 0-4-3 is slow (50 ms per link, 2 links).
	links := [][2]int{{0, 1}, {1, 2}, {2, 3}, {0, 4}, {3, 4}}
	rtt := func(a, b int) time.Duration {
		if a == 4 || b == 4 {
			return 50 * time.Millisecond
		}
		return time.Millisecond
	}
	tests := []struct {
		name     string
		hopLimit int
		want     []int
	}{
		{"lowest latency", 0, []int{0, 1, 2, 3}},
		{"hop limit forces the slower path", 2, []int{0, 4, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := meshtest.New(t, meshtest.Options{Nodes: 5, Links: links, RTT: rtt,
				Node: func(i int, c *node.Config) { c.HopLimit = tt.hopLimit }})
			m.WaitReady()
			ctx := ctxT(t, 10*time.Second)
			pi, err := m.Nodes[0].RouteTo(ctx, m.Nodes[3].Keys.Public)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Path(pi.Hops); !slices.Equal(got, tt.want) {
				t.Fatalf("RouteTo path %v, want %v", got, tt.want)
			}
			echo(t, m.Nodes[3].Node, 1)
			c, err := m.Nodes[0].Dial(ctx, m.Nodes[3].Keys.Public, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			roundTrip(t, c, 1000)
			// Rules are on every hop of the chosen path and nowhere else.
			route := m.Nodes[0].Sessions()[0].Route
			for i, nd := range m.Nodes {
				has := slices.ContainsFunc(nd.Routes(), func(r node.RouteInfo) bool { return r.Route == route })
				if want := slices.Contains(tt.want, i); has != want {
					t.Errorf("node %d has rules for the route: %v, want %v", i, has, want)
				}
			}
		})
	}
}

func TestNoPath(t *testing.T) {
	// Two islands: 0-1 and 2-3.
	m := readyMesh(t, meshtest.Options{Nodes: 4, Links: [][2]int{{0, 1}, {2, 3}}})
	ctx := ctxT(t, 10*time.Second)
	_, err := m.Nodes[0].Dial(ctx, m.Nodes[3].Keys.Public, 1)
	if !errors.Is(err, node.ErrNoRoute) {
		t.Fatalf("Dial across islands: %v, want ErrNoRoute", err)
	}
	_, err = m.Nodes[0].RouteTo(ctx, m.Nodes[3].Keys.Public)
	if !errors.Is(err, node.ErrNoRoute) {
		t.Fatalf("RouteTo across islands: %v, want ErrNoRoute", err)
	}
	// Unknown key.
	_, err = m.Nodes[0].Dial(ctx, m.ManagerKey.Public, 1)
	if !errors.Is(err, node.ErrNoRoute) {
		t.Fatalf("Dial to an unregistered key: %v, want ErrNoRoute", err)
	}
	if ctx.Err() != nil {
		t.Fatal("errors took until the deadline")
	}
}

func TestPing(t *testing.T) {
	m := readyMesh(t, meshtest.Options{Nodes: 4, Links: meshtest.Star(4)})
	ctx := ctxT(t, 10*time.Second)
	for i := 0; i < 3; i++ {
		d, err := m.Nodes[1].Ping(ctx, m.Nodes[3].Keys.Public)
		if err != nil {
			t.Fatal(err)
		}
		if d <= 0 || d > 5*time.Second {
			t.Fatalf("ping %v", d)
		}
	}
}

func TestDatagrams(t *testing.T) {
	m := readyMesh(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3)})
	a := tstest.OpenPort(t, m.Nodes[0].ListenPacket, 100)
	b := tstest.OpenPort(t, m.Nodes[2].ListenPacket, 200)
	if _, err := m.Nodes[2].ListenPacket(200); !errors.Is(err, node.ErrPortInUse) {
		t.Fatalf("second ListenPacket: %v", err)
	}
	to := node.Addr{Key: m.Nodes[2].Keys.Public, Port: 200}
	buf := make([]byte, 2048)
	// Datagrams are unreliable: resend until one arrives.
	got := false
	for i := 0; i < 50 && !got; i++ {
		if _, err := a.WriteTo([]byte("hello"), to); err != nil {
			t.Fatal(err)
		}
		b.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		k, from, err := b.ReadFrom(buf)
		if err != nil {
			continue
		}
		got = true
		if string(buf[:k]) != "hello" || from.(node.Addr) != (node.Addr{Key: m.Nodes[0].Keys.Public, Port: 100}) {
			t.Fatalf("got %q from %v", buf[:k], from)
		}
		if _, err := b.WriteTo([]byte("back"), from); err != nil {
			t.Fatal(err)
		}
		a.SetReadDeadline(time.Now().Add(tstest.Scaled(10 * time.Second)))
		k, _, err = a.ReadFrom(buf)
		if err != nil || string(buf[:k]) != "back" {
			t.Fatalf("reply %q, %v", buf[:k], err)
		}
	}
	if !got {
		t.Fatal("no datagram arrived")
	}
}

// TestListenPacketFunc: a port opened with ListenPacketFunc gets its
// datagrams through the function, with the sender's address, and holds
// its port like ListenPacket until closed.
func TestListenPacketFunc(t *testing.T) {
	m := readyMesh(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3)})
	a := tstest.OpenPort(t, m.Nodes[0].ListenPacket, 100)
	type dgram struct {
		from node.Addr
		b    []byte
	}
	got := make(chan dgram, 16)
	b, err := m.Nodes[2].ListenPacketFunc(300, func(from node.Addr, b []byte) {
		select {
		case got <- dgram{from, bytes.Clone(b)}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Nodes[2].ListenPacket(300); !errors.Is(err, node.ErrPortInUse) {
		t.Fatalf("ListenPacket on a ListenPacketFunc port: %v", err)
	}
	to := node.Addr{Key: m.Nodes[2].Keys.Public, Port: 300}
	payload := bytes.Repeat([]byte("0123456789abcdef"), 4000) // 64,000 bytes: one large datagram
	var d dgram
	// Datagrams are unreliable: resend until one arrives.
	tstest.WaitFor(t, "a datagram through the function", func() bool {
		if _, err := a.WriteTo(payload, to); err != nil {
			t.Fatal(err)
		}
		select {
		case d = <-got:
			return true
		default:
			return false
		}
	})
	if !bytes.Equal(d.b, payload) || d.from != (node.Addr{Key: m.Nodes[0].Keys.Public, Port: 100}) {
		t.Fatalf("got %d bytes from %v, want %d from node 0 port 100", len(d.b), d.from, len(payload))
	}
	// The port answers through it like any other.
	if _, err := b.WriteTo([]byte("back"), d.from); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	a.SetReadDeadline(time.Now().Add(tstest.Scaled(10 * time.Second)))
	if k, _, err := a.ReadFrom(buf); err != nil || string(buf[:k]) != "back" {
		t.Fatalf("reply %q, %v", buf[:k], err)
	}
	b.Close()
	c, err := m.Nodes[2].ListenPacket(300)
	if err != nil {
		t.Fatalf("ListenPacket after Close of the ListenPacketFunc port: %v", err)
	}
	c.Close()
}

// TestDialClosedPort: a dial to a port nobody listens on fails at Dial with
// ErrRefused (it used to succeed and read end-of-stream later, so a sender
// could not tell its data was dropped); a listener on another port is not
// affected, and a port listened on later accepts.
func TestDialClosedPort(t *testing.T) {
	m := readyMesh(t, meshtest.Options{Nodes: 2, Links: meshtest.Line(2)})
	ctx := ctxT(t, 10*time.Second)
	echo(t, m.Nodes[1].Node, 5)
	c, err := m.Nodes[0].Dial(ctx, m.Nodes[1].Keys.Public, 9)
	if !errors.Is(err, node.ErrRefused) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial of a closed port: %v, want ErrRefused", err)
	}
	l, err := m.Nodes[1].Listen(9)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, _, err := l.Accept(ctx); err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
	}()
	c, err = m.Nodes[0].Dial(ctx, m.Nodes[1].Keys.Public, 9)
	if err != nil {
		t.Fatalf("dial after Listen: %v", err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(tstest.Scaled(10 * time.Second)))
	if b, err := io.ReadAll(c); err != nil || string(b) != "x" {
		t.Fatalf("read %q, %v; want the listener's \"x\"", b, err)
	}
}

func TestManyStreams(t *testing.T) {
	m := readyMesh(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3)})
	echo(t, m.Nodes[2].Node, 5)
	ctx := ctxT(t, 20*time.Second)
	errc := make(chan error, 16)
	for i := 0; i < cap(errc); i++ {
		go func() {
			c, err := m.Nodes[0].Dial(ctx, m.Nodes[2].Keys.Public, 5)
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			msg := bytes.Repeat([]byte{byte(i)}, 10000+i)
			go func() { c.Write(msg); c.(*node.Conn).CloseWrite() }()
			got, err := io.ReadAll(c)
			if err == nil && !bytes.Equal(got, msg) {
				err = errors.New("echo mismatch")
			}
			errc <- err
		}()
	}
	for i := 0; i < cap(errc); i++ {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(tstest.Scaled(60 * time.Second)):
			t.Fatal("streams did not finish")
		}
	}
	if s := m.Nodes[0].Sessions(); len(s) != 1 {
		t.Fatalf("%d sessions, want one shared by all streams", len(s))
	}
}
