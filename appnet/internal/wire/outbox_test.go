package wire

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
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

// TestOutboxSendDatagram: with Run running, a sender with nobody writing
// writes its frame itself, before SendDatagram returns; concurrent
// senders' frames all arrive, in one write at a time; a sender's failed
// write ends Run with its error.
func TestOutboxSendDatagram(t *testing.T) {
	frame, _ := AppendDatagram(nil, keys.PublicKey{1}, 9, []byte("hi"))
	o := NewOutbox(1 << 20)
	if !o.SendDatagram(keys.PublicKey{1}, 9, []byte("hi")) { // before Run: queued for it
		t.Fatal("SendDatagram before Run refused")
	}
	var inWrite, overlaps atomic.Int32
	var mu sync.Mutex
	var wrote []byte
	release := make(chan struct{})
	gate := atomic.Bool{}
	write := func(b []byte) error {
		if inWrite.Add(1) != 1 {
			overlaps.Add(1)
		}
		if gate.Load() {
			<-release
		}
		mu.Lock()
		wrote = append(wrote, b...)
		mu.Unlock()
		inWrite.Add(-1)
		return nil
	}
	stop := make(chan struct{})
	ran := make(chan error, 1)
	go func() { ran <- o.Run(stop, write) }()
	tstest.WaitFor(t, "Run to write the frame queued before it", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(wrote) == len(frame)
	})

	// Inline: the write runs inside SendDatagram.
	gate.Store(true)
	returned := make(chan struct{})
	go func() {
		o.SendDatagram(keys.PublicKey{1}, 9, []byte("hi"))
		close(returned)
	}()
	tstest.WaitFor(t, "the sender's own write to start", func() bool { return inWrite.Load() == 1 })
	select {
	case <-returned:
		t.Fatal("SendDatagram returned while its write was still under way")
	default:
	}
	close(release)
	tstest.Await(t, returned, 10*time.Second, "SendDatagram to return after its write")
	gate.Store(false)

	// Many senders at once, and appends for Run.
	const senders, each = 8, 200
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			for range each {
				if i%2 == 0 {
					o.SendDatagram(keys.PublicKey{1}, 9, []byte("hi"))
				} else {
					o.AppendDatagram(keys.PublicKey{1}, 9, []byte("hi"), true)
				}
			}
		})
	}
	wg.Wait()
	want := (2 + senders*each) * len(frame)
	tstest.WaitFor(t, "every frame written", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(wrote) >= want
	})
	mu.Lock()
	if len(wrote) != want || !bytes.Equal(wrote, bytes.Repeat(frame, want/len(frame))) {
		t.Errorf("wrote %d bytes, want %d frames of %d", len(wrote), want/len(frame), len(frame))
	}
	mu.Unlock()
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d writes overlapped another", n)
	}
	close(stop)
	if err := <-ran; err != nil {
		t.Fatal(err)
	}

	// A sender's failed write ends Run with its error.
	o = NewOutbox(1 << 10)
	boom := errors.New("boom")
	ran = make(chan error, 1)
	go func() { ran <- o.Run(make(chan struct{}), func([]byte) error { return boom }) }()
	tstest.WaitFor(t, "Run to end with the sender's write error", func() bool {
		o.SendDatagram(keys.PublicKey{1}, 9, []byte("hi"))
		select {
		case err := <-ran:
			if !errors.Is(err, boom) {
				t.Fatalf("Run: %v, want boom", err)
			}
			return true
		default:
			return false
		}
	})
	if o.SendDatagram(keys.PublicKey{1}, 9, []byte("hi")) {
		t.Fatal("SendDatagram after Run ended was taken")
	}
}
