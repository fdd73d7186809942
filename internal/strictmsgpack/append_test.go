package strictmsgpack

import (
	"bytes"
	"testing"
)

func TestAppendCompactRoundTrip(t *testing.T) {
	type msg struct {
		N uint64 `msgpack:"n"`
		S string `msgpack:"s"`
	}
	in := msg{N: 7, S: "hi"}
	b, err := Append([]byte{0xAA}, &in)
	if err != nil {
		t.Fatal(err)
	}
	// {"n": 7, "s": "hi"}: 7 is a positive fixint, not a uint64.
	want := []byte{0xAA, 0x82, 0xa1, 'n', 0x07, 0xa1, 's', 0xa2, 'h', 'i'}
	if !bytes.Equal(b, want) {
		t.Fatalf("Append = % x, want % x", b, want)
	}
	var out msg
	if err := Unmarshal(b[1:], &out, Limits{}); err != nil || out != in {
		t.Fatalf("round trip = %+v, %v", out, err)
	}
	if _, err := Append(nil, make(chan int)); err == nil {
		t.Fatal("Append of a channel succeeded")
	}
}
