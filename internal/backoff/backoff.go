// Package backoff is the pause an accept loop takes after a failure that
// may pass (out of file descriptors, a node refusing for a moment), so
// that it neither spins nor gives up. The app server, the control server
// and the SOCKS roles share it.
package backoff

import (
	"context"
	"time"
)

// The pause starts at Min and doubles up to Max, as net/http's Server
// does after a temporary accept error.
const (
	Min = 5 * time.Millisecond
	Max = time.Second
)

// Accept is the pause of one accept loop. The zero value is ready; call
// Reset after each success.
type Accept struct{ d time.Duration }

// Next returns the pause to take after another failure.
func (b *Accept) Next() time.Duration {
	b.d = min(max(2*b.d, Min), Max)
	return b.d
}

// Reset starts again from Min.
func (b *Accept) Reset() { b.d = 0 }

// Sleep waits for d and reports true, or reports false as soon as ctx is
// done.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
