package vpn

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

func BenchmarkDecodeAssign(b *testing.B) {
	msg := &assign{Version: protoVersion, Addr: "10.77.0.2/24", Gateway: "10.77.0.1", MTU: 1400, Keepalive: 5000}
	tstest.BenchDecode(b, []any{msg}, func(m any) ([]byte, error) { return appendMsg(nil, m) }, func(frame []byte) error {
		_, err := decodeMsg(msgType(frame[2]), frame[3:])
		return err
	})
}
