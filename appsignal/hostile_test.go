package appsignal

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// TestHostileLengthsHeapFlat: hello bodies (decoded before the token is
// checked) that declare a 4 GiB name are refused without allocating by
// the claim.
func TestHostileLengthsHeapFlat(t *testing.T) {
	tstest.CheckHostileStrRefused(t, "hello", []byte{0x93, byte(KindHello), 0x01, 0x95, 0x01, 0x01}, DecodeMessage)
}
