package proto

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// TestHostileLengthsHeapFlat: control messages that declare a 4 GiB string
// are refused without allocating by the claim.
func TestHostileLengthsHeapFlat(t *testing.T) {
	tstest.CheckHostileStrRefused(t, "welcome", []byte{byte(TypeWelcome), 0x81, 0xa1, 'e'}, Decode)
}
