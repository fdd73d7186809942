// Package rogue is a lying node for tests: it speaks the link and control
// protocol correctly (so a manager or node under test cannot tell it from a
// real one by its framing) but does whatever the test asks — registers,
// forges install acknowledgements, claims routes it is no endpoint of,
// floods hellos and route requests, or holds connections in their
// handshake. It is meant to make each new attack a short test:
//
//	r := rogue.Link(t, conn, tstest.KeyPair(t), managerKey)
//	r.Register(t, nil)
//	r.Send(t, &proto.InstallAck{Req: guessed, Code: proto.CodeInstallFailed})
//
// Everything a Node receives is kept in order; Next waits for the next
// message that matches.
package rogue

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/keys"
)

// Wait is how long Next and Register wait before failing the test. It is
// generous on purpose: a slow, shared machine must not fail a test.
const Wait = 30 * time.Second

// Node is a linked rogue node. Its link is closed when the test ends.
type Node struct {
	Key  keys.KeyPair
	Conn *link.Conn

	autoAck atomic.Bool // acknowledge every Install with CodeOK

	mu   sync.Mutex
	msgs []proto.Message // everything received, in order; guarded by mu
	seen int             // msgs[:seen] were returned by Next; guarded by mu
	more chan struct{}   // closed and replaced when msgs grows; guarded by mu
	done chan struct{}   // closed when the read loop has exited
}

// Link runs the link handshake over conn as kp towards the peer remote (a
// manager or node) and starts reading.
func Link(tb testing.TB, conn net.Conn, kp keys.KeyPair, remote keys.PublicKey) *Node {
	tb.Helper()
	n, err := TryLink(tb, conn, kp, remote)
	if err != nil {
		tb.Fatalf("rogue: %v", err)
	}
	return n
}

// TryLink is Link returning the handshake's error (the peer refused or
// dropped the connection) instead of failing the test.
func TryLink(tb testing.TB, conn net.Conn, kp keys.KeyPair, remote keys.PublicKey) (*Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	lc, err := link.Client(ctx, conn, link.Config{Local: kp}, remote)
	if err != nil {
		return nil, fmt.Errorf("link: %w", err)
	}
	n := &Node{Key: kp, Conn: lc, more: make(chan struct{}), done: make(chan struct{})}
	go n.readLoop()
	tb.Cleanup(func() { lc.Close(); <-n.done })
	return n, nil
}

func (n *Node) readLoop() {
	defer close(n.done)
	for {
		typ, p, err := n.Conn.Recv()
		if err != nil {
			return
		}
		if typ != proto.LinkControl {
			continue
		}
		m, err := proto.Decode(p)
		if err != nil {
			continue
		}
		if in, ok := m.(*proto.Install); ok && n.autoAck.Load() {
			n.TrySend(&proto.InstallAck{Req: in.Req}) //nolint:errcheck // the link is going away
		}
		n.mu.Lock()
		n.msgs = append(n.msgs, m)
		close(n.more)
		n.more = make(chan struct{})
		n.mu.Unlock()
	}
}

// AutoAck makes the node confirm every Install it receives from now on,
// the way an honest hop does.
func (n *Node) AutoAck(on bool) { n.autoAck.Store(on) }

// Send sends one control message, whatever it says.
func (n *Node) Send(tb testing.TB, m proto.Message) {
	tb.Helper()
	if err := n.TrySend(m); err != nil {
		tb.Fatalf("rogue: send %s: %v", m.Type(), err)
	}
}

// TrySend sends one control message and returns the error (a flood goes on
// after the peer drops the link).
func (n *Node) TrySend(m proto.Message) error {
	b, err := proto.Encode(nil, m)
	if err != nil {
		return err
	}
	return n.Conn.Send(proto.LinkControl, b)
}

// Register sends a hello (h, or an empty one if nil) and waits for the
// welcome.
func (n *Node) Register(tb testing.TB, h *proto.Hello) {
	tb.Helper()
	if h == nil {
		h = &proto.Hello{}
	}
	h.Version = proto.Version
	n.Send(tb, h)
	w := Next[*proto.Welcome](tb, n, nil)
	if w.Code != proto.CodeOK {
		tb.Fatalf("rogue: welcome %v: %s", w.Code, w.Msg)
	}
}

// Next returns the next message of type T received after the last one
// Next returned that satisfies ok (nil: any), failing the test after Wait.
func Next[T proto.Message](tb testing.TB, n *Node, ok func(T) bool) T {
	tb.Helper()
	deadline := time.NewTimer(Wait)
	defer deadline.Stop()
	for {
		n.mu.Lock()
		for n.seen < len(n.msgs) {
			m := n.msgs[n.seen]
			n.seen++
			if t, is := m.(T); is && (ok == nil || ok(t)) {
				n.mu.Unlock()
				return t
			}
		}
		more := n.more
		n.mu.Unlock()
		select {
		case <-more:
		case <-n.done:
			var zero T
			tb.Fatalf("rogue: link closed waiting for %T: %v", zero, n.Conn.Err())
		case <-deadline.C:
			var zero T
			tb.Fatalf("rogue: no %T within %v", zero, Wait)
		}
	}
}

// Received returns every message received so far.
func (n *Node) Received() []proto.Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]proto.Message(nil), n.msgs...)
}

// ForgeAck acknowledges request req as if it were the hop the install went
// to: code OK confirms the hop, anything else fails it.
func (n *Node) ForgeAck(tb testing.TB, req uint64, code proto.Code) {
	tb.Helper()
	n.Send(tb, &proto.InstallAck{Req: req, Code: code, Msg: "rogue"})
}

// ClaimRoute reports route id with the given hops in a hello update, as if
// this node were its initiator (hops[0]) or responder (last hop).
func (n *Node) ClaimRoute(tb testing.TB, id uint64, initiator bool, hops ...keys.PublicKey) {
	tb.Helper()
	n.Send(tb, &proto.Hello{Version: proto.Version, Routes: []proto.RouteState{RouteState(id, initiator, hops...)}})
}

// RouteState is the report of route id over hops.
func RouteState(id uint64, initiator bool, hops ...keys.PublicKey) proto.RouteState {
	rs := proto.RouteState{Route: id, Initiator: initiator}
	for _, h := range hops {
		rs.Hops = append(rs.Hops, proto.Key(h))
	}
	if initiator {
		rs.Remote = rs.Hops[len(rs.Hops)-1]
	} else {
		rs.Remote = rs.Hops[0]
	}
	return rs
}

// FloodHellos sends count hello updates, each claiming perHello routes from
// this node to dst with fresh random IDs (the routes a restarted manager
// would import). It returns how many were sent before the link failed.
func (n *Node) FloodHellos(count, perHello int, dst keys.PublicKey) int {
	for i := range count {
		h := &proto.Hello{Version: proto.Version}
		for j := range perHello {
			id := uint64(i)<<32 | uint64(j)<<1 | 1
			h.Routes = append(h.Routes, RouteState(id, true, n.Key.Public, dst))
		}
		if n.TrySend(h) != nil {
			return i
		}
	}
	return count
}

// FloodRouteRequests sends count route requests to dst without waiting for
// replies. It returns how many were sent before the link failed.
func (n *Node) FloodRouteRequests(count int, dst keys.PublicKey) int {
	for i := range count {
		if n.TrySend(&proto.RouteRequest{Req: uint64(i + 1), Dst: proto.Key(dst)}) != nil {
			return i
		}
	}
	return count
}

// Hold opens count connections with dial and never sends a byte on them,
// the way a slow or malicious client sits in the handshake. The returned
// func closes them all (also done when the test ends).
func Hold(tb testing.TB, count int, dial func() (net.Conn, error)) (held []net.Conn, release func()) {
	tb.Helper()
	for range count {
		c, err := dial()
		if err != nil {
			tb.Logf("rogue: hold: dial %d: %v", len(held), err)
			break
		}
		held = append(held, c)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			for _, c := range held {
				c.Close()
			}
		})
	}
	tb.Cleanup(release)
	return held, release
}
