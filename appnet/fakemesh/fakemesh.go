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
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/internal/inbox"
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
	ls, ps := slices.Collect(maps.Values(nd.listeners)), slices.Collect(maps.Values(nd.pconns))
	clear(nd.listeners)
	clear(nd.pconns)
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
	return openPort(nd, nd.listeners, "listen", port, func() *Listener {
		return &Listener{nd: nd, port: port, in: inbox.New[accepted](acceptQueue)}
	})
}

// openPort adds the endpoint mk makes to table m under port, unless the
// node is closed or the port taken.
func openPort[E comparable](nd *Node, m map[uint16]E, op string, port uint16, mk func() E) (E, error) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	var e E
	if nd.closed {
		return e, fmt.Errorf("%s on port %d: %w", op, port, appnet.ErrNodeClosed)
	}
	if _, taken := m[port]; taken {
		return e, fmt.Errorf("%s on port %d: %w", op, port, appnet.ErrPortInUse)
	}
	e = mk()
	m[port] = e
	return e, nil
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
	switch err := l.in.Put(ctx, accepted{conn: far, from: nd.key}); {
	case errors.Is(err, net.ErrClosed):
		return nil, fmt.Errorf("%s: listener closed: %w", op, appnet.ErrRefused)
	case err != nil:
		return nil, fmt.Errorf("%s: %w: %w", op, appnet.ErrTimeout, err)
	}
	// The listener may have closed and drained its queue just before
	// the send: drain again so far is closed either way.
	if l.in.Closed() {
		l.drain()
	}
	return local, nil
}

// ListenPacket implements appserver.Mesh.
func (nd *Node) ListenPacket(port uint16) (appserver.PacketConn, error) {
	return openPort(nd, nd.pconns, "listen packet", port, func() *PacketConn {
		return &PacketConn{nd: nd, port: port, in: inbox.New[packet](packetQueue)}
	})
}

// ListenPacketFunc implements appserver.PacketFuncMesh: datagrams to
// port are handed to handle on the sender's goroutine (a mesh.Node
// without the method, such as struct{ appserver.Mesh }{node}, makes the
// app server read them with ReadFrom instead).
func (nd *Node) ListenPacketFunc(port uint16, handle func(payload []byte, from keys.PublicKey, fromPort uint16)) (appserver.PacketConn, error) {
	return openPort(nd, nd.pconns, "listen packet", port, func() *PacketConn {
		return &PacketConn{nd: nd, port: port, in: inbox.New[packet](packetQueue), handle: handle}
	})
}

var _ appserver.PacketFuncMesh = (*Node)(nil)

type accepted struct {
	conn *Conn
	from keys.PublicKey
}

// Listener accepts the streams dialed to one port of a node.
type Listener struct {
	nd   *Node
	port uint16
	in   *inbox.Inbox[accepted]
}

// Accept implements appserver.Listener.
func (l *Listener) Accept(ctx context.Context) (net.Conn, keys.PublicKey, error) {
	a, err := l.in.Get(ctx)
	if err != nil {
		return nil, keys.PublicKey{}, fmt.Errorf("accept on port %d: %w", l.port, err)
	}
	return a.conn, a.from, nil
}

// Close implements appserver.Listener; queued streams are closed.
func (l *Listener) Close() error {
	l.in.Close(func() { inbox.Unlist(&l.nd.mu, l.nd.listeners, l.port, l) })
	l.drain()
	return nil
}

func (l *Listener) drain() { l.in.Drain(func(a accepted) { a.conn.Close() }) }

type packet struct {
	b    []byte
	from keys.PublicKey
	port uint16
}

// PacketConn is the datagram endpoint of one port of a node.
type PacketConn struct {
	nd     *Node
	port   uint16
	in     *inbox.Inbox[packet]
	handle func(payload []byte, from keys.PublicKey, fromPort uint16) // ListenPacketFunc; nil: in
}

// ReadFrom implements appserver.PacketConn.
func (p *PacketConn) ReadFrom(ctx context.Context) ([]byte, keys.PublicKey, uint16, error) {
	d, err := p.in.Get(ctx)
	if err != nil {
		return nil, keys.PublicKey{}, 0, fmt.Errorf("read datagram on port %d: %w", p.port, err)
	}
	return d.b, d.from, d.port, nil
}

// WriteTo implements appserver.PacketConn. A datagram to a port nobody
// listens on, or to a full queue, is dropped silently; an unreachable
// node is ErrNoRoute.
func (p *PacketConn) WriteTo(b []byte, to keys.PublicKey, port uint16) error {
	if p.in.Closed() {
		return fmt.Errorf("send datagram: %w", net.ErrClosed)
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
	if dst.handle != nil {
		dst.handle(b, p.nd.key, p.port)
		return nil
	}
	dst.in.TryPut(packet{b: append([]byte(nil), b...), from: p.nd.key, port: p.port}) // false: queue full, dropped
	return nil
}

// Close implements appserver.PacketConn.
func (p *PacketConn) Close() error {
	p.in.Close(func() { inbox.Unlist(&p.nd.mu, p.nd.pconns, p.port, p) })
	return nil
}
