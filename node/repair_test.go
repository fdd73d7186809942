package node_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/node"
)

// detour is a line 0-1-2-3 (fast) with a slower parallel detour 0-4-3.
var detour = [][2]int{{0, 1}, {1, 2}, {2, 3}, {0, 4}, {3, 4}}

func detourRTT(a, b int) time.Duration {
	if a == 4 || b == 4 {
		return 20 * time.Millisecond
	}
	return time.Millisecond
}

// sink serves port on n: it hashes every byte of one stream and reports
// the digest and count, calling at(k) once k bytes have arrived.
type sinkResult struct {
	sum [32]byte
	n   int64
	err error
}

func sink(t *testing.T, n *node.Node, port uint16, trigger int64, at func()) <-chan sinkResult {
	t.Helper()
	l, err := n.Listen(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	res := make(chan sinkResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(60*time.Second))
		defer cancel()
		c, _, err := l.Accept(ctx)
		if err != nil {
			res <- sinkResult{err: err}
			return
		}
		defer c.Close()
		h := sha256.New()
		var total int64
		fired := false
		buf := make([]byte, 64<<10)
		for {
			k, err := c.Read(buf)
			h.Write(buf[:k])
			total += int64(k)
			if !fired && total >= trigger {
				fired = true
				at()
			}
			if err == io.EOF {
				var r sinkResult
				copy(r.sum[:], h.Sum(nil))
				r.n = total
				res <- r
				return
			}
			if err != nil {
				res <- sinkResult{n: total, err: err}
				return
			}
		}
	}()
	return res
}

// send writes size pseudo-random bytes to c and half-closes; it returns
// their digest.
// awaitSink waits (bounded) for the sink's result.
func awaitSink(t *testing.T, res <-chan sinkResult) sinkResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(tstest.Scaled(60 * time.Second)):
		t.Fatal("receiver did not finish")
		return sinkResult{}
	}
}

func send(t *testing.T, c io.Writer, size int, seed uint64) ([32]byte, error) {
	r := rand.New(rand.NewPCG(seed, seed))
	h := sha256.New()
	buf := make([]byte, 32<<10)
	for left := size; left > 0; {
		k := min(left, len(buf))
		for i := 0; i < k; i += 8 {
			v := r.Uint64()
			for j := 0; j < 8 && i+j < k; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		h.Write(buf[:k])
		if _, err := c.Write(buf[:k]); err != nil {
			return [32]byte{}, err
		}
		left -= k
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, c.(*node.Conn).CloseWrite()
}

func TestRepair(t *testing.T) {
	tstest.CheckLeaks(t)
	tests := []struct {
		name   string
		tcp    bool
		break_ func(m *meshtest.Mesh)
	}{
		{"mem/link cut", false, func(m *meshtest.Mesh) { m.Cut(1, 2) }},
		{"mem/link silently dead", false, func(m *meshtest.Mesh) { m.Blackhole(1, 2) }},
		{"mem/relay dies", false, func(m *meshtest.Mesh) { m.StopNode(2) }},
		{"tcp/relay dies", true, func(m *meshtest.Mesh) { m.StopNode(2) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := meshtest.New(t, meshtest.Options{Nodes: 5, Links: detour, RTT: detourRTT, TCP: tt.tcp})
			m.WaitReady()
			const size = 8 << 20
			broke := make(chan struct{})
			res := sink(t, m.Nodes[3].Node, 80, size/4, func() { tt.break_(m); close(broke) })
			ctx := ctxT(t, 60*time.Second)
			c, err := m.Nodes[0].Dial(ctx, m.Nodes[3].Keys.Public, 80)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := m.Path(m.Nodes[0].Sessions()[0].Hops); !slices.Equal(got, []int{0, 1, 2, 3}) {
				t.Fatalf("initial path %v", got)
			}
			sum, err := send(t, c, size, 1)
			if err != nil {
				t.Fatal(err)
			}
			r := awaitSink(t, res)
			if r.err != nil {
				t.Fatalf("receiver: %v after %d bytes", r.err, r.n)
			}
			if r.n != size || r.sum != sum {
				t.Fatalf("received %d bytes (want %d), digest match %v", r.n, size, r.sum == sum)
			}
			<-broke // closed before the sink reported
			if got := m.Path(m.Nodes[0].Sessions()[0].Hops); !slices.Equal(got, []int{0, 4, 3}) {
				t.Fatalf("path after repair %v, want the detour", got)
			}
			if m.Manager().Stats().Repairs == 0 {
				t.Fatal("manager counted no repair")
			}
		})
	}
}

func TestRouteDownIsAnError(t *testing.T) {
	// 0-1-2 with no detour: cutting 1-2 leaves no path.
	m := readyMesh(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3)})
	ctx := ctxT(t, 30*time.Second)
	c := dialEcho(t, m, ctx)
	roundTrip := func() error {
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, 1))
		return err
	}
	if err := roundTrip(); err != nil {
		t.Fatal(err)
	}
	m.Cut(1, 2)
	c.SetReadDeadline(time.Now().Add(tstest.Scaled(20 * time.Second)))
	err := roundTrip()
	for err == nil {
		err = roundTrip()
	}
	if !errors.Is(err, node.ErrNoRoute) {
		t.Fatalf("stream error after the only path broke: %v, want ErrNoRoute", err)
	}
	if _, err := m.Nodes[0].Dial(ctx, m.Nodes[2].Keys.Public, 1); !errors.Is(err, node.ErrNoRoute) {
		t.Fatalf("new Dial: %v, want ErrNoRoute", err)
	}
}

func TestRuleExpiry(t *testing.T) {
	m := readyMesh(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3)})
	dialEcho(t, m, ctxT(t, 30*time.Second)).Close()
	relay := m.Nodes[1]
	if len(relay.Routes()) != 2 {
		t.Fatalf("relay rules %+v, want 2 (one per direction)", relay.Routes())
	}
	// Keepalives keep the rules alive well past RuleIdle.
	var timers node.Config
	meshtest.FastTimers(&timers)
	time.Sleep(timers.RuleIdle * 3 / 2) // the property under test is about elapsed time
	if len(relay.Routes()) != 2 {
		t.Fatalf("relay rules expired while the endpoints kept them alive: %+v", relay.Routes())
	}
	// The endpoints go away without telling anyone: the relay's rules expire.
	m.StopNode(0)
	m.StopNode(2)
	m.WaitFor("relay rules to expire", func() bool { return len(relay.Routes()) == 0 })
	if relay.Counters().RulesExpired == 0 {
		t.Fatal("no expiry counted")
	}
}

func TestManagerRestart(t *testing.T) {
	m := readyMesh(t, meshtest.Options{Nodes: 5, Links: detour, RTT: detourRTT})
	const size = 8 << 20
	res := sink(t, m.Nodes[3].Node, 80, size/4, func() {
		m.StopManager() // data keeps flowing without the manager
	})
	ctx := ctxT(t, 60*time.Second)
	c, err := m.Nodes[0].Dial(ctx, m.Nodes[3].Keys.Public, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	route := m.Nodes[0].Sessions()[0].Route
	sum, err := send(t, c, size, 2)
	if err != nil {
		t.Fatal(err)
	}
	r := awaitSink(t, res)
	if r.err != nil || r.n != size || r.sum != sum {
		t.Fatalf("transfer without manager: %d bytes, err %v, digest match %v", r.n, r.err, r.sum == sum)
	}
	if m.Manager() != nil {
		t.Fatal("manager still running")
	}
	m.StartManager()
	m.WaitReady()
	m.WaitFor("route re-reported", func() bool {
		return hasRoute(m, route)
	})
	// The restarted manager repairs the re-reported route.
	res2 := sink(t, m.Nodes[3].Node, 81, 1<<20, func() { m.Cut(1, 2) })
	c2, err := m.Nodes[0].Dial(ctx, m.Nodes[3].Keys.Public, 81)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	sum, err = send(t, c2, 4<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	if r := awaitSink(t, res2); r.err != nil || r.sum != sum {
		t.Fatalf("transfer across a repair after the restart: %d bytes, err %v", r.n, r.err)
	}
	if got := m.Path(m.Nodes[0].Sessions()[0].Hops); !slices.Equal(got, []int{0, 4, 3}) {
		t.Fatalf("path after repair %v, want the detour", got)
	}
}

func hasRoute(m *meshtest.Mesh, id uint64) bool {
	mgr := m.Manager()
	if mgr == nil {
		return false
	}
	for _, r := range mgr.Routes() {
		if r.ID == id {
			return true
		}
	}
	return false
}
