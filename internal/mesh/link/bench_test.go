package link

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/mesh/secure"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// tcpLinkPair is a link over TCP loopback between two fresh identities
// that agree on suite.
func tcpLinkPair(b *testing.B, suite secure.Suite) (client, server *Conn) {
	ccfg, scfg := testConfig(tstest.KeyPair(b)), testConfig(tstest.KeyPair(b))
	ccfg.Suites = []secure.Suite{suite, secure.ChaCha20Poly1305}
	if suite == secure.ChaCha20Poly1305 {
		ccfg.Suites = ccfg.Suites[:1]
	}
	scfg.Suites = ccfg.Suites
	c, s := linkPair(b, "tcp", ccfg, scfg)
	if c.Suite() != suite {
		b.Fatalf("link negotiated %v, want %v", c.Suite(), suite)
	}
	return c, s
}

// benchSuites are the AEADs links can negotiate, compared by the
// benchmarks below (docs/crypto.md).
var benchSuites = []secure.Suite{secure.ChaCha20Poly1305, secure.AES256GCM}

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

// BenchmarkThroughput measures one-way bulk transfer over TCP loopback,
// with each suite.
func BenchmarkThroughput(b *testing.B) {
	for _, suite := range benchSuites {
		for _, size := range []struct {
			name string
			n    int
		}{{"16KiB", 16 << 10}, {"64KiB", 64 << 10}} {
			b.Run(suite.String()+"/"+size.name, func(b *testing.B) {
				c, s := tcpLinkPair(b, suite)
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
// budget in docs/crypto.md is about, with each suite, for VPN-sized
// packets (1400 B) and stream chunks (16 KiB).
func BenchmarkRelay(b *testing.B) {
	for _, bc := range []struct {
		suite secure.Suite
		name  string
		n     int
	}{
		{secure.ChaCha20Poly1305, "1400B", 1400}, {secure.AES256GCM, "1400B", 1400},
		{secure.ChaCha20Poly1305, "16KiB", 16 << 10}, {secure.AES256GCM, "16KiB", 16 << 10},
	} {
		b.Run(bc.suite.String()+"/"+bc.name, func(b *testing.B) {
			n := bc.n
			a, r1 := tcpLinkPair(b, bc.suite)
			r2, dst := tcpLinkPair(b, bc.suite)
			send, fwd := a.Send, r2.Send
			payload := make([]byte, n)
			errc := make(chan error, 2)
			b.SetBytes(int64(n))
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
