package node

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/skywire-mesh/skywire/internal/link"
	"github.com/skywire-mesh/skywire/internal/proto"
)

// BenchmarkForward measures the relay's per-frame work: rule lookup, label
// rewrite and the send on the next link (authenticated, not re-encrypted,
// for session packets), into a link whose far end discards.
func BenchmarkForward(b *testing.B) {
	for _, size := range []int{1400, 16 << 10} {
		b.Run(byteSize(size), func(b *testing.B) {
			n, a := newTestNode(b)
			out := n.peers[mustOut(b, n, a)]
			c1, c2 := net.Pipe()
			kp, peerKP := n.cfg.Identity, testKey(b)
			ctx := context.Background()
			srv := make(chan *link.Conn, 1)
			go func() {
				lc, err := link.Server(ctx, c2, link.Config{Local: peerKP}, nil)
				if err != nil {
					srv <- nil
					return
				}
				srv <- lc
			}()
			lc, err := link.Client(ctx, c1, link.Config{Local: kp}, peerKP.Public)
			if err != nil {
				b.Fatal(err)
			}
			defer lc.Close()
			far := <-srv
			if far == nil {
				b.Fatal("server handshake failed")
			}
			defer far.Close()
			go func() {
				for {
					if _, _, err := far.Recv(); err != nil {
						return
					}
				}
			}()
			out.mu.Lock()
			out.links = append(out.links, lc)
			out.mu.Unlock()
			frame := proto.AppendData(nil, 5, proto.KindSession, make([]byte, size))
			b.SetBytes(int64(size))
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

func mustOut(b *testing.B, n *Node, a *peer) (k [32]byte) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	r := a.rules[5]
	if r == nil || r.out == nil {
		b.Fatal("no relay rule")
	}
	return r.out.key
}

func byteSize(n int) string {
	if n%1024 == 0 {
		return string(rune('0'+n/1024/10)) + string(rune('0'+n/1024%10)) + "KiB"
	}
	return "1400B"
}

var _ = io.Discard
