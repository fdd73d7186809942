package secure

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// benchSizes runs fn for 1400-byte and 16 KiB messages, each on a fresh
// session pair with msg zeroed and the bytes and allocations reported.
func benchSizes(b *testing.B, fn func(b *testing.B, is, rs *Session, msg []byte)) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1400B", 1400}, {"16KiB", 16 << 10}} {
		b.Run(size.name, func(b *testing.B) {
			is, rs := pair(b)
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			fn(b, is, rs, make([]byte, size.n))
		})
	}
}

func BenchmarkSeal(b *testing.B) {
	benchSizes(b, func(b *testing.B, is, _ *Session, msg []byte) {
		buf := make([]byte, 0, len(msg)+Overhead)
		for b.Loop() {
			buf = is.Send.Seal(buf[:0], msg, nil)
		}
	})
}

func BenchmarkOpen(b *testing.B) {
	benchSizes(b, func(b *testing.B, is, rs *Session, msg []byte) {
		ct := is.Send.Seal(make([]byte, 0, len(msg)+Overhead), msg, nil)
		out := make([]byte, 0, len(msg))
		for b.Loop() {
			rs.Recv.next = 0 // open the same message again
			var err error
			if out, err = rs.Recv.Open(out[:0], ct, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSealExplicit(b *testing.B) {
	benchSizes(b, func(b *testing.B, is, _ *Session, msg []byte) {
		buf := make([]byte, 0, len(msg)+ExplicitOverhead)
		for b.Loop() {
			buf = is.Send.SealExplicit(buf[:0], msg)
		}
	})
}

func BenchmarkOpenExplicit(b *testing.B) {
	benchSizes(b, func(b *testing.B, is, rs *Session, msg []byte) {
		pkt := is.Send.SealExplicit(make([]byte, 0, len(msg)+ExplicitOverhead), msg)
		out := make([]byte, 0, len(msg))
		for b.Loop() {
			rs.Recv.mu.Lock()
			rs.Recv.window = replayWindow{} // open the same packet again
			rs.Recv.mu.Unlock()
			var err error
			if out, err = rs.Recv.OpenExplicit(out[:0], pkt); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkHandshake(b *testing.B) {
	a, r := tstest.KeyPair(b), tstest.KeyPair(b)
	ic, rc := Config{Local: a, Prologue: "bench"}, Config{Local: r, Prologue: "bench"}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := handshake(b, ic, rc, r.Public); err != nil {
			b.Fatal(err)
		}
	}
}
