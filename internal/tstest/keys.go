package tstest

import (
	"testing"

	"github.com/skywire-mesh/skywire/keys"
)

// KeyPair returns a new random key pair, failing the test if there is
// none to be had.
func KeyPair(tb testing.TB) keys.KeyPair {
	tb.Helper()
	kp, err := keys.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	return kp
}

// Counting is a byte source for test vectors: start, start+1, … (wrapping
// at 256), the same on every run.
type Counting byte

// Read fills p with the next bytes of the count.
func (c *Counting) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(*c)
		*c++
	}
	return len(p), nil
}

// SeededKeyPair returns the key pair generated from Counting(start): the
// same on every run, for test vectors and fuzz seeds.
func SeededKeyPair(tb testing.TB, start byte) keys.KeyPair {
	tb.Helper()
	c := Counting(start)
	kp, err := keys.GenerateFrom(&c)
	if err != nil {
		tb.Fatal(err)
	}
	return kp
}
