package vpn

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// hostileStr seeds this package's fuzz test too.
var hostileStr = tstest.HostileStr

// TestHostileLengthsHeapFlat: refuse frames that declare a 4 GiB message
// are refused without allocating by the claim.
func TestHostileLengthsHeapFlat(t *testing.T) {
	tstest.CheckHostileStrRefused(t, "refuse", []byte{0x81, 0xa3, 'm', 's', 'g'}, func(b []byte) (any, error) { return decodeMsg(typeRefuse, b) })
}
