// Package deadline is the read or write deadline of an in-memory
// connection (as in net.Pipe): a channel that is closed when the deadline
// passes, for the blocked Read or Write to select on. Session streams and
// the fake mesh's connections share it.
package deadline

import (
	"sync"
	"time"
)

// Deadline is one deadline. The zero value has none set.
type Deadline struct {
	mu     sync.Mutex
	timer  *time.Timer   // guarded by mu
	cancel chan struct{} // guarded by mu; closed when the deadline passes
}

// Set sets the deadline to t; the zero t clears it, and a t in the past
// closes Done at once.
func (d *Deadline) Set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait until it has closed cancel
	}
	d.timer = nil
	closed := isClosed(d.cancelLocked())
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

// Done returns a channel that is closed once the deadline passes. A later
// Set that moves the deadline out returns a new channel, so call Done for
// each wait.
func (d *Deadline) Done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancelLocked()
}

// cancelLocked returns the channel, made on first use.
func (d *Deadline) cancelLocked() chan struct{} {
	if d.cancel == nil {
		d.cancel = make(chan struct{})
	}
	return d.cancel
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
