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

// pause is the backoff of one loop. The zero value is ready; reset it
// after each success.
type pause struct{ d time.Duration }

// next returns the pause to take after another failure.
func (p *pause) next() time.Duration {
	p.d = min(max(2*p.d, MinBackoff), MaxBackoff)
	return p.d
}

func (p *pause) reset() { p.d = 0 }

// sleep waits for d and reports true, or reports false as soon as ctx is
// done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Serve accepts connections on ln and calls serve with each, in the
// accepting goroutine (serve starts its own goroutine if it needs one),
// until ctx is done or ln is closed. Any other accept error is transient:
// failed (may be nil) is told the error and how long Serve waits before
// accepting again. Serve returns nil once ctx is done, or the error that
// closed ln. It does not close ln.
func Serve(ctx context.Context, ln net.Listener, serve func(net.Conn), failed func(err error, retryIn time.Duration)) error {
	err := Loop[net.Conn]{
		Accept: ln.Accept,
		Serve:  func(c net.Conn) bool { serve(c); return true },
		Failed: failed,
	}.Run(ctx)
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	return nil
}

// Loop is an accept loop over anything that hands out connections: a
// net.Listener, or an app's stream listener.
type Loop[T any] struct {
	// Accept waits for the next connection.
	Accept func() (T, error)
	// Serve takes each connection, in the accepting goroutine; false
	// stops the loop (the server is closing).
	Serve func(T) bool
	// Fatal reports whether an accept error ends the loop; nil means
	// only net.ErrClosed does. Every other error is retried after a pause.
	Fatal func(error) bool
	// Failed, if not nil, is told each retried error and the pause
	// before the next Accept.
	Failed func(err error, retryIn time.Duration)
}

// Run accepts until ctx is done or Serve says stop (nil), or until an
// accept error is fatal (that error, as it is).
func (l Loop[T]) Run(ctx context.Context) error {
	fatal := l.Fatal
	if fatal == nil {
		fatal = func(err error) bool { return errors.Is(err, net.ErrClosed) }
	}
	var wait pause
	for {
		c, err := l.Accept()
		if err == nil {
			wait.reset()
			if !l.Serve(c) {
				return nil
			}
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if fatal(err) {
			return err
		}
		d := wait.next()
		if l.Failed != nil {
			l.Failed(err, d)
		}
		if !sleep(ctx, d) {
			return nil
		}
	}
}
