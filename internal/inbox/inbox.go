// Package inbox is the queue in front of one port of an in-process
// endpoint: the streams waiting for Accept on a listener, the datagrams
// waiting for ReadFrom on a packet port. Senders hand items in (waiting
// for room, or dropping when full), the reader takes them out, and Close
// wakes both and runs the owner's clean-up once. The node, the fake mesh
// of the app API (appnet/fakemesh) and the in-memory transport of
// meshtest share it.
package inbox

import (
	"context"
	"net"
	"sync"
)

// Inbox is a bounded queue of T with a close signal. Make it with New.
type Inbox[T any] struct {
	ch   chan T
	done chan struct{}
	once sync.Once
}

// New returns an open inbox that holds up to size items (0: a sender
// waits for the reader).
func New[T any](size int) *Inbox[T] {
	return &Inbox[T]{ch: make(chan T, size), done: make(chan struct{})}
}

// Put queues v, waiting for room. It returns net.ErrClosed once the inbox
// is closed (v was not queued) and ctx.Err() when ctx is done first.
func (in *Inbox[T]) Put(ctx context.Context, v T) error {
	select {
	case in.ch <- v:
		return nil
	case <-in.done:
		return net.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TryPut queues v if there is room at once; false (v dropped) when the
// inbox is full. A closed inbox may still take v: the reader is gone, so
// Drain or the garbage collector has it.
func (in *Inbox[T]) TryPut(v T) bool {
	select {
	case in.ch <- v:
		return true
	default:
		return false
	}
}

// Get returns the next item, waiting for one. It returns net.ErrClosed
// once the inbox is closed and ctx.Err() when ctx is done first.
func (in *Inbox[T]) Get(ctx context.Context) (T, error) {
	select {
	case v := <-in.ch:
		return v, nil
	case <-in.done:
		var zero T
		return zero, net.ErrClosed
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// C is the queue itself, for a reader that waits on more than Get does
// (a read deadline). Select on Done as well.
func (in *Inbox[T]) C() <-chan T { return in.ch }

// Done is closed by Close.
func (in *Inbox[T]) Done() <-chan struct{} { return in.done }

// Closed reports whether Close was called.
func (in *Inbox[T]) Closed() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}

// Close closes the inbox; the first call then runs then (if not nil), for
// the owner to take the inbox's port out of its table. Items still queued
// stay until Drain.
func (in *Inbox[T]) Close(then func()) {
	in.once.Do(func() {
		close(in.done)
		if then != nil {
			then()
		}
	})
}

// Drain takes every queued item out and gives it to f (to close a queued
// connection), without waiting.
func (in *Inbox[T]) Drain(f func(T)) {
	for {
		select {
		case v := <-in.ch:
			f(v)
		default:
			return
		}
	}
}

// Unlist deletes m[k] under mu if it is still v: how a closed port leaves
// its owner's table without removing a newer one on the same port. m must
// not be replaced while ports are open.
func Unlist[K, V comparable](mu sync.Locker, m map[K]V, k K, v V) {
	mu.Lock()
	if m[k] == v {
		delete(m, k)
	}
	mu.Unlock()
}
