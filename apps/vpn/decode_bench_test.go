package vpn

import "testing"

func BenchmarkDecodeAssign(b *testing.B) {
	frame, err := appendMsg(nil, &assign{Version: protoVersion, Addr: "10.77.0.2/24", Gateway: "10.77.0.1", MTU: 1400, Keepalive: 5000})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeMsg(msgType(frame[2]), frame[3:]); err != nil {
			b.Fatal(err)
		}
	}
}
