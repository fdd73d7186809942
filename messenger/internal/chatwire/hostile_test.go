package chatwire

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// TestHostileLengthsHeapFlat: 17-byte frames that declare a 4 GiB text
// are refused without allocating by the claim (this took the messenger
// from 13 MB to 1.3 GB RSS with 64 streams).
func TestHostileLengthsHeapFlat(t *testing.T) {
	tstest.CheckHostileStrRefused(t, "msg", []byte{byte(TypeMsg), 0x81, 0xa1, 'x'}, Decode)
}
