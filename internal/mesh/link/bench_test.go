package link

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// tcpLinkPair is a link over TCP loopback between two fresh identities.
func tcpLinkPair(b *testing.B) (client, server *Conn) {
	return linkPair(b, "tcp", testConfig(tstest.KeyPair(b)), testConfig(tstest.KeyPair(b)))
}

// sendN sends payload n times with send and reports the first error, or
// nil, on errc.
func sendN(n int, send func(uint8, []byte) error, payload []byte, errc chan<- error) {
	for range n {
		if err := send(MinUserType, payload); err != nil {
			errc <- err
			return
		}
	}
	errc <- nil
}

// BenchmarkThroughput measures one-way bulk transfer over TCP loopback.
// Every frame is sealed; the name keeps the "sealed" of link v1, which also
// had authenticated-only "clear" frames, so that results compare.
func BenchmarkThroughput(b *testing.B) {
	for _, mode := range []string{"sealed"} {
		for _, size := range []struct {
			name string
			n    int
		}{{"16KiB", 16 << 10}, {"64KiB", 64 << 10}} {
			b.Run(mode+"/"+size.name, func(b *testing.B) {
				c, s := tcpLinkPair(b)
				payload := make([]byte, size.n)
				send := c.Send
				done := make(chan error, 1)
				b.SetBytes(int64(size.n))
				b.ReportAllocs()
				b.ResetTimer()
				go sendN(b.N, send, payload, done)
				for range b.N {
					if _, _, err := s.Recv(); err != nil {
						b.Fatal(err)
					}
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// BenchmarkPlainTCP is the baseline: the same transfer over bare TCP.
func BenchmarkPlainTCP(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"16KiB", 16 << 10}, {"64KiB", 64 << 10}} {
		b.Run(size.name, func(b *testing.B) {
			a, c := rawConnPair(b, "tcp")
			defer a.Close()
			defer c.Close()
			buf := make([]byte, size.n)
			rbuf := make([]byte, size.n)
			b.SetBytes(int64(size.n))
			done := make(chan error, 1)
			go func() {
				for range b.N {
					if _, err := a.Write(buf); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			for range b.N {
				if _, err := readFull(c, rbuf); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

func readFull(r interface{ Read([]byte) (int, error) }, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func BenchmarkHandshake(b *testing.B) {
	ka, kb := tstest.KeyPair(b), tstest.KeyPair(b)
	ca, cb := testConfig(ka), testConfig(kb)
	b.ReportAllocs()
	for b.Loop() {
		x, y := rawConnPair(b, "pipe")
		cr, sr := handshakePair(b, x, y, ca, cb, kb.Public, nil)
		if cr.err != nil || sr.err != nil {
			b.Fatal(cr.err, sr.err)
		}
		cr.c.Close()
		sr.c.Close()
	}
}

// BenchmarkRelay measures A -> R -> B over two TCP links, R forwarding each
// frame with Send (open and re-seal every byte): the relay cost the crypto
// budget in docs/crypto.md is about. ("sealed" as in BenchmarkThroughput.)
func BenchmarkRelay(b *testing.B) {
	for _, mode := range []string{"sealed"} {
		b.Run(mode+"/16KiB", func(b *testing.B) {
			const n = 16 << 10
			a, r1 := tcpLinkPair(b)
			r2, dst := tcpLinkPair(b)
			send, fwd := a.Send, r2.Send
			payload := make([]byte, n)
			errc := make(chan error, 2)
			b.SetBytes(n)
			b.ResetTimer()
			go sendN(b.N, send, payload, errc)
			go func() {
				for range b.N {
					typ, p, err := r1.Recv()
					if err == nil {
						err = fwd(typ, p)
					}
					if err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			for range b.N {
				if _, _, err := dst.Recv(); err != nil {
					b.Fatal(err)
				}
			}
			for range 2 {
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
