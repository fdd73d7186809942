package session

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/skywire-mesh/skywire/internal/mesh/secure"
	"github.com/skywire-mesh/skywire/internal/mesh/session/sessiontest"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// chachaCipher is a test Cipher: ChaCha20-Poly1305 with an 8-byte explicit
// counter nonce in front of each packet (no replay window).
type chachaCipher struct {
	seal, open interface {
		Seal(dst, nonce, plaintext, ad []byte) []byte
		Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
	}
	counter uint64
}

// newChachaPair returns ciphers for the two ends of a session.
func newChachaPair(t testing.TB) (*chachaCipher, *chachaCipher) {
	var k1, k2 [32]byte
	rand.Read(k1[:])
	rand.Read(k2[:])
	a1, a2 := secure.ChaCha20Poly1305.AEAD(&k1), secure.ChaCha20Poly1305.AEAD(&k2)
	return &chachaCipher{seal: a1, open: a2}, &chachaCipher{seal: a2, open: a1}
}

var errShortPacket = errors.New("short packet")

func (c *chachaCipher) Seal(dst, plaintext []byte) []byte {
	c.counter++
	var nonce [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(nonce[4:], c.counter)
	dst = append(dst, nonce[4:]...)
	return c.seal.Seal(dst, nonce[:], plaintext, nil)
}

func (c *chachaCipher) Open(dst, packet []byte) ([]byte, error) {
	if len(packet) < 8+chacha20poly1305.Overhead {
		return nil, errShortPacket
	}
	var nonce [chacha20poly1305.NonceSize]byte
	copy(nonce[4:], packet[:8])
	return c.open.Open(dst, nonce[:], packet[8:], nil)
}

func (c *chachaCipher) Overhead() int { return 8 + chacha20poly1305.Overhead }

func TestTransferChacha(t *testing.T) {
	tstest.CheckLeaks(t)
	ca, cb := newChachaPair(t)
	lc := sessiontest.LinkConfig{Drop: 0.02, Reorder: 0.02, Seed: 11}
	p := newPair(t, testConfig(), testConfig(), lc, ca, cb)
	transfer(t, p.a, p.b, 4<<20, nil)
	// Tampered packets are dropped and counted.
	before := p.b.Stats().PacketsDropped
	p.b.HandlePacket(make([]byte, 64))
	if got := p.b.Stats().PacketsDropped; got != before+1 {
		t.Fatalf("PacketsDropped %d -> %d after a forged packet", before, got)
	}
}

func benchmarkThroughput(b *testing.B, ca, cb Cipher) {
	benchmarkPair(b, newPair(b, Config{}, Config{}, sessiontest.LinkConfig{}, ca, cb))
}

// writeChunks times b.N writes of 256 KiB to w, reporting bytes and
// allocations.
func writeChunks(b *testing.B, w io.Writer) {
	chunk := make([]byte, 256<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := w.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkPair(b *testing.B, p *pair) {
	ctx := testCtx(b)
	st, peer := p.streams(b, ctx, []byte{0})
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		_, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{peer}, buf)
		done <- err
	}()
	writeChunks(b, st)
	st.CloseWrite()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(p.a.Stats().Retransmits), "retransmits")
}

// BenchmarkStreamThroughput measures one stream over a perfect in-memory
// path with the null cipher.
func BenchmarkStreamThroughput(b *testing.B) {
	benchmarkThroughput(b, sessiontest.NullCipher{}, sessiontest.NullCipher{})
}

// BenchmarkStreamThroughputChacha20Poly1305 is the same with real AEAD.
func BenchmarkStreamThroughputChacha20Poly1305(b *testing.B) {
	ca, cb := newChachaPair(b)
	benchmarkThroughput(b, ca, cb)
}

func TestSmallMTU(t *testing.T) {
	tstest.CheckLeaks(t)
	ca, cb := newChachaPair(t)
	cfg := testConfig()
	cfg.MTU = minMTU
	lc := sessiontest.LinkConfig{Drop: 0.05, Reorder: 0.1, Duplicate: 0.02, MaxPacket: minMTU, Seed: 13}
	p := newPair(t, cfg, cfg, lc, ca, cb)
	transfer(t, p.a, p.b, 1<<20, nil)
	if err := p.a.SendDatagram(make([]byte, p.a.MaxDatagramSize())); err != nil {
		t.Fatal(err)
	}
	if n := p.ab.Oversize.Load() + p.ba.Oversize.Load(); n != 0 {
		t.Fatalf("%d packets exceeded the MTU", n)
	}
}

// BenchmarkStreamThroughputUDP runs a session over loopback UDP sockets
// (null cipher) for comparison with BenchmarkTCPLoopback.
func BenchmarkStreamThroughputUDP(b *testing.B) {
	benchmarkPair(b, newUDPPair(b, Config{}))
}

// BenchmarkTCPLoopback is the reference: plain TCP over loopback.
func BenchmarkTCPLoopback(b *testing.B) {
	addr, done := tstest.ServeTCPOnce(b, func(c net.Conn) error {
		_, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, make([]byte, 256<<10))
		return err
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	writeChunks(b, c)
	c.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
