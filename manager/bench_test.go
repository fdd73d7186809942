package manager

import (
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

// BenchmarkRegistry10k reports the heap the manager's registry and graph
// take for 10,000 registered nodes with 5 reported links each (25,000
// links, each reported by both ends), and the time of one route
// computation on it.
func BenchmarkRegistry10k(b *testing.B) {
	const nodes, degree = 10000, 5
	cfg := DefaultConfig()
	kp, _ := keys.Generate()
	cfg.Identity = kp
	cfg.Listener = tstest.NewPipeListener()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	m, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	ks := make([]keys.PublicKey, nodes)
	for i := range ks {
		for j := 0; j < len(ks[i]); j += 8 {
			binary.LittleEndian.PutUint64(ks[i][j:], r.Uint64())
		}
	}
	links := make([][]proto.LinkState, nodes)
	for i := range ks {
		for d := 1; d <= degree/2+1 && len(links[i]) < degree; d++ {
			j := (i + d*d*7 + r.IntN(50)) % nodes
			if j == i {
				continue
			}
			rtt := time.Duration(1+r.IntN(50)) * time.Millisecond
			links[i] = append(links[i], proto.LinkState{Peer: proto.Key(ks[j]), RTT: rtt})
			links[j] = append(links[j], proto.LinkState{Peer: proto.Key(ks[i]), RTT: rtt})
		}
	}
	m.mu.Lock()
	for i, k := range ks {
		ns := &nodeState{key: k, addrs: []string{"10.0.0.1:7901"}, links: map[keys.PublicKey]time.Duration{}, since: time.Now()}
		m.nodes[k] = ns
		m.g.AddNode(k)
		m.applyLinksLocked(ns, links[i])
	}
	m.mu.Unlock()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		src, dst := ks[r.IntN(nodes)], ks[r.IntN(nodes)]
		if src == dst {
			continue
		}
		m.shortest(src, dst, 8) //nolint:errcheck // some pairs have no path within 8 hops
	}
	b.StopTimer()
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-heap")
	b.ReportMetric(float64(m.g.Links()), "links")
	runtime.KeepAlive(m)
}
