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
