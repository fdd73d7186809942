package wire

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// TestHostileLengthsHeapFlat: hello frames that declare a 4 GiB name are
// refused without allocating by the claim.
func TestHostileLengthsHeapFlat(t *testing.T) {
	tstest.CheckHostileStrRefused(t, "hello", []byte{0x81, 0xa4, 'n', 'a', 'm', 'e'}, func(b []byte) (Message, error) { return Decode(TypeHello, b) })
}
