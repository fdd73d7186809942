// Package meshtest builds in-memory skywire meshes for tests: N nodes and a
// node manager connected by in-process pipes (no sockets), in line, star or
// random topologies, with helpers to cut links, stop and restart nodes and
// restart the manager. Waiting helpers poll state under a deadline; tests
// never sleep to synchronise.
package meshtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/skywire-mesh/skywire/internal/inbox"
)

// ErrRefused is returned when dialling an address nobody listens on, or
// across a cut link.
var ErrRefused = errors.New("meshtest: connection refused")

// Network is an in-memory transport: named listeners, and per-caller
// dialers whose connections can be cut.
type Network struct {
	mu        sync.Mutex
	listeners map[string]*listener   // guarded by mu
	conns     map[pairKey][]net.Conn // guarded by mu; both ends of every pipe between two names
	cut       map[pairKey]bool       // guarded by mu
	holes     map[pairKey]*hole      // guarded by mu
}

// hole is a blackhole switch shared by the connections between two names.
type hole struct{ on atomic.Bool }

type pairKey struct{ a, b string }

func pair(a, b string) pairKey {
	if a > b {
		a, b = b, a
	}
	return pairKey{a, b}
}

// NewNetwork returns an empty network.
func NewNetwork() *Network {
	return &Network{listeners: map[string]*listener{}, conns: map[pairKey][]net.Conn{}, cut: map[pairKey]bool{}, holes: map[pairKey]*hole{}}
}

// Listen listens on the name addr.
func (nw *Network) Listen(addr string) (net.Listener, error) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.listeners[addr] != nil {
		return nil, fmt.Errorf("meshtest: listen %s: address in use", addr)
	}
	l := &listener{nw: nw, addr: addr, in: inbox.New[net.Conn](0)}
	nw.listeners[addr] = l
	return l, nil
}

// Dialer returns a dial function for the endpoint named from.
func (nw *Network) Dialer(from string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		nw.mu.Lock()
		l := nw.listeners[addr]
		cut := nw.cut[pair(from, addr)]
		nw.mu.Unlock()
		if l == nil || cut {
			return nil, fmt.Errorf("dial %s: %w", addr, ErrRefused)
		}
		c1, c2 := net.Pipe()
		h := nw.hole(from, addr)
		a := &conn{Conn: c1, local: memAddr(from), remote: memAddr(addr), hole: h}
		b := &conn{Conn: c2, local: memAddr(addr), remote: memAddr(from), hole: h}
		switch err := l.in.Put(ctx, b); {
		case errors.Is(err, net.ErrClosed):
			return nil, fmt.Errorf("dial %s: %w", addr, ErrRefused)
		case err != nil:
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		nw.mu.Lock()
		k := pair(from, addr)
		nw.conns[k] = append(nw.conns[k], a, b)
		nw.mu.Unlock()
		return a, nil
	}
}

// Cut closes every connection between a and b and refuses new ones until
// Heal.
func (nw *Network) Cut(a, b string) {
	nw.mu.Lock()
	k := pair(a, b)
	nw.cut[k] = true
	cs := nw.conns[k]
	delete(nw.conns, k)
	nw.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

func (nw *Network) hole(a, b string) *hole {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	k := pair(a, b)
	h := nw.holes[k]
	if h == nil {
		h = &hole{}
		nw.holes[k] = h
	}
	return h
}

// Blackhole makes every connection between a and b silently drop what is
// written to it, without closing: only keepalive timeouts can tell. New
// connections between them are refused until Heal.
func (nw *Network) Blackhole(a, b string) {
	nw.hole(a, b).on.Store(true)
	nw.mu.Lock()
	nw.cut[pair(a, b)] = true
	nw.mu.Unlock()
}

// Heal allows connections between a and b again.
func (nw *Network) Heal(a, b string) {
	nw.mu.Lock()
	k := pair(a, b)
	delete(nw.cut, k)
	delete(nw.holes, k) // connections made from now on are clean
	nw.mu.Unlock()
}

type memAddr string

func (memAddr) Network() string  { return "mem" }
func (a memAddr) String() string { return string(a) }

type conn struct {
	net.Conn
	local, remote memAddr
	hole          *hole
}

// Write discards p while the connection is blackholed.
func (c *conn) Write(p []byte) (int, error) {
	if c.hole.on.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

type listener struct {
	nw   *Network
	addr string
	in   *inbox.Inbox[net.Conn]
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.in.Get(context.Background())
	if err != nil {
		return nil, fmt.Errorf("meshtest: accept on %s: %w", l.addr, err)
	}
	return c, nil
}

func (l *listener) Close() error {
	l.in.Close(func() { inbox.Unlist(&l.nw.mu, l.nw.listeners, l.addr, l) })
	return nil
}

func (l *listener) Addr() net.Addr { return memAddr(l.addr) }
