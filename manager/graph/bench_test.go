package graph

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/keys"
)

const (
	benchNodes = 10_000
	benchLinks = 50_000
)

// benchPairs returns n random (from, to) pairs of distinct nodes from a
// fixed seed.
func benchPairs(n int) [][2]keys.PublicKey {
	r := rand.New(rand.NewPCG(42, 43))
	out := make([][2]keys.PublicKey, n)
	for i := range out {
		a, b := r.IntN(benchNodes), r.IntN(benchNodes-1)
		if b >= a {
			b++
		}
		out[i] = [2]keys.PublicKey{key(a), key(b)}
	}
	return out
}

// benchSearch runs ShortestPath over random pairs and reports the median
// and 99th percentile per search next to the mean ns/op, and the share of
// pairs with no path within the limit.
func benchSearch(b *testing.B, maxHops int) {
	g := randomGraph(b, benchNodes, benchLinks, 1)
	pairs := benchPairs(1024)
	var times []time.Duration
	noPath := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p := pairs[i%len(pairs)]
		t0 := time.Now()
		_, err := g.ShortestPath(p[0], p[1], maxHops)
		times = append(times, time.Since(t0))
		if err != nil {
			if !errors.Is(err, ErrNoPath) {
				b.Fatal(err)
			}
			noPath++
		}
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(times[len(times)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(noPath)/float64(len(times)), "nopath/op")
}

// BenchmarkShortestPath10k: 10,000 nodes, 50,000 links, default hop limit
// (the lowest-latency path almost always fits: the Dijkstra fast path).
func BenchmarkShortestPath10k(b *testing.B) { benchSearch(b, 0) }

// BenchmarkShortestPath10kHopLimited: the same graph with tight hop limits.
// The lowest-latency path has a median of 9 links on this graph, so with
// these limits the hop-limited search usually runs after the Dijkstra pass.
func BenchmarkShortestPath10kHopLimited(b *testing.B) {
	for _, h := range []int{4, 6, 8} {
		b.Run("max="+strconv.Itoa(h), func(b *testing.B) { benchSearch(b, h) })
	}
}

// graphBytes returns the heap bytes held by a random graph of n nodes and m
// links, and by its search scratch after one hop-limited search.
func graphBytes(tb testing.TB, n, m int) (graph, scratch uint64) {
	tb.Helper()
	var before, built, searched runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g := randomGraph(tb, n, m, 1)
	runtime.GC()
	runtime.ReadMemStats(&built)
	s := g.getScratch()
	for _, p := range benchPairs(8) {
		g.dijkstra(s, g.index[p[0]], g.index[p[1]], nil)
		g.constrained(s, g.index[p[0]], g.index[p[1]], DefaultMaxHops, nil)
	}
	runtime.GC()
	runtime.ReadMemStats(&searched)
	g.putScratch(s)
	runtime.KeepAlive(g)
	return built.HeapAlloc - before.HeapAlloc, searched.HeapAlloc - built.HeapAlloc
}

// BenchmarkGraphMemory10k reports the heap bytes of a 10,000-node,
// 50,000-link graph (B/graph) and of the scratch of one search at the
// default hop limit (B/scratch).
func BenchmarkGraphMemory10k(b *testing.B) {
	var g, s uint64
	for b.Loop() {
		g, s = graphBytes(b, benchNodes, benchLinks)
	}
	b.ReportMetric(float64(g), "B/graph")
	b.ReportMetric(float64(s), "B/scratch")
}

// TestGraphMemory10k guards against a regression in the graph's footprint.
func TestGraphMemory10k(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 10k-node graph")
	}
	g, s := graphBytes(t, benchNodes, benchLinks)
	t.Logf("10k nodes, 50k links: graph %d bytes, search scratch %d bytes", g, s)
	if g > 8<<20 {
		t.Errorf("graph uses %d bytes, want under 8 MiB", g)
	}
	if s > 8<<20 {
		t.Errorf("search scratch uses %d bytes, want under 8 MiB", s)
	}
}
