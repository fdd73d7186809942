package wire

import "testing"

func BenchmarkDecodeDial(b *testing.B) {
	frame, err := Marshal(&Dial{Token: Token{1}, Key: Key{2}, Port: 80})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(Type(frame[4]), frame[5:]); err != nil {
			b.Fatal(err)
		}
	}
}
