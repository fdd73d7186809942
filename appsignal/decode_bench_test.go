package appsignal

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// BenchmarkDecodeMessage measures the control path's decode of every
// message kind (one op = one pass over allKinds).
func BenchmarkDecodeMessage(b *testing.B) {
	tstest.BenchDecode(b, allKinds, EncodeMessage, func(body []byte) error {
		_, err := DecodeMessage(body)
		return err
	})
}
