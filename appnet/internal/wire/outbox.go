package wire

import (
	"net"
	"sync"

	"github.com/skywire-mesh/skywire/keys"
)

// Outbox gathers datagram frames for one writer goroutine (Run), which
// writes all that has gathered in one write: a burst costs one system call
// and one wakeup of the reader instead of one per datagram. The app's
// client and the node's app server both send datagrams through one.
type Outbox struct {
	max     int
	mu      sync.Mutex
	room    sync.Cond     // on mu: buf has room, or stopped
	buf     []byte        // whole frames; guarded by mu
	stopped bool          // guarded by mu: Run has returned
	wake    chan struct{} // cap 1: buf has frames
}

// NewOutbox returns an outbox that holds about max bytes of frames.
func NewOutbox(max int) *Outbox {
	o := &Outbox{max: max, wake: make(chan struct{}, 1)}
	o.room.L = &o.mu
	return o
}

// AppendDatagram queues the frame of a datagram from or to k:port (the
// payload must be at most MaxDatagram). While max bytes wait already it
// waits for room if wait is set, else it drops the datagram and returns
// false; after Run has returned it returns false.
func (o *Outbox) AppendDatagram(k keys.PublicKey, port uint16, payload []byte, wait bool) bool {
	o.mu.Lock()
	for wait && len(o.buf) >= o.max && !o.stopped {
		o.room.Wait()
	}
	if o.stopped || len(o.buf) >= o.max {
		o.mu.Unlock()
		return false
	}
	o.buf, _ = AppendDatagram(o.buf, k, port, payload)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return true
}

// Run writes the queued frames with write, all that has gathered in one
// call, until stop is closed (nil) or a write fails (its error). Queued
// frames are then dropped and AppendDatagram refuses.
func (o *Outbox) Run(stop <-chan struct{}, write func([]byte) error) error {
	defer func() {
		o.mu.Lock()
		o.stopped = true
		o.buf = nil
		o.mu.Unlock()
		o.room.Broadcast()
	}()
	var spare []byte
	for {
		select {
		case <-o.wake:
		case <-stop:
			return nil
		}
		o.mu.Lock()
		batch := o.buf
		o.buf = spare[:0]
		o.mu.Unlock()
		o.room.Broadcast()
		if len(batch) == 0 {
			spare = batch
			continue
		}
		if err := write(batch); err != nil {
			return err
		}
		if cap(batch) > 2*o.max {
			batch = nil // a burst of large datagrams: do not keep its buffer
		}
		spare = batch
	}
}

// SendBuffer is the socket send buffer each end of an app's control
// connection asks for (SetSendBuffer). The kernel's default (about
// 208 KiB) holds three of the VPN's 64 KiB datagrams: a writer one burst
// ahead of its reader then waits in the poller and is woken again for
// each few datagrams. 2 MiB let bursts through (about 5% more through
// the VPN in docs/PERFORMANCE.md). Memory is taken only as data waits;
// the kernel caps the size at net.core.wmem_max.
const SendBuffer = 2 << 20

// SetSendBuffer asks for SendBuffer on c if it is a unix connection (the
// control connection of an app with a port: it carries datagrams). A
// refusal is not an error: the connection works with the default.
func SetSendBuffer(c net.Conn) {
	if uc, ok := c.(*net.UnixConn); ok {
		_ = uc.SetWriteBuffer(SendBuffer)
	}
}
