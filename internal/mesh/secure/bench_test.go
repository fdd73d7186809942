package secure

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

func benchSizes(b *testing.B, fn func(b *testing.B, size int)) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1400B", 1400}, {"16KiB", 16 << 10}} {
		b.Run(size.name, func(b *testing.B) { fn(b, size.n) })
	}
}

func BenchmarkSeal(b *testing.B) {
	benchSizes(b, func(b *testing.B, n int) {
		is, _ := pair(b)
		msg := make([]byte, n)
		buf := make([]byte, 0, n+Overhead)
		b.SetBytes(int64(n))
		b.ReportAllocs()
		for b.Loop() {
			buf = is.Send.Seal(buf[:0], msg, nil)
		}
	})
}

func BenchmarkOpen(b *testing.B) {
	benchSizes(b, func(b *testing.B, n int) {
		is, rs := pair(b)
		msg := make([]byte, n)
		ct := make([]byte, 0, n+Overhead)
		out := make([]byte, 0, n)
		ct = is.Send.Seal(ct[:0], msg, nil)
		b.SetBytes(int64(n))
		b.ReportAllocs()
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
	benchSizes(b, func(b *testing.B, n int) {
		is, _ := pair(b)
		msg := make([]byte, n)
		buf := make([]byte, 0, n+ExplicitOverhead)
		b.SetBytes(int64(n))
		b.ReportAllocs()
		for b.Loop() {
			buf = is.Send.SealExplicit(buf[:0], msg)
		}
	})
}

func BenchmarkOpenExplicit(b *testing.B) {
	benchSizes(b, func(b *testing.B, n int) {
		is, rs := pair(b)
		msg := make([]byte, n)
		pkt := make([]byte, 0, n+ExplicitOverhead)
		out := make([]byte, 0, n)
		pkt = is.Send.SealExplicit(pkt[:0], msg)
		b.SetBytes(int64(n))
		b.ReportAllocs()
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
