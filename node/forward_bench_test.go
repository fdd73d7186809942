package node

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/proto"
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
			frame := proto.AppendData(nil, 5, proto.KindSession, make([]byte, size.n))
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				proto.SetLabel(frame, 5)
				n.handleData(a, frame)
			}
			b.StopTimer()
			if got := n.Counters().Forwarded; got != uint64(b.N) {
				b.Fatalf("forwarded %d of %d", got, b.N)
			}
		})
	}
}
