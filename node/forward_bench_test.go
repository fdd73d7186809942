package node

import (
	"runtime"
	"testing"

	"github.com/skywire-mesh/skywire/internal/mesh/proto"
)

// BenchmarkForward measures the relay's per-frame work: rule lookup, label
// rewrite and the send on the next link (authenticated, not re-encrypted,
// for session packets), into a link over net.Pipe whose far end discards.
func BenchmarkForward(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1400B", 1400}, {"16KiB", 16 << 10}} {
		b.Run(size.name, func(b *testing.B) {
			n, a, _ := newTestNode(b)
			body := proto.AppendData([]byte{proto.LinkData}, 5, proto.KindSession, make([]byte, size.n))
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				proto.SetLabel(body[1:], 5)
				n.handleData(a, body)
			}
			b.StopTimer()
			if got := n.Counters().Forwarded; got != uint64(b.N) {
				b.Fatalf("forwarded %d of %d", got, b.N)
			}
		})
	}
}

// BenchmarkRules10k reports the heap 10,000 relayed routes (20,000 rules)
// take on a node, and the time to install one route's rules.
func BenchmarkRules10k(b *testing.B) {
	n, a, c := newTestNode(b)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	install := func(route uint64) {
		l := uint32(route)*2 + 100
		code, msg := n.installRules(&proto.Install{Route: route, Rules: []proto.Rule{
			{InPeer: proto.Key(a.key), InLabel: l, OutPeer: proto.Key(c.key), OutLabel: l},
			{InPeer: proto.Key(c.key), InLabel: l + 1, OutPeer: proto.Key(a.key), OutLabel: l + 1},
		}})
		if code != proto.CodeOK {
			b.Fatal(code, msg)
		}
	}
	for r := uint64(10); r < 10010; r++ {
		install(r)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		install(uint64(20000 + i%10000))
	}
	b.StopTimer()
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-heap/10k-routes")
}
