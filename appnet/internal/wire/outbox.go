package wire

import (
	"net"
	"sync"

	"github.com/skywire-mesh/skywire/keys"
)

// Outbox gathers datagram frames for one writer goroutine (Run), which
// writes all that has gathered in one write: a burst costs one system call
// and one wakeup of the reader instead of one per datagram. The app's
// client and the node's app server both send datagrams through one; the
// client's senders may write themselves (SendDatagram).
//
// One write is under way at a time: whoever holds the writing token
// (Run's goroutine or a SendDatagram caller) writes until nothing is
// queued, so frames go out in the order they were queued.
type Outbox struct {
	max     int
	mu      sync.Mutex
	room    sync.Cond          // on mu: buf has room, or stopped
	buf     []byte             // whole frames; guarded by mu
	spare   []byte             // guarded by mu: the last written batch's buffer
	stopped bool               // guarded by mu: Run has returned
	writing bool               // guarded by mu: the writing token is taken
	write   func([]byte) error // guarded by mu: Run's, while it runs
	werr    error              // guarded by mu: a failed write, for Run to return
	wake    chan struct{}      // cap 1: buf has frames, or werr is set
}

// NewOutbox returns an outbox that holds about max bytes of frames.
func NewOutbox(max int) *Outbox {
	o := &Outbox{max: max, wake: make(chan struct{}, 1)}
	o.room.L = &o.mu
	return o
}

// AppendDatagram queues the frame of a datagram from or to k:port (the
// payload must be at most MaxDatagram) for Run. While max bytes wait
// already it waits for room if wait is set, else it drops the datagram
// and returns false; after Run has returned it returns false.
func (o *Outbox) AppendDatagram(k keys.PublicKey, port uint16, payload []byte, wait bool) bool {
	if !o.appendLocked(k, port, payload, wait) {
		return false
	}
	o.mu.Unlock()
	o.kick()
	return true
}

// SendDatagram is AppendDatagram with wait, except that when no write is
// under way and Run is running, the caller takes the writing token and
// writes what is queued itself (with Run's write function) instead of
// waking Run's goroutine: a single sender then costs no goroutine
// handoff per datagram. It blocks while the write does (the connection's
// backpressure). A failed write ends Run with its error; SendDatagram
// still returns true (the datagram was queued).
func (o *Outbox) SendDatagram(k keys.PublicKey, port uint16, payload []byte) bool {
	if !o.appendLocked(k, port, payload, true) {
		return false
	}
	if o.writing || o.write == nil || o.werr != nil {
		o.mu.Unlock()
		o.kick()
		return true
	}
	o.writing = true
	err := o.drainLocked(o.write)
	o.writing = false
	if err != nil && o.werr == nil {
		o.werr = err
		o.mu.Unlock()
		o.kick() // Run returns werr
		return true
	}
	o.mu.Unlock()
	return true
}

// appendLocked queues a frame as AppendDatagram says and returns true with
// o.mu held, or false (without it).
func (o *Outbox) appendLocked(k keys.PublicKey, port uint16, payload []byte, wait bool) bool {
	o.mu.Lock()
	for wait && len(o.buf) >= o.max && !o.stopped {
		o.room.Wait()
	}
	if o.stopped || len(o.buf) >= o.max {
		o.mu.Unlock()
		return false
	}
	o.buf, _ = AppendDatagram(o.buf, k, port, payload)
	return true
}

func (o *Outbox) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// drainLocked writes batches until nothing is queued or a write fails.
// The caller holds o.mu and the writing token; o.mu is released around
// each write.
func (o *Outbox) drainLocked(write func([]byte) error) error {
	for len(o.buf) > 0 && !o.stopped {
		batch := o.buf
		o.buf = o.spare[:0]
		o.spare = nil
		o.mu.Unlock()
		o.room.Broadcast()
		err := write(batch)
		o.mu.Lock()
		if cap(batch) <= 2*o.max { // else a burst of large datagrams: do not keep its buffer
			o.spare = batch
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Run writes the queued frames with write, all that has gathered in one
// call, until stop is closed (nil) or a write fails, its own or a
// SendDatagram caller's (that error). Queued frames are then dropped and
// appends are refused.
func (o *Outbox) Run(stop <-chan struct{}, write func([]byte) error) error {
	o.mu.Lock()
	o.write = write
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.stopped = true
		o.write = nil
		o.buf = nil
		o.mu.Unlock()
		o.room.Broadcast()
	}()
	for {
		select {
		case <-o.wake:
		case <-stop:
			return nil
		}
		o.mu.Lock()
		if err := o.werr; err != nil {
			o.mu.Unlock()
			return err
		}
		if o.writing { // a SendDatagram caller writes all that is queued
			o.mu.Unlock()
			continue
		}
		o.writing = true
		err := o.drainLocked(write)
		o.writing = false
		o.mu.Unlock()
		if err != nil {
			return err
		}
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
