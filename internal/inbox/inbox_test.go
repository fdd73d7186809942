package inbox

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
)

func TestPutGet(t *testing.T) {
	in := New[int](2)
	ctx := context.Background()
	for i := range 2 {
		if err := in.Put(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if in.TryPut(9) {
		t.Fatal("TryPut on a full inbox took the item")
	}
	for want := range 2 {
		if got, err := in.Get(ctx); err != nil || got != want {
			t.Fatalf("Get = %d, %v; want %d", got, err, want)
		}
	}
	if !in.TryPut(3) {
		t.Fatal("TryPut with room dropped the item")
	}
	if got := <-in.C(); got != 3 {
		t.Fatalf("C gave %d, want 3", got)
	}
}

func TestContextEndsWaits(t *testing.T) {
	in := New[int](0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := in.Put(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with no reader and a canceled ctx: %v", err)
	}
	if _, err := in.Get(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get of an empty inbox with a canceled ctx: %v", err)
	}
}

// TestCloseWakesWaiters: a Get on an empty inbox and a Put on a full one
// both return net.ErrClosed when it closes, and the clean-up runs once.
func TestCloseWakesWaiters(t *testing.T) {
	in := New[int](1)
	in.TryPut(0)
	empty := New[int](0)
	ctx := context.Background()
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() { errs <- in.Put(ctx, 1) })
	wg.Go(func() { _, err := empty.Get(ctx); errs <- err })
	runs := 0
	in.Close(func() { runs++ })
	in.Close(func() { runs++ })
	empty.Close(nil)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("waiter woken by Close: %v, want net.ErrClosed", err)
		}
	}
	if runs != 1 {
		t.Fatalf("clean-up ran %d times, want 1", runs)
	}
	if !in.Closed() || !empty.Closed() {
		t.Fatal("Closed is false after Close")
	}
	if _, err := in.Get(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}

func TestDrain(t *testing.T) {
	in := New[int](3)
	for i := range 3 {
		in.TryPut(i)
	}
	in.Close(nil)
	var got []int
	in.Drain(func(v int) { got = append(got, v) })
	if len(got) != 3 || got[0] != 0 || got[2] != 2 {
		t.Fatalf("Drain gave %v, want [0 1 2]", got)
	}
	in.Drain(func(int) { t.Fatal("second Drain found an item") })
}

// TestUnlistKeepsNewer: a closed port removes itself from its owner's
// table, but not a newer endpoint that took the same port since.
func TestUnlistKeepsNewer(t *testing.T) {
	var mu sync.Mutex
	old, newer := New[int](0), New[int](0)
	m := map[uint16]*Inbox[int]{7: old}
	Unlist(&mu, m, 7, old)
	if _, ok := m[7]; ok {
		t.Fatal("Unlist left the closed endpoint in the table")
	}
	m[7] = newer
	Unlist(&mu, m, 7, old)
	if m[7] != newer {
		t.Fatal("Unlist of an old endpoint removed the newer one")
	}
}
