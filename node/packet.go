package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skywire-mesh/skywire/internal/bufpool"
	"github.com/skywire-mesh/skywire/internal/inbox"
	"github.com/skywire-mesh/skywire/keys"
)

// PacketConn sends and receives datagrams to and from remote:port over
// sessions. Addresses are Addr values. Datagrams are unreliable.
type PacketConn interface {
	net.PacketConn
}

type datagram struct {
	from Addr
	b    []byte // from recvBufs: Put after use
}

type packetConn struct {
	n    *Node
	port uint16
	in   *inbox.Inbox[datagram]
	// handle, if set, takes the port's datagrams instead of in
	// (ListenPacketFunc).
	handle func(from Addr, b []byte)
	queued atomic.Int64 // payload bytes in in, at most maxQueuedPacketBytes

	mu            sync.Mutex
	readDeadline  time.Time // guarded by mu
	writeDeadline time.Time // guarded by mu
	dlChange      chan struct{}
}

// packetQueue is how many received datagrams wait for ReadFrom, and
// maxQueuedPacketBytes how many bytes of them: peers sending 64 KiB
// datagrams faster than the port is read cannot make it hold more.
const (
	packetQueue          = 1024
	maxQueuedPacketBytes = 4 << 20
)

// recvBufs holds the buffers ListenPacket's queue copies datagrams into.
var recvBufs = bufpool.New(32)

// ListenPacket receives datagrams sent to port and sends datagrams from it.
func (n *Node) ListenPacket(port uint16) (PacketConn, error) {
	return n.ListenPacketFunc(port, nil)
}

// ListenPacketFunc is ListenPacket with the port's datagrams handed to
// handle as they arrive instead of queued for ReadFrom (which then
// receives nothing): handle runs on the goroutine that received the
// datagram, b is valid only until it returns, and it must not block
// (drop instead). It saves a copy and a goroutine handoff per datagram.
// A datagram being delivered when Close is called may still reach handle
// after Close returns. A nil handle means ListenPacket.
func (n *Node) ListenPacketFunc(port uint16, handle func(from Addr, b []byte)) (PacketConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping {
		return nil, ErrClosed
	}
	if n.pconns[port] != nil {
		return nil, fmt.Errorf("listen packet on port %d: %w", port, ErrPortInUse)
	}
	pc := &packetConn{n: n, port: port, in: inbox.New[datagram](packetQueue), handle: handle, dlChange: make(chan struct{})}
	n.pconns[port] = pc
	return pc, nil
}

func (pc *packetConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		pc.mu.Lock()
		dl, change := pc.readDeadline, pc.dlChange
		pc.mu.Unlock()
		var timeout <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, nil, fmt.Errorf("read from port %d: %w", pc.port, os.ErrDeadlineExceeded)
			}
			t := time.NewTimer(d)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case d := <-pc.in.C():
			n := copy(p, d.b)
			pc.queued.Add(-int64(len(d.b)))
			recvBufs.Put(d.b)
			return n, d.from, nil
		case <-pc.in.Done():
			return 0, nil, fmt.Errorf("read from port %d: %w", pc.port, net.ErrClosed)
		case <-timeout:
			return 0, nil, fmt.Errorf("read from port %d: %w", pc.port, os.ErrDeadlineExceeded)
		case <-change:
		}
	}
}

// deliver takes a datagram for the port; b is valid only during the call.
func (pc *packetConn) deliver(from Addr, b []byte) {
	if pc.handle != nil {
		pc.handle(from, b)
		return
	}
	if pc.queued.Add(int64(len(b))) > maxQueuedPacketBytes {
		pc.queued.Add(-int64(len(b))) // the reader is too slow: dropped
		return
	}
	d := datagram{from, recvBufs.Get(len(b))}
	copy(d.b, b)
	if !pc.in.TryPut(d) { // as many wait as packetQueue allows: dropped
		pc.queued.Add(-int64(len(b)))
		recvBufs.Put(d.b)
	}
}

func (pc *packetConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	var a Addr
	switch v := addr.(type) {
	case Addr:
		a = v
	case *Addr:
		a = *v
	default:
		return 0, fmt.Errorf("write to %v: not a mesh address (node.Addr)", addr)
	}
	if pc.in.Closed() {
		return 0, fmt.Errorf("write to %s: %w", a, net.ErrClosed)
	}
	rs := pc.n.liveSession(a.Key)
	if rs == nil {
		var err error
		if rs, err = pc.establish(a.Key); err != nil {
			return 0, fmt.Errorf("write to %s: %w", a, err)
		}
	}
	var hdr [datagramHeaderLen]byte
	binary.BigEndian.PutUint16(hdr[:], a.Port)
	binary.BigEndian.PutUint16(hdr[2:], pc.port)
	if err := rs.s.SendDatagramPrefixed(hdr[:], p); err != nil {
		return 0, fmt.Errorf("write to %s: %w", a, err)
	}
	return len(p), nil
}

// establish finds or sets up the session to remote, bounded by the node's
// life and the write deadline.
func (pc *packetConn) establish(remote keys.PublicKey) (*remoteSess, error) {
	ctx, cancel := context.WithCancel(pc.n.life)
	defer cancel()
	pc.mu.Lock()
	if dl := pc.writeDeadline; !dl.IsZero() {
		var c2 context.CancelFunc
		ctx, c2 = context.WithDeadline(ctx, dl)
		defer c2()
	}
	pc.mu.Unlock()
	return pc.n.session(ctx, remote)
}

func (pc *packetConn) Close() error {
	pc.in.Close(func() { inbox.Unlist(&pc.n.mu, pc.n.pconns, pc.port, pc) })
	return nil
}

func (pc *packetConn) LocalAddr() net.Addr { return Addr{Key: pc.n.PublicKey(), Port: pc.port} }

func (pc *packetConn) SetDeadline(t time.Time) error {
	pc.SetReadDeadline(t)
	return pc.SetWriteDeadline(t)
}

func (pc *packetConn) SetReadDeadline(t time.Time) error {
	pc.mu.Lock()
	pc.readDeadline = t
	close(pc.dlChange)
	pc.dlChange = make(chan struct{})
	pc.mu.Unlock()
	return nil
}

func (pc *packetConn) SetWriteDeadline(t time.Time) error {
	pc.mu.Lock()
	pc.writeDeadline = t
	pc.mu.Unlock()
	return nil
}
