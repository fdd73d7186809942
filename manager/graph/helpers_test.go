package graph

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/keys"
)

// key returns a distinct, deterministic key for i (never the zero key).
func key(i int) keys.PublicKey {
	var k keys.PublicKey
	binary.BigEndian.PutUint64(k[:8], uint64(i)+1)
	k[31] = 0x5a
	return k
}

// checkInvariants verifies the internal structure of g: every half has a
// matching opposite half, the link count adds up and the index agrees with
// the slots.
func checkInvariants(t testing.TB, g *Graph) {
	t.Helper()
	if len(g.keys) != len(g.adj) {
		t.Fatalf("len(keys)=%d len(adj)=%d", len(g.keys), len(g.adj))
	}
	free := make(map[int32]bool, len(g.free))
	for _, f := range g.free {
		if free[f] {
			t.Fatalf("slot %d free twice", f)
		}
		free[f] = true
		if g.adj[f] != nil || !g.keys[f].IsZero() {
			t.Fatalf("free slot %d still has key or links", f)
		}
	}
	if len(g.index)+len(free) != len(g.keys) {
		t.Fatalf("index %d + free %d != slots %d", len(g.index), len(free), len(g.keys))
	}
	for k, i := range g.index {
		if g.keys[i] != k || free[i] {
			t.Fatalf("index[%s]=%d but slot holds %s (free=%v)", k.Short(), i, g.keys[i].Short(), free[i])
		}
	}
	halves := 0
	for x, l := range g.adj {
		seen := make(map[int32]bool, len(l))
		for i, h := range l {
			halves++
			if h.to == int32(x) {
				t.Fatalf("self link at slot %d", x)
			}
			if seen[h.to] {
				t.Fatalf("duplicate link %d-%d", x, h.to)
			}
			seen[h.to] = true
			if free[h.to] {
				t.Fatalf("link %d-%d to a free slot", x, h.to)
			}
			if int(h.rev) >= len(g.adj[h.to]) {
				t.Fatalf("half %d[%d] rev %d out of range", x, i, h.rev)
			}
			r := g.adj[h.to][h.rev]
			if r.to != int32(x) || r.rev != int32(i) || r.rtt != h.rtt {
				t.Fatalf("half %d[%d]=%+v but opposite %d[%d]=%+v", x, i, h, h.to, h.rev, r)
			}
		}
	}
	if halves != 2*g.links {
		t.Fatalf("%d halves but Links()=%d", halves, g.links)
	}
}

// matrix is a reference model of a small graph: rtt[i][j] < 0 means no link.
type matrix [][]time.Duration

func newMatrix(n int) matrix {
	m := make(matrix, n)
	for i := range m {
		m[i] = make([]time.Duration, n)
		for j := range m[i] {
			m[i][j] = -1
		}
	}
	return m
}

// randomMatrix makes a random graph on n nodes where each pair is linked with
// probability p, with small integer RTTs (including 0) so that ties are
// common.
func randomMatrix(r *rand.Rand, n int, p float64) matrix {
	m := newMatrix(n)
	for i := range n {
		for j := i + 1; j < n; j++ {
			if r.Float64() < p {
				d := time.Duration(r.IntN(6))
				m[i][j], m[j][i] = d, d
			}
		}
	}
	return m
}

func (m matrix) graph(t testing.TB) *Graph {
	t.Helper()
	g := New()
	for i := range m {
		g.AddNode(key(i))
	}
	for i := range m {
		for j := i + 1; j < len(m); j++ {
			if m[i][j] >= 0 {
				if err := g.SetLink(key(i), key(j), m[i][j]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return g
}

// brute returns the lowest latency of a simple path from src to dst with at
// most maxHops links that avoid allows, and the fewest links of a path with
// that latency, by enumerating all simple paths.
func (m matrix) brute(src, dst, maxHops int, avoid func(a, b int) bool) (best time.Duration, links int, found bool) {
	on := make([]bool, len(m))
	var walk func(v, hops int, d time.Duration)
	walk = func(v, hops int, d time.Duration) {
		if v == dst {
			if !found || d < best || (d == best && hops < links) {
				best, links, found = d, hops, true
			}
			return
		}
		if hops == maxHops {
			return
		}
		on[v] = true
		for u, w := range m[v] {
			if w < 0 || on[u] || (avoid != nil && avoid(v, u)) {
				continue
			}
			walk(u, hops+1, d+w)
		}
		on[v] = false
	}
	walk(src, 0, 0)
	return best, links, found
}

// checkPath verifies that p is a well-formed path in g from from to to with
// at most maxHops links.
// checkAgainstBrute checks p, err, the answer of the search for src->dst
// with hop limit h (limit: the limit that means, h 0 being the default),
// against brute force on m avoiding the links bruteAvoid names:
// ErrUnknownNode for an absent node, ErrNoPath where brute force finds
// none, else a valid path of the same latency over as many links. It
// reports whether a path was expected (and checked).
func checkAgainstBrute(t testing.TB, g *Graph, m matrix, present []bool, src, dst, h, limit int, bruteAvoid func(a, b int) bool, p Path, err error) bool {
	t.Helper()
	if !present[src] || !present[dst] {
		if !errors.Is(err, ErrUnknownNode) {
			t.Fatalf("%d->%d: err=%v, want ErrUnknownNode", src, dst, err)
		}
		return false
	}
	want, wantLinks, ok := m.brute(src, dst, limit, bruteAvoid)
	if !ok {
		if !errors.Is(err, ErrNoPath) {
			t.Fatalf("%d->%d h=%d: got %v %v, want ErrNoPath", src, dst, h, shorts(p.Hops), err)
		}
		return false
	}
	if err != nil {
		t.Fatalf("%d->%d h=%d: %v, want latency %v", src, dst, h, err, want)
	}
	checkPath(t, g, p, key(src), key(dst), limit)
	if p.Latency != want || p.Links() != wantLinks {
		t.Fatalf("%d->%d h=%d: latency %v over %d links (path %v), brute force %v over %d",
			src, dst, h, p.Latency, p.Links(), shorts(p.Hops), want, wantLinks)
	}
	return true
}

func checkPath(t testing.TB, g *Graph, p Path, from, to keys.PublicKey, maxHops int) {
	t.Helper()
	if len(p.Hops) == 0 || p.Hops[0] != from || p.Hops[len(p.Hops)-1] != to {
		t.Fatalf("path %v does not run %s -> %s", shorts(p.Hops), from.Short(), to.Short())
	}
	if len(p.Per) != len(p.Hops)-1 || p.Links() != len(p.Per) {
		t.Fatalf("path has %d hops but %d per-link RTTs", len(p.Hops), len(p.Per))
	}
	if p.Links() > maxHops {
		t.Fatalf("path has %d links, limit %d", p.Links(), maxHops)
	}
	seen := make(map[keys.PublicKey]bool)
	var sum time.Duration
	for i, h := range p.Hops {
		if seen[h] {
			t.Fatalf("path %v repeats %s", shorts(p.Hops), h.Short())
		}
		seen[h] = true
		if i == 0 {
			continue
		}
		rtt, ok := g.Link(p.Hops[i-1], h)
		if !ok {
			t.Fatalf("path %v: no link %s-%s", shorts(p.Hops), p.Hops[i-1].Short(), h.Short())
		}
		if rtt != p.Per[i-1] {
			t.Fatalf("path per[%d]=%v, link rtt %v", i-1, p.Per[i-1], rtt)
		}
		sum += rtt
	}
	if sum != p.Latency {
		t.Fatalf("path latency %v, sum of links %v", p.Latency, sum)
	}
}

func shorts(ks []keys.PublicKey) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.Short()
	}
	return out
}

// randomGraph builds a connected random graph with n nodes and m links (a
// random spanning tree plus random extra links), RTTs 1–200 ms, from seed.
func randomGraph(tb testing.TB, n, m int, seed uint64) *Graph {
	tb.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := New()
	for i := range n {
		g.AddNode(key(i))
	}
	rtt := func() time.Duration { return time.Duration(1+r.IntN(200_000)) * time.Microsecond }
	for i := 1; i < n; i++ {
		if err := g.SetLink(key(i), key(r.IntN(i)), rtt()); err != nil {
			tb.Fatal(err)
		}
	}
	for g.Links() < m {
		a, b := r.IntN(n), r.IntN(n)
		if a == b {
			continue
		}
		if err := g.SetLink(key(a), key(b), rtt()); err != nil {
			tb.Fatal(err)
		}
	}
	return g
}
