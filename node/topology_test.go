package node_test

import (
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/node"
)

// bestLatency is the lowest total RTT from src to dst over at most maxHops
// links (bounded Bellman-Ford), or -1.
func bestLatency(n int, links [][2]int, rtt func(a, b int) time.Duration, src, dst, maxHops int) time.Duration {
	dist := make([]float64, n)
	for i := range dist {
		dist[i] = math.Inf(1)
	}
	dist[src] = 0
	for h := 0; h < maxHops; h++ {
		next := append([]float64(nil), dist...)
		for _, l := range links {
			a, b := l[0], l[1]
			w := float64(rtt(a, b))
			next[b] = math.Min(next[b], dist[a]+w)
			next[a] = math.Min(next[a], dist[b]+w)
		}
		dist = next
	}
	if math.IsInf(dist[dst], 1) {
		return -1
	}
	return time.Duration(dist[dst])
}

func TestRandomTopology(t *testing.T) {
	tstest.CheckLeaks(t)
	const n = 9
	for _, seed := range []uint64{1, 2} {
		links := meshtest.Random(n, 5, seed)
		rtt := func(a, b int) time.Duration {
			if a > b {
				a, b = b, a
			}
			return time.Duration(1+(a*7+b*13+int(seed))%17) * time.Millisecond
		}
		const hopLimit = 3
		m := meshtest.New(t, meshtest.Options{Nodes: n, Links: links, RTT: rtt, HopLimit: hopLimit})
		m.WaitReady()
		ctx := ctxT(t, 30*time.Second)
		for dst := 1; dst < n; dst++ {
			want := bestLatency(n, links, rtt, 0, dst, hopLimit)
			pi, err := m.Nodes[0].RouteTo(ctx, m.Nodes[dst].Keys.Public)
			if want < 0 {
				if err == nil {
					t.Errorf("seed %d: route to %d within %d hops: %v, want none", seed, dst, hopLimit, m.Path(pi.Hops))
				}
				continue
			}
			if err != nil {
				t.Fatalf("seed %d: route to %d: %v", seed, dst, err)
			}
			if pi.Latency != want || len(pi.Hops)-1 > hopLimit {
				t.Errorf("seed %d: route to %d: %v latency %v, want %v", seed, dst, m.Path(pi.Hops), pi.Latency, want)
			}
			echo(t, m.Nodes[dst].Node, 3)
			c, err := m.Nodes[0].Dial(ctx, m.Nodes[dst].Keys.Public, 3)
			if err != nil {
				t.Fatalf("seed %d: dial %d: %v", seed, dst, err)
			}
			roundTrip(t, c, 4096)
			c.Close()
		}
		m.Close()
	}
}

func TestReconnect(t *testing.T) {
	m := readyMesh(t, meshtest.Options{Nodes: 2, Links: meshtest.Line(2)})
	m.Cut(0, 1)
	m.WaitLinks(nil)
	m.Heal(0, 1)
	m.WaitReady()
	if l := m.Nodes[0].Links(); len(l) != 1 || l[0].Peer != m.Nodes[1].Keys.Public {
		t.Fatalf("links after reconnect: %+v", l)
	}
}

// A node uses whichever of its managers answers.
func TestSeveralManagers(t *testing.T) {
	tstest.CheckLeaks(t)
	dead, _ := keys.Generate()
	m := meshtest.New(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3), Node: func(i int, c *node.Config) {
		c.Managers = append([]node.Peer{{PublicKey: dead.Public, Addr: "nowhere"}}, c.Managers...)
	}})
	m.WaitReady()
	echo(t, m.Nodes[2].Node, 1)
	c, err := m.Nodes[0].Dial(ctxT(t, 10*time.Second), m.Nodes[2].Keys.Public, 1)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, 100)
	st := m.Nodes[0].Status()
	if len(st.Managers) != 2 || st.Managers[0].Registered || !st.Managers[1].Registered {
		t.Fatalf("managers %+v", st.Managers)
	}
}

// Closing a session releases its goroutines and its route on every hop,
// and the status views follow.
func TestSessionCloseReleases(t *testing.T) {
	m := readyMesh(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3)})
	echo(t, m.Nodes[2].Node, 1)
	base := runtime.NumGoroutine()
	ctx := ctxT(t, 10*time.Second)
	c, err := m.Nodes[0].Dial(ctx, m.Nodes[2].Keys.Public, 1)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, 100)
	st := m.Nodes[0].Status()
	if st.Sessions != 1 || st.Links != 1 || len(m.Nodes[0].Sessions()) != 1 || len(m.Manager().Routes()) != 1 {
		t.Fatalf("status %+v, manager routes %+v", st, m.Manager().Routes())
	}
	if d, err := m.Nodes[0].Ping(ctx, m.Nodes[2].Keys.Public); err != nil || d <= 0 {
		t.Fatalf("ping %v %v", d, err)
	}
	c.Close()
	if err := m.Nodes[0].CloseSession(m.Nodes[2].Keys.Public); err != nil {
		t.Fatal(err)
	}
	m.WaitFor("sessions closed on both ends", func() bool {
		return len(m.Nodes[0].Sessions()) == 0 && len(m.Nodes[2].Sessions()) == 0 && len(m.Manager().Routes()) == 0
	})
	m.WaitFor("goroutines released", func() bool { return runtime.NumGoroutine() <= base })
}

// Apps a node listens on show in the manager's directory, also when they
// change after registration.
func TestDirectoryApps(t *testing.T) {
	m := readyMesh(t, meshtest.Options{Nodes: 2, Links: meshtest.Line(2)})
	l, err := m.Nodes[1].ListenApp("chat", 42)
	if err != nil {
		t.Fatal(err)
	}
	hasChat := func() bool {
		d, err := m.Nodes[0].Directory(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range d {
			if e.Key == m.Nodes[1].Keys.Public {
				for _, a := range e.Apps {
					if a.Name == "chat" && a.Port == 42 {
						return true
					}
				}
			}
		}
		return false
	}
	m.WaitFor("app in the directory", hasChat)
	l.Close()
	m.WaitFor("app gone from the directory", func() bool { return !hasChat() })
}
