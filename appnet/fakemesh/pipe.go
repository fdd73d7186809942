package fakemesh

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/skywire-mesh/skywire/internal/deadline"
)

// pipeCapacity is how many bytes a stream direction buffers before Write
// blocks (flow control, like a socket buffer).
const pipeCapacity = 256 << 10

// errBrokenPipe is what Write returns once the reading end has closed.
var errBrokenPipe = &net.OpError{Op: "write", Net: "skywire", Err: syscall.EPIPE}

// pipe is one direction of a stream: a bounded byte buffer.
type pipe struct {
	mu      sync.Mutex
	buf     []byte        // guarded by mu; unread bytes are buf[r:]
	r       int           // guarded by mu
	eof     bool          // guarded by mu; the writer half-closed
	rclosed bool          // guarded by mu; the reader closed
	changed chan struct{} // guarded by mu; closed and replaced on every change
}

func newPipe() *pipe { return &pipe{changed: make(chan struct{})} }

// signalLocked wakes every waiter.
func (p *pipe) signalLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *pipe) read(b []byte, closed <-chan struct{}, dl *deadline.Deadline) (int, error) {
	for {
		p.mu.Lock()
		if p.rclosed {
			p.mu.Unlock()
			return 0, net.ErrClosed
		}
		if n := len(p.buf) - p.r; n > 0 {
			n = copy(b, p.buf[p.r:])
			p.r += n
			if p.r == len(p.buf) {
				p.buf, p.r = p.buf[:0], 0
			}
			p.signalLocked()
			p.mu.Unlock()
			return n, nil
		}
		if p.eof {
			p.mu.Unlock()
			return 0, io.EOF
		}
		wait := p.changed
		p.mu.Unlock()
		select {
		case <-wait:
		case <-closed:
			return 0, net.ErrClosed
		case <-dl.Done():
			return 0, os.ErrDeadlineExceeded
		}
	}
}

func (p *pipe) write(b []byte, closed <-chan struct{}, dl *deadline.Deadline) (int, error) {
	written := 0
	for len(b) > 0 {
		p.mu.Lock()
		switch {
		case p.eof:
			p.mu.Unlock()
			return written, net.ErrClosed
		case p.rclosed:
			p.mu.Unlock()
			return written, errBrokenPipe
		}
		if p.r > 0 && len(p.buf)+len(b) > cap(p.buf) {
			n := copy(p.buf, p.buf[p.r:])
			p.buf, p.r = p.buf[:n], 0
		}
		if room := pipeCapacity - (len(p.buf) - p.r); room > 0 {
			n := min(room, len(b))
			p.buf = append(p.buf, b[:n]...)
			b = b[n:]
			written += n
			p.signalLocked()
			p.mu.Unlock()
			continue
		}
		wait := p.changed
		p.mu.Unlock()
		select {
		case <-wait:
		case <-closed:
			return written, net.ErrClosed
		case <-dl.Done():
			return written, os.ErrDeadlineExceeded
		}
	}
	return written, nil
}

func (p *pipe) closeWrite() {
	p.mu.Lock()
	if !p.eof {
		p.eof = true
		p.signalLocked()
	}
	p.mu.Unlock()
}

func (p *pipe) closeRead() {
	p.mu.Lock()
	if !p.rclosed {
		p.rclosed = true
		p.buf, p.r = nil, 0
		p.signalLocked()
	}
	p.mu.Unlock()
}

// Conn is one end of an in-memory stream. Writes are buffered up to
// 256 KiB; CloseWrite makes the other end read EOF; Close makes the other
// end read EOF and fail its writes with EPIPE.
type Conn struct {
	rd, wr        *pipe
	local, remote Addr
	rdl, wdl      deadline.Deadline
	once          sync.Once
	closed        chan struct{}
}

// NewPipe returns the two ends of an in-memory stream between a and b.
func NewPipe(a, b Addr) (*Conn, *Conn) {
	ab, ba := newPipe(), newPipe()
	ca := &Conn{rd: ba, wr: ab, local: a, remote: b, closed: make(chan struct{})}
	cb := &Conn{rd: ab, wr: ba, local: b, remote: a, closed: make(chan struct{})}
	return ca, cb
}

// Read implements net.Conn.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.rd.read(b, c.closed, &c.rdl)
	if err != nil && err != io.EOF {
		err = &net.OpError{Op: "read", Net: "skywire", Source: c.local, Addr: c.remote, Err: err}
	}
	return n, err
}

// Write implements net.Conn.
func (c *Conn) Write(b []byte) (int, error) {
	n, err := c.wr.write(b, c.closed, &c.wdl)
	if err != nil && !errors.Is(err, syscall.EPIPE) {
		err = &net.OpError{Op: "write", Net: "skywire", Source: c.local, Addr: c.remote, Err: err}
	}
	return n, err
}

// CloseWrite half-closes the stream: the other end reads EOF after the
// bytes written so far.
func (c *Conn) CloseWrite() error {
	c.wr.closeWrite()
	return nil
}

// Close implements net.Conn.
func (c *Conn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.wr.closeWrite()
		c.rd.closeRead()
	})
	return nil
}

// LocalAddr implements net.Conn.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr implements net.Conn.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rdl.Set(t)
	c.wdl.Set(t)
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error { c.rdl.Set(t); return nil }

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error { c.wdl.Set(t); return nil }
