package wire

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

func BenchmarkDecodeDial(b *testing.B) {
	tstest.BenchDecode(b, []Message{&Dial{Token: Token{1}, Key: Key{2}, Port: 80}}, Marshal, func(frame []byte) error {
		_, err := Decode(Type(frame[4]), frame[5:])
		return err
	})
}
