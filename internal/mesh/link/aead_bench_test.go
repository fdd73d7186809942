package link

import (
	"fmt"
	"testing"
)

// BenchmarkAEAD compares the two AEADs a link could use, sealing in place
// frames of the sizes links carry (a ping, a full-size packet, a session
// stream chunk, a maximal frame), with the frame header as additional data.
// docs/crypto.md records why links use ChaCha20-Poly1305.
func BenchmarkAEAD(b *testing.B) {
	var key [32]byte
	for _, suite := range benchSuites {
		aead := suite.AEAD(&key)
		for _, n := range []int{64, 1400, 16 << 10, 64 << 10} {
			b.Run(fmt.Sprintf("%s/%d", suite, n), func(b *testing.B) {
				buf := make([]byte, n, n+aead.Overhead())
				nonce := make([]byte, aead.NonceSize())
				hdr := []byte{0, 0, 0, 1}
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					nonce[4]++
					aead.Seal(buf[:0], nonce, buf, hdr)
				}
			})
		}
	}
}
