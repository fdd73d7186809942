package control

import (
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func BenchmarkDecodeRequest(b *testing.B) {
	args, err := msgpack.Marshal(&idArgs{ID: 7})
	if err != nil {
		b.Fatal(err)
	}
	body, err := msgpack.Marshal(&request{V: ProtocolVersion, ID: 9, Method: MethodPing, Token: "0123456789abcdef", Args: args})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeRequest(body); err != nil {
			b.Fatal(err)
		}
	}
}
