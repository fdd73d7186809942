package proto

import "testing"

// BenchmarkDecode measures Decode of every sample message (one op = one
// pass over sampleMessages).
func BenchmarkDecode(b *testing.B) {
	var bodies [][]byte
	for _, m := range sampleMessages() {
		body, err := Encode(nil, m)
		if err != nil {
			b.Fatal(err)
		}
		bodies = append(bodies, body)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, body := range bodies {
			if _, err := Decode(body); err != nil {
				b.Fatal(err)
			}
		}
	}
}
