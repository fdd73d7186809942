package remote

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/viscript/control"
)

// MaxNodes caps the connections a Nodes keeps open; beyond it the least
// recently used is closed.
const MaxNodes = 32

// Nodes gives the Controller of any node's viscript to a caller that asks
// by key again and again (the dashboard's web.NodeSource): the zero key is
// Local, this viscript's own; another key is a control connection over the
// mesh through Dialer, kept while it lives and opened again after it was
// lost (a refused one too: the node's admins may change). The answers are
// the remote node's, authorized there by our node's key.
type Nodes struct {
	Local  control.Controller
	Dialer *Dialer

	mu     sync.Mutex
	conns  map[keys.PublicKey]*nodeConn // guarded by mu
	closed bool                         // guarded by mu
}

type nodeConn struct {
	c    *control.Client
	used time.Time
}

// ErrNodesClosed is the answer of a closed Nodes.
var ErrNodesClosed = errors.New("remote control: closed")

// Controller returns the Controller of node pk (the zero key: Local).
func (n *Nodes) Controller(ctx context.Context, pk keys.PublicKey) (control.Controller, error) {
	if pk.IsZero() {
		return n.Local, nil
	}
	if c, err := n.cached(pk); c != nil || err != nil {
		return c, err
	}
	c, err := n.Dialer.Dial(ctx, pk)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		c.Close()
		return nil, ErrNodesClosed
	}
	if nc := n.conns[pk]; nc != nil && !isDone(nc.c) {
		c.Close() // another caller dialed first: one connection per node
		nc.used = time.Now()
		return nc.c, nil
	}
	if n.conns == nil {
		n.conns = make(map[keys.PublicKey]*nodeConn)
	}
	if len(n.conns) >= MaxNodes {
		n.evictLocked()
	}
	n.conns[pk] = &nodeConn{c: c, used: time.Now()}
	return c, nil
}

// cached is the live connection to pk, if there is one; a lost one is
// forgotten.
func (n *Nodes) cached(pk keys.PublicKey) (control.Controller, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrNodesClosed
	}
	nc := n.conns[pk]
	if nc == nil {
		return nil, nil
	}
	if isDone(nc.c) {
		delete(n.conns, pk)
		return nil, nil
	}
	nc.used = time.Now()
	return nc.c, nil
}

// evictLocked closes the least recently used connection.
func (n *Nodes) evictLocked() {
	var oldest keys.PublicKey
	var at time.Time
	for k, nc := range n.conns {
		if at.IsZero() || nc.used.Before(at) {
			oldest, at = k, nc.used
		}
	}
	n.conns[oldest].c.Close()
	delete(n.conns, oldest)
}

// Close closes every connection; Controller fails for remote keys
// afterwards.
func (n *Nodes) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	for k, nc := range n.conns {
		nc.c.Close()
		delete(n.conns, k)
	}
	return nil
}

func isDone(c *control.Client) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}
