package link

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkAEAD compares the two AEADs a link could use, sealing in place
// frames of the sizes links carry (a ping, a full-size packet, a session
// stream chunk, a maximal frame), with the frame header as additional data.
// docs/crypto.md records why links use ChaCha20-Poly1305.
func BenchmarkAEAD(b *testing.B) {
	key := make([]byte, 32)
	chacha, err := chacha20poly1305.New(key)
	if err != nil {
		b.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	for _, a := range []struct {
		name string
		aead cipher.AEAD
	}{{"chacha20poly1305", chacha}, {"aes256gcm", gcm}} {
		for _, n := range []int{64, 1400, 16 << 10, 64 << 10} {
			b.Run(fmt.Sprintf("%s/%d", a.name, n), func(b *testing.B) {
				buf := make([]byte, n, n+a.aead.Overhead())
				nonce := make([]byte, a.aead.NonceSize())
				hdr := []byte{0, 0, 0, 1}
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					nonce[4]++
					a.aead.Seal(buf[:0], nonce, buf, hdr)
				}
			})
		}
	}
}
