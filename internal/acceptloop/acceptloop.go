// Package acceptloop is the accept loop every skywire listener needs: it
// survives transient accept errors (above all EMFILE/ENFILE when a burst of
// connections exhausts file descriptors) by backing off the way net/http
// does — 5 ms, doubling, at most 1 s — instead of returning and never
// accepting again.
package acceptloop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Backoff bounds: the first retry waits MinBackoff, each further failure
// in a row doubles it up to MaxBackoff.
const (
	MinBackoff = 5 * time.Millisecond
	MaxBackoff = time.Second
)

// Serve accepts connections on ln and calls serve with each, in the
// accepting goroutine (serve starts its own goroutine if it needs one),
// until ctx is done or ln is closed. Any other accept error is transient:
// failed (may be nil) is told the error and how long Serve waits before
// accepting again. Serve returns nil once ctx is done, or the error that
// closed ln. It does not close ln.
func Serve(ctx context.Context, ln net.Listener, serve func(net.Conn), failed func(err error, retryIn time.Duration)) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err == nil {
			backoff = 0
			serve(c)
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("accept: %w", err)
		}
		backoff = min(max(2*backoff, MinBackoff), MaxBackoff)
		if failed != nil {
			failed(err, backoff)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}
