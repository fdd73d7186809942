package appsignal

import "testing"

// BenchmarkDecodeMessage measures the control path's decode of every
// message kind (one op = one pass over allKinds).
func BenchmarkDecodeMessage(b *testing.B) {
	bodies := make([][]byte, len(allKinds))
	for i, m := range allKinds {
		body, err := EncodeMessage(m)
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = body
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, body := range bodies {
			if _, err := DecodeMessage(body); err != nil {
				b.Fatal(err)
			}
		}
	}
}
