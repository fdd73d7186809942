// Package fakemesh is an in-memory mesh for testing apps and the app
// server: nodes of one Network reach each other directly, a Dial on one
// node reaches a Listen on another through an in-memory stream (with
// CloseWrite and deadlines), and datagrams are delivered through bounded
// queues. Each Node implements appserver.Mesh.
//
// Errors wrap the sentinels of package appnet: a node that is not in the
// network (or is partitioned away) gives appnet.ErrNoRoute, a port nobody
// listens on gives appnet.ErrRefused, a taken port appnet.ErrPortInUse.
package fakemesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/keys"
)

// Queue sizes.
const (
	acceptQueue = 128 // dialed streams waiting for Accept
	packetQueue = 256 // datagrams waiting for ReadFrom; beyond, dropped
)

// ErrDuplicateKey is returned by AddNode for a key already in the network.
var ErrDuplicateKey = errors.New("fakemesh: key already in the network")

// Addr is a fake mesh address.
type Addr = appnet.Addr

// Network is a set of fake nodes that reach each other.
type Network struct {
	mu      sync.Mutex
	nodes   map[keys.PublicKey]*Node   // guarded by mu
	blocked map[[2]keys.PublicKey]bool // guarded by mu; unordered pairs, smaller key first
}

// New returns an empty network.
func New() *Network {
	return &Network{nodes: map[keys.PublicKey]*Node{}, blocked: map[[2]keys.PublicKey]bool{}}
}

// NewNode adds a node with a fresh key.
func (n *Network) NewNode() (*Node, error) {
	kp, err := keys.Generate()
	if err != nil {
		return nil, fmt.Errorf("fakemesh: new node: %w", err)
	}
	return n.AddNode(kp.Public)
}

// AddNode adds a node with key k.
func (n *Network) AddNode(k keys.PublicKey) (*Node, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nodes[k] != nil {
		return nil, fmt.Errorf("add node %s: %w", k.Short(), ErrDuplicateKey)
	}
	nd := &Node{net: n, key: k, listeners: map[uint16]*Listener{}, pconns: map[uint16]*PacketConn{}}
	n.nodes[k] = nd
	return nd, nil
}

func pair(a, b keys.PublicKey) [2]keys.PublicKey {
	for i := range a {
		if a[i] != b[i] {
			if a[i] > b[i] {
				a, b = b, a
			}
			break
		}
	}
	return [2]keys.PublicKey{a, b}
}

// Partition makes a and b unreachable from each other (new dials give
// ErrNoRoute, datagrams are dropped); open streams are not affected.
func (n *Network) Partition(a, b keys.PublicKey) {
	n.mu.Lock()
	n.blocked[pair(a, b)] = true
	n.mu.Unlock()
}

// Heal undoes Partition.
func (n *Network) Heal(a, b keys.PublicKey) {
	n.mu.Lock()
	delete(n.blocked, pair(a, b))
	n.mu.Unlock()
}

// route returns the node for to as seen from from, or nil.
func (n *Network) route(from, to keys.PublicKey) *Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.blocked[pair(from, to)] {
		return nil
	}
	return n.nodes[to]
}

// Node is one fake node; it implements appserver.Mesh.
type Node struct {
	net *Network
	key keys.PublicKey

	mu        sync.Mutex
	closed    bool                   // guarded by mu
	listeners map[uint16]*Listener   // guarded by mu
	pconns    map[uint16]*PacketConn // guarded by mu
}

var _ appserver.Mesh = (*Node)(nil)

// PublicKey implements appserver.Mesh.
func (nd *Node) PublicKey() keys.PublicKey { return nd.key }

// Close takes the node out of the network and closes its listeners and
// packet conns. Streams already open stay open.
func (nd *Node) Close() error {
	nd.net.mu.Lock()
	if nd.net.nodes[nd.key] == nd {
		delete(nd.net.nodes, nd.key)
	}
	nd.net.mu.Unlock()
	nd.mu.Lock()
	nd.closed = true
	ls, ps := nd.listeners, nd.pconns
	nd.listeners, nd.pconns = map[uint16]*Listener{}, map[uint16]*PacketConn{}
	nd.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	for _, p := range ps {
		p.Close()
	}
	return nil
}

// Ports returns the ports with a listener, for tests that check that an
// app's port was released.
func (nd *Node) Ports() (streams, packets []uint16) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	for p := range nd.listeners {
		streams = append(streams, p)
	}
	for p := range nd.pconns {
		packets = append(packets, p)
	}
	return streams, packets
}

// Listen implements appserver.Mesh.
func (nd *Node) Listen(port uint16) (appserver.Listener, error) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.closed {
		return nil, fmt.Errorf("listen on port %d: %w", port, appnet.ErrNodeClosed)
	}
	if nd.listeners[port] != nil {
		return nil, fmt.Errorf("listen on port %d: %w", port, appnet.ErrPortInUse)
	}
	l := &Listener{nd: nd, port: port, ch: make(chan accepted, acceptQueue), done: make(chan struct{})}
	nd.listeners[port] = l
	return l, nil
}

// Dial implements appserver.Mesh. It returns as soon as the stream is
// queued at the remote listener, like a mesh stream that opens without a
// round trip; a full accept queue makes it wait for ctx.
func (nd *Node) Dial(ctx context.Context, remote keys.PublicKey, port uint16) (net.Conn, error) {
	op := "dial " + remote.Short() + ":" + strconv.Itoa(int(port))
	rn := nd.net.route(nd.key, remote)
	if rn == nil {
		return nil, fmt.Errorf("%s: %w", op, appnet.ErrNoRoute)
	}
	rn.mu.Lock()
	l := rn.listeners[port]
	rn.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("%s: nobody listens: %w", op, appnet.ErrRefused)
	}
	local, far := NewPipe(Addr{Key: nd.key}, Addr{Key: remote, Port: port})
	select {
	case l.ch <- accepted{conn: far, from: nd.key}:
	case <-l.done:
		return nil, fmt.Errorf("%s: listener closed: %w", op, appnet.ErrRefused)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w: %w", op, appnet.ErrTimeout, ctx.Err())
	}
	// The listener may have closed and drained its queue just before
	// the send: drain again so far is closed either way.
	select {
	case <-l.done:
		l.drain()
	default:
	}
	return local, nil
}

// ListenPacket implements appserver.Mesh.
func (nd *Node) ListenPacket(port uint16) (appserver.PacketConn, error) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.closed {
		return nil, fmt.Errorf("listen packet on port %d: %w", port, appnet.ErrNodeClosed)
	}
	if nd.pconns[port] != nil {
		return nil, fmt.Errorf("listen packet on port %d: %w", port, appnet.ErrPortInUse)
	}
	p := &PacketConn{nd: nd, port: port, ch: make(chan packet, packetQueue), done: make(chan struct{})}
	nd.pconns[port] = p
	return p, nil
}

type accepted struct {
	conn *Conn
	from keys.PublicKey
}

// Listener accepts the streams dialed to one port of a node.
type Listener struct {
	nd   *Node
	port uint16
	ch   chan accepted
	once sync.Once
	done chan struct{}
}

// Accept implements appserver.Listener.
func (l *Listener) Accept(ctx context.Context) (net.Conn, keys.PublicKey, error) {
	select {
	case a := <-l.ch:
		return a.conn, a.from, nil
	case <-l.done:
		return nil, keys.PublicKey{}, fmt.Errorf("accept on port %d: %w", l.port, net.ErrClosed)
	case <-ctx.Done():
		return nil, keys.PublicKey{}, fmt.Errorf("accept on port %d: %w", l.port, ctx.Err())
	}
}

// Close implements appserver.Listener; queued streams are closed.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.nd.mu.Lock()
		if l.nd.listeners[l.port] == l {
			delete(l.nd.listeners, l.port)
		}
		l.nd.mu.Unlock()
	})
	l.drain()
	return nil
}

func (l *Listener) drain() {
	for {
		select {
		case a := <-l.ch:
			a.conn.Close()
		default:
			return
		}
	}
}

type packet struct {
	b    []byte
	from keys.PublicKey
	port uint16
}

// PacketConn is the datagram endpoint of one port of a node.
type PacketConn struct {
	nd   *Node
	port uint16
	ch   chan packet
	once sync.Once
	done chan struct{}
}

// ReadFrom implements appserver.PacketConn.
func (p *PacketConn) ReadFrom(ctx context.Context) ([]byte, keys.PublicKey, uint16, error) {
	select {
	case d := <-p.ch:
		return d.b, d.from, d.port, nil
	case <-p.done:
		return nil, keys.PublicKey{}, 0, fmt.Errorf("read datagram on port %d: %w", p.port, net.ErrClosed)
	case <-ctx.Done():
		return nil, keys.PublicKey{}, 0, fmt.Errorf("read datagram on port %d: %w", p.port, ctx.Err())
	}
}

// WriteTo implements appserver.PacketConn. A datagram to a port nobody
// listens on, or to a full queue, is dropped silently; an unreachable
// node is ErrNoRoute.
func (p *PacketConn) WriteTo(b []byte, to keys.PublicKey, port uint16) error {
	select {
	case <-p.done:
		return fmt.Errorf("send datagram: %w", net.ErrClosed)
	default:
	}
	rn := p.nd.net.route(p.nd.key, to)
	if rn == nil {
		return fmt.Errorf("send datagram to %s: %w", to.Short(), appnet.ErrNoRoute)
	}
	rn.mu.Lock()
	dst := rn.pconns[port]
	rn.mu.Unlock()
	if dst == nil {
		return nil
	}
	select {
	case dst.ch <- packet{b: append([]byte(nil), b...), from: p.nd.key, port: p.port}:
	default:
	}
	return nil
}

// Close implements appserver.PacketConn.
func (p *PacketConn) Close() error {
	p.once.Do(func() {
		close(p.done)
		p.nd.mu.Lock()
		if p.nd.pconns[p.port] == p {
			delete(p.nd.pconns, p.port)
		}
		p.nd.mu.Unlock()
	})
	return nil
}
