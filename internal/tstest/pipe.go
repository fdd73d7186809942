package tstest

import (
	"net"
	"sync"
)

// PipeListener is an in-memory net.Listener: Dial makes a net.Pipe and
// hands one end to Accept.
type PipeListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

// NewPipeListener returns a PipeListener.
func NewPipeListener() *PipeListener {
	return &PipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept waits for a Dial and returns its far end, or net.ErrClosed once
// the listener is closed.
func (l *PipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close makes Accept and Dial return net.ErrClosed. Connections already
// made stay open.
func (l *PipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr returns an address whose network and string are "pipe".
func (l *PipeListener) Addr() net.Addr { return pipeAddr{} }

// Dial returns one end of a new net.Pipe once Accept has taken the other,
// or net.ErrClosed if the listener is closed first.
func (l *PipeListener) Dial() (net.Conn, error) {
	a, b := net.Pipe()
	if err := l.Push(b); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Push returns once Accept has taken c (the server's end of a connection
// the test made, such as a wrapped pipe), or net.ErrClosed, with c
// closed, if the listener is closed first.
func (l *PipeListener) Push(c net.Conn) error {
	select {
	case l.conns <- c:
		return nil
	case <-l.done:
		c.Close()
		return net.ErrClosed
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
