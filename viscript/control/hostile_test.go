package control

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// TestHostileLengthsHeapFlat: request bodies (decoded before the token
// check) and response bodies that declare a 4 GiB string are refused
// without allocating by the claim (33 such 16-byte frames took viscript
// from 12 MB to 1.1 GB RSS).
func TestHostileLengthsHeapFlat(t *testing.T) {
	tstest.CheckHostileStrRefused(t, "request", []byte("\x81\xa6method"), decodeRequest)
	tstest.CheckHostileStrRefused(t, "response", []byte("\x81\xa5error"), decodeResponse)
}
