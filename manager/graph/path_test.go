package graph

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

type link struct{ a, b, ms int }

func buildGraph(t testing.TB, nodes int, links []link) *Graph {
	t.Helper()
	g := New()
	for i := range nodes {
		g.AddNode(key(i))
	}
	for _, l := range links {
		if err := g.SetLink(key(l.a), key(l.b), time.Duration(l.ms)*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func ids(ns ...int) []keys.PublicKey {
	out := make([]keys.PublicKey, len(ns))
	for i, n := range ns {
		out[i] = key(n)
	}
	return out
}

func lineLinks(n int) []link {
	var ls []link
	for i := 0; i+1 < n; i++ {
		ls = append(ls, link{i, i + 1, 1})
	}
	return ls
}

// diamond: a cheap long way 0-1-2-3-4 (4 links, 4 ms), a middle way 0-6-7-4
// (3 links, 15 ms) and an expensive short way 0-5-4 (2 links, 20 ms).
var diamond = []link{
	{0, 1, 1}, {1, 2, 1}, {2, 3, 1}, {3, 4, 1},
	{0, 6, 5}, {6, 7, 5}, {7, 4, 5},
	{0, 5, 10}, {5, 4, 10},
}

func TestShortestPath(t *testing.T) {
	star := []link{{0, 1, 1}, {0, 2, 2}, {0, 3, 3}, {0, 4, 4}}
	tie := []link{{0, 1, 2}, {1, 2, 2}, {0, 3, 1}, {3, 4, 0}, {4, 2, 3}}
	tests := []struct {
		name     string
		nodes    int
		links    []link
		from, to keys.PublicKey
		maxHops  int
		avoid    func(a, b keys.PublicKey) bool
		want     []int // hops; nil when an error is expected
		wantMS   int
		wantErr  error
	}{
		{name: "line", nodes: 4, links: lineLinks(4), from: key(0), to: key(3), want: []int{0, 1, 2, 3}, wantMS: 3},
		{name: "line reversed", nodes: 4, links: lineLinks(4), from: key(3), to: key(0), want: []int{3, 2, 1, 0}, wantMS: 3},
		{name: "line exact limit", nodes: 4, links: lineLinks(4), from: key(0), to: key(3), maxHops: 3, want: []int{0, 1, 2, 3}, wantMS: 3},
		{name: "line over limit", nodes: 4, links: lineLinks(4), from: key(0), to: key(3), maxHops: 2, wantErr: ErrNoPath},
		{name: "line default limit ok", nodes: 17, links: lineLinks(17), from: key(0), to: key(16), want: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, wantMS: 16},
		{name: "line default limit exceeded", nodes: 18, links: lineLinks(18), from: key(0), to: key(17), wantErr: ErrNoPath},
		{name: "line explicit long limit", nodes: 18, links: lineLinks(18), from: key(0), to: key(17), maxHops: 17, want: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}, wantMS: 17},
		{name: "star leaf to leaf", nodes: 5, links: star, from: key(1), to: key(3), want: []int{1, 0, 3}, wantMS: 4},
		{name: "star leaf to hub", nodes: 5, links: star, from: key(4), to: key(0), maxHops: 1, want: []int{4, 0}, wantMS: 4},
		{name: "star leaves need 2 hops", nodes: 5, links: star, from: key(1), to: key(2), maxHops: 1, wantErr: ErrNoPath},
		{name: "diamond unlimited", nodes: 8, links: diamond, from: key(0), to: key(4), want: []int{0, 1, 2, 3, 4}, wantMS: 4},
		{name: "diamond 4 hops", nodes: 8, links: diamond, from: key(0), to: key(4), maxHops: 4, want: []int{0, 1, 2, 3, 4}, wantMS: 4},
		{name: "diamond 3 hops", nodes: 8, links: diamond, from: key(0), to: key(4), maxHops: 3, want: []int{0, 6, 7, 4}, wantMS: 15},
		{name: "diamond 2 hops", nodes: 8, links: diamond, from: key(0), to: key(4), maxHops: 2, want: []int{0, 5, 4}, wantMS: 20},
		{name: "diamond 1 hop", nodes: 8, links: diamond, from: key(0), to: key(4), maxHops: 1, wantErr: ErrNoPath},
		{name: "diamond reversed 3 hops", nodes: 8, links: diamond, from: key(4), to: key(0), maxHops: 3, want: []int{4, 7, 6, 0}, wantMS: 15},
		{
			name: "diamond avoid link", nodes: 8, links: diamond, from: key(0), to: key(4),
			avoid: func(a, b keys.PublicKey) bool { return a == key(2) && b == key(3) },
			want:  []int{0, 6, 7, 4}, wantMS: 15,
		},
		{
			name: "diamond avoid node with hop limit", nodes: 8, links: diamond, from: key(0), to: key(4), maxHops: 3,
			avoid: func(a, b keys.PublicKey) bool { return a == key(6) || b == key(6) },
			want:  []int{0, 5, 4}, wantMS: 20,
		},
		{
			name: "avoid is directional", nodes: 8, links: diamond, from: key(0), to: key(4),
			avoid: func(a, b keys.PublicKey) bool { return a == key(3) && b == key(2) }, // only the other direction
			want:  []int{0, 1, 2, 3, 4}, wantMS: 4,
		},
		{
			name: "avoid everything", nodes: 8, links: diamond, from: key(0), to: key(4),
			avoid:   func(a, b keys.PublicKey) bool { return true },
			wantErr: ErrNoPath,
		},
		{name: "tie prefers fewer links", nodes: 5, links: tie, from: key(0), to: key(2), want: []int{0, 1, 2}, wantMS: 4},
		{name: "zero rtt links", nodes: 3, links: []link{{0, 1, 0}, {1, 2, 0}}, from: key(0), to: key(2), want: []int{0, 1, 2}, wantMS: 0},
		{name: "disconnected", nodes: 4, links: []link{{0, 1, 1}, {2, 3, 1}}, from: key(0), to: key(3), wantErr: ErrNoPath},
		{name: "isolated", nodes: 2, from: key(0), to: key(1), wantErr: ErrNoPath},
		{name: "self", nodes: 2, links: []link{{0, 1, 1}}, from: key(1), to: key(1), want: []int{1}, wantMS: 0},
		{name: "unknown from", nodes: 2, links: []link{{0, 1, 1}}, from: key(9), to: key(1), wantErr: ErrUnknownNode},
		{name: "unknown to", nodes: 2, links: []link{{0, 1, 1}}, from: key(0), to: key(9), wantErr: ErrUnknownNode},
		{name: "unknown self", nodes: 2, from: key(9), to: key(9), wantErr: ErrUnknownNode},
		{name: "negative hop limit", nodes: 2, links: []link{{0, 1, 1}}, from: key(0), to: key(1), maxHops: -1, wantErr: ErrBadHopLimit},
		{name: "hop limit too big", nodes: 2, links: []link{{0, 1, 1}}, from: key(0), to: key(1), maxHops: MaxHops + 1, wantErr: ErrBadHopLimit},
		{name: "max hop limit", nodes: 2, links: []link{{0, 1, 1}}, from: key(0), to: key(1), maxHops: MaxHops, want: []int{0, 1}, wantMS: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := buildGraph(t, tt.nodes, tt.links)
			p, err := g.ShortestPathAvoiding(tt.from, tt.to, tt.maxHops, tt.avoid)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err=%v, want %v (path %v)", err, tt.wantErr, shorts(p.Hops))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			limit := tt.maxHops
			if limit == 0 {
				limit = DefaultMaxHops
			}
			checkPath(t, g, p, tt.from, tt.to, limit)
			if !slices.Equal(p.Hops, ids(tt.want...)) {
				t.Fatalf("hops %v, want %v", shorts(p.Hops), shorts(ids(tt.want...)))
			}
			if p.Latency != time.Duration(tt.wantMS)*time.Millisecond {
				t.Fatalf("latency %v, want %dms", p.Latency, tt.wantMS)
			}
			if tt.avoid == nil {
				q, err := g.ShortestPath(tt.from, tt.to, tt.maxHops)
				if err != nil || !slices.Equal(q.Hops, p.Hops) {
					t.Fatalf("ShortestPath=%v,%v differs from ShortestPathAvoiding(nil)", shorts(q.Hops), err)
				}
			}
		})
	}
}

// TestRecomputeAfterRemoval follows the manager's use: compute a route, kill
// a link or node on it, find the affected route and recompute it.
func TestRecomputeAfterRemoval(t *testing.T) {
	g := buildGraph(t, 8, diamond)
	steps := []struct {
		name     string
		kill     func() bool
		affected func(Path) bool
		want     []int
		wantErr  error
	}{
		{
			name:     "link 2-3 dies",
			kill:     func() bool { return g.RemoveLink(key(3), key(2)) },
			affected: func(p Path) bool { return p.UsesLink(key(3), key(2)) },
			want:     []int{0, 6, 7, 4},
		},
		{
			name:     "node 7 dies",
			kill:     func() bool { return g.RemoveNode(key(7)) },
			affected: func(p Path) bool { return p.UsesNode(key(7)) },
			want:     []int{0, 5, 4},
		},
		{
			name:     "node 5 dies",
			kill:     func() bool { return g.RemoveNode(key(5)) },
			affected: func(p Path) bool { return p.UsesNode(key(5)) },
			wantErr:  ErrNoPath,
		},
	}
	route, err := g.ShortestPath(key(0), key(4), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if !s.kill() {
			t.Fatalf("%s: nothing removed", s.name)
		}
		checkInvariants(t, g)
		if !s.affected(route) {
			t.Fatalf("%s: route %v not reported as affected", s.name, shorts(route.Hops))
		}
		route, err = g.ShortestPath(key(0), key(4), 0)
		if s.wantErr != nil {
			if !errors.Is(err, s.wantErr) {
				t.Fatalf("%s: err=%v, want %v", s.name, err, s.wantErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		checkPath(t, g, route, key(0), key(4), DefaultMaxHops)
		if !slices.Equal(route.Hops, ids(s.want...)) {
			t.Fatalf("%s: route %v, want %v", s.name, shorts(route.Hops), shorts(ids(s.want...)))
		}
		if s.affected(route) {
			t.Fatalf("%s: new route still affected", s.name)
		}
	}
}

func TestPathUses(t *testing.T) {
	p := Path{Hops: ids(0, 1, 2), Per: []time.Duration{1, 1}, Latency: 2}
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"node start", p.UsesNode(key(0)), true},
		{"node middle", p.UsesNode(key(1)), true},
		{"node absent", p.UsesNode(key(3)), false},
		{"link forward", p.UsesLink(key(1), key(2)), true},
		{"link backward", p.UsesLink(key(1), key(0)), true},
		{"link not adjacent on path", p.UsesLink(key(0), key(2)), false},
		{"empty path", Path{}.UsesLink(key(0), key(1)), false},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// crossCheck compares every pair's ShortestPathAvoiding in g with the brute
// force answer on m, for every hop limit from 1 to len(m).
func crossCheck(t *testing.T, g *Graph, m matrix, present []bool, blocked map[[2]int]bool) {
	t.Helper()
	var avoid func(a, b keys.PublicKey) bool
	var bruteAvoid func(a, b int) bool
	if len(blocked) > 0 {
		slot := make(map[keys.PublicKey]int, len(m))
		for i := range m {
			slot[key(i)] = i
		}
		avoid = func(a, b keys.PublicKey) bool { return blocked[[2]int{slot[a], slot[b]}] }
		bruteAvoid = func(a, b int) bool { return blocked[[2]int{a, b}] }
	}
	for src := range m {
		for dst := range m {
			for h := 1; h <= len(m); h++ {
				p, err := g.ShortestPathAvoiding(key(src), key(dst), h, avoid)
				if !checkAgainstBrute(t, g, m, present, src, dst, h, h, bruteAvoid, p, err) {
					continue
				}
				if avoid != nil {
					for i := 0; i+1 < len(p.Hops); i++ {
						if avoid(p.Hops[i], p.Hops[i+1]) {
							t.Fatalf("%d->%d: path %v crosses an avoided link", src, dst, shorts(p.Hops))
						}
					}
				}
			}
		}
	}
}

// TestCrossCheckBruteForce compares the search with exhaustive enumeration
// on many small random graphs, with and without avoided links, and again
// after removing links and nodes from the same Graph (reused scratch, reused
// slots).
func TestCrossCheckBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for iter := range 150 {
		n := 2 + r.IntN(7)
		p := []float64{0.25, 0.45, 0.8}[iter%3]
		m := randomMatrix(r, n, p)
		t.Run(fmt.Sprintf("%d_n%d_p%.2f", iter, n, p), func(t *testing.T) {
			g := m.graph(t)
			present := slices.Repeat([]bool{true}, n)
			crossCheck(t, g, m, present, nil)

			blocked := make(map[[2]int]bool)
			for range r.IntN(n * 2) {
				blocked[[2]int{r.IntN(n), r.IntN(n)}] = true
			}
			crossCheck(t, g, m, present, blocked)

			// Remove a few links, one node, re-add it with new links.
			for range 1 + r.IntN(3) {
				a, b := r.IntN(n), r.IntN(n)
				if g.RemoveLink(key(a), key(b)) != (a != b && m[a][b] >= 0) {
					t.Fatalf("RemoveLink(%d,%d) disagrees with model", a, b)
				}
				m[a][b], m[b][a] = -1, -1
			}
			v := r.IntN(n)
			g.RemoveNode(key(v))
			present[v] = false
			for j := range n {
				m[v][j], m[j][v] = -1, -1
			}
			checkInvariants(t, g)
			crossCheck(t, g, m, present, nil)

			g.AddNode(key(v))
			present[v] = true
			for j := range n {
				if j != v && r.IntN(2) == 0 {
					d := time.Duration(r.IntN(6))
					if err := g.SetLink(key(v), key(j), d); err != nil {
						t.Fatal(err)
					}
					m[v][j], m[j][v] = d, d
				}
			}
			checkInvariants(t, g)
			crossCheck(t, g, m, present, nil)
		})
	}
}

// TestScratchGrowth searches, grows the graph past the pooled scratch size,
// and searches again.
func TestScratchGrowth(t *testing.T) {
	g := buildGraph(t, 3, lineLinks(3))
	if _, err := g.ShortestPath(key(0), key(2), 1); !errors.Is(err, ErrNoPath) {
		t.Fatalf("err=%v, want ErrNoPath", err)
	}
	for i := 3; i < 200; i++ {
		g.AddNode(key(i))
		if err := g.SetLink(key(i-1), key(i), time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.SetLink(key(0), key(199), time.Second); err != nil {
		t.Fatal(err)
	}
	p, err := g.ShortestPath(key(0), key(190), 20)
	if err != nil {
		t.Fatal(err)
	}
	checkPath(t, g, p, key(0), key(190), 20)
	if want := ids(0, 199, 198, 197, 196, 195, 194, 193, 192, 191, 190); !slices.Equal(p.Hops, want) {
		t.Fatalf("hops %v, want %v", shorts(p.Hops), shorts(want))
	}
}

func TestEpochWrap(t *testing.T) {
	s := &scratch{
		epoch: math.MaxUint32,
		node:  []nodeLabel{{stamp: 1}, {stamp: math.MaxUint32}},
		state: []stateLabel{{stamp: 1}},
	}
	if ep := s.next(); ep != 1 {
		t.Fatalf("epoch after wrap %d, want 1", ep)
	}
	if s.node[0].stamp != 0 || s.node[1].stamp != 0 || s.state[0].stamp != 0 {
		t.Fatal("wrap did not clear the stamps")
	}
	if ep := s.next(); ep != 2 {
		t.Fatalf("next epoch %d, want 2", ep)
	}
}

func TestHeapOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var h minHeap
	var want []item
	for range 1000 {
		it := item{d: int64(r.IntN(50)), h: int32(r.IntN(5)), v: int32(r.IntN(100))}
		want = append(want, it)
		h.push(it)
	}
	slices.SortFunc(want, func(a, b item) int {
		switch {
		case a.less(b):
			return -1
		case b.less(a):
			return 1
		}
		return 0
	})
	for i := range want {
		got := h.pop()
		if got.d != want[i].d || got.h != want[i].h {
			t.Fatalf("pop %d: (%d,%d), want (%d,%d)", i, got.d, got.h, want[i].d, want[i].h)
		}
	}
	if h.len() != 0 {
		t.Fatalf("heap not empty: %d", h.len())
	}
}

// TestConcurrentSearches runs searches from several goroutines at once, as
// the manager may under a read lock, and compares with sequential answers.
// Run with -race.
func TestConcurrentSearches(t *testing.T) {
	tstest.CheckLeaks(t) // the package starts no goroutines of its own
	g := randomGraph(t, 2000, 8000, 5)
	r := rand.New(rand.NewPCG(9, 9))
	type query struct{ from, to keys.PublicKey }
	qs := make([]query, 64)
	want := make([]time.Duration, len(qs))
	for i := range qs {
		qs[i] = query{key(r.IntN(2000)), key(r.IntN(2000))}
		p, err := g.ShortestPath(qs[i].from, qs[i].to, 4)
		if err != nil && !errors.Is(err, ErrNoPath) {
			t.Fatal(err)
		}
		want[i] = p.Latency
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := range qs {
				i := (i + w*16) % len(qs)
				p, err := g.ShortestPath(qs[i].from, qs[i].to, 4)
				if err != nil && !errors.Is(err, ErrNoPath) {
					errs <- err
					return
				}
				if p.Latency != want[i] {
					errs <- fmt.Errorf("query %d: latency %v, sequential %v", i, p.Latency, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// bellmanFord returns, for k = 0..maxHops, the lowest latency from src to
// dst over walks of at most k links (-1 when there is none): an independent
// O(maxHops × links) reference for graphs too big to enumerate.
func bellmanFord(g *Graph, src, dst keys.PublicKey, maxHops int) []time.Duration {
	n := len(g.keys)
	cur := make([]time.Duration, n)
	for i := range cur {
		cur[i] = -1
	}
	cur[g.index[src]] = 0
	out := []time.Duration{cur[g.index[dst]]}
	for range maxHops {
		next := slices.Clone(cur)
		for x, l := range g.adj {
			if cur[x] < 0 {
				continue
			}
			for _, e := range l {
				if d := cur[x] + e.rtt; next[e.to] < 0 || d < next[e.to] {
					next[e.to] = d
				}
			}
		}
		cur = next
		out = append(out, cur[g.index[dst]])
	}
	return out
}

// TestCrossCheckBellmanFord compares the search with hop-bounded
// Bellman-Ford on random graphs of a few hundred nodes, where long detours
// around the lowest-latency path exercise the hop-limited search's bound.
func TestCrossCheckBellmanFord(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for iter := range 12 {
		n := 100 + r.IntN(300)
		g := New()
		for i := range n {
			g.AddNode(key(i))
		}
		maxRTT := []int{3, 50, 100_000}[iter%3]
		for range n * (2 + iter%3) {
			a, b := r.IntN(n), r.IntN(n)
			if a != b {
				if err := g.SetLink(key(a), key(b), time.Duration(r.IntN(maxRTT))); err != nil {
					t.Fatal(err)
				}
			}
		}
		for range 20 {
			src, dst := key(r.IntN(n)), key(r.IntN(n))
			if src == dst {
				continue
			}
			const top = 14
			ref := bellmanFord(g, src, dst, top)
			for h := 1; h <= top; h++ {
				p, err := g.ShortestPath(src, dst, h)
				if ref[h] < 0 {
					if !errors.Is(err, ErrNoPath) {
						t.Fatalf("iter %d h=%d: got %v %v, want ErrNoPath", iter, h, p.Latency, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("iter %d h=%d: %v, want latency %v", iter, h, err, ref[h])
				}
				checkPath(t, g, p, src, dst, h)
				links := slices.Index(ref, ref[h]) // fewest links reaching that latency
				if p.Latency != ref[h] || p.Links() != links {
					t.Fatalf("iter %d h=%d: latency %v over %d links, Bellman-Ford %v over %d",
						iter, h, p.Latency, p.Links(), ref[h], links)
				}
			}
		}
	}
}
