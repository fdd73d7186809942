package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/skywire-mesh/skywire/keys"
)

// TestOutbox: frames queued before the writer runs go out in one write,
// a full outbox drops (or, with wait, blocks until the writer drains it),
// and once Run has returned every append is refused.
func TestOutbox(t *testing.T) {
	frame, _ := AppendDatagram(nil, keys.PublicKey{1}, 9, []byte("hi"))
	o := NewOutbox(2 * len(frame))
	for i := range 2 {
		if !o.AppendDatagram(keys.PublicKey{1}, 9, []byte("hi"), false) {
			t.Fatalf("datagram %d refused with room left", i)
		}
	}
	if o.AppendDatagram(keys.PublicKey{1}, 9, []byte("hi"), false) {
		t.Fatal("full outbox took a datagram without waiting")
	}
	writes := make(chan []byte, 4)
	stop := make(chan struct{})
	ran := make(chan error, 1)
	go func() {
		ran <- o.Run(stop, func(b []byte) error { writes <- bytes.Clone(b); return nil })
	}()
	if got := <-writes; !bytes.Equal(got, append(append([]byte{}, frame...), frame...)) {
		t.Fatalf("first write %x, want both queued frames in one", got)
	}
	// With wait, an append into a full outbox returns once Run drained it.
	for range 3 {
		if !o.AppendDatagram(keys.PublicKey{1}, 9, []byte("hi"), true) {
			t.Fatal("waiting append refused while Run runs")
		}
	}
	close(stop)
	if err := <-ran; err != nil {
		t.Fatalf("Run after stop: %v", err)
	}
	if o.AppendDatagram(keys.PublicKey{1}, 9, []byte("hi"), true) {
		t.Fatal("append after Run returned was taken")
	}

	// A failed write ends Run with its error.
	o = NewOutbox(1 << 10)
	o.AppendDatagram(keys.PublicKey{1}, 9, []byte("hi"), false)
	boom := errors.New("boom")
	if err := o.Run(make(chan struct{}), func([]byte) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Run with a failing write: %v, want boom", err)
	}
}
