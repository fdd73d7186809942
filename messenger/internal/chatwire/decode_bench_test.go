package chatwire

import (
	"strings"
	"testing"
)

func BenchmarkDecodeMsg(b *testing.B) {
	frame, err := Append(nil, &Msg{ID: [16]byte{1}, From: [32]byte{2}, To: [32]byte{3}, Sent: 1 << 60, Text: strings.Repeat("hello ", 20)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(frame[4:]); err != nil {
			b.Fatal(err)
		}
	}
}
