package node_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/manager"
)

// BenchmarkStream measures one stream's throughput through 0, 1 and 3
// relays, in memory and over TCP on loopback.
func BenchmarkStream(b *testing.B) {
	for _, tcp := range []bool{false, true} {
		for _, relays := range []int{0, 1, 3} {
			name := "mem"
			if tcp {
				name = "tcp"
			}
			b.Run(name+"/relays="+string(rune('0'+relays)), func(b *testing.B) { benchStream(b, relays+2, tcp) })
		}
	}
}

func benchStream(b *testing.B, n int, tcp bool) {
	m := meshtest.New(b, meshtest.Options{Nodes: n, Links: meshtest.Line(n), TCP: tcp})
	m.WaitReady()
	l, err := m.Nodes[n-1].Listen(1)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	got := make(chan int64, 1)
	go func() {
		c, _, err := l.Accept(ctx)
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		k, _ := io.Copy(io.Discard, c)
		got <- k
	}()
	c, err := m.Nodes[0].Dial(ctx, m.Nodes[n-1].Keys.Public, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	if k := <-got; k != int64(b.N)*int64(len(buf)) {
		b.Fatalf("received %d of %d bytes", k, b.N*len(buf))
	}
	b.StopTimer()
}

// BenchmarkRouteSetup measures the time from a route request to the first
// echoed byte across three relays: route computation, parallel install on
// five hops, the end-to-end handshake, a stream and one round trip.
func BenchmarkRouteSetup(b *testing.B) {
	// One node asks for every route: lift the manager's per-node request
	// rate (20/s by default), which is what the benchmark would measure.
	m := meshtest.New(b, meshtest.Options{Nodes: 5, Links: meshtest.Line(5),
		Manager: func(c *manager.Config) { c.RouteRequestRate, c.RouteRequestBurst = 1e6, 1e6 }})
	m.WaitReady()
	l, err := m.Nodes[4].Listen(1)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tstest.ServeStreams(ctx, l.Accept, tstest.Echo)
	dst := m.Nodes[4].Keys.Public
	one := make([]byte, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := m.Nodes[0].Dial(ctx, dst, 1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(one); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, one); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		c.Close()
		m.Nodes[0].CloseSession(dst)
		b.StartTimer()
	}
}

// BenchmarkPing measures the round trip of a route ping through 0, 1 and
// 3 relays (in memory); the difference is the time each relay adds.
func BenchmarkPing(b *testing.B) {
	for _, relays := range []int{0, 1, 3} {
		b.Run("relays="+string(rune('0'+relays)), func(b *testing.B) {
			n := relays + 2
			m := meshtest.New(b, meshtest.Options{Nodes: n, Links: meshtest.Line(n)})
			m.WaitReady()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			dst := m.Nodes[n-1].Keys.Public
			if _, err := m.Nodes[0].Ping(ctx, dst); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.Nodes[0].Ping(ctx, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
