// Package nodeapp adapts a *node.Node to the app server's Mesh interface,
// so that app processes reach the mesh through the node's app socket. It
// maps the node's errors to the app API's typed errors, which travel to the
// app as codes (a SOCKS proxy turns appnet.ErrNoRoute into its own reply).
package nodeapp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/node"
)

// Mesh returns n as an appserver.Mesh (a NamedMesh: apps' names reach the
// directory).
func Mesh(n *node.Node) appserver.NamedMesh { return mesh{n} }

type mesh struct{ n *node.Node }

func (m mesh) PublicKey() keys.PublicKey { return m.n.PublicKey() }

func (m mesh) Listen(port uint16) (appserver.Listener, error) { return m.ListenApp("", port) }

func (m mesh) ListenApp(name string, port uint16) (appserver.Listener, error) {
	l, err := m.n.ListenApp(name, port)
	if err != nil {
		return nil, mapErr(err)
	}
	return listener{l}, nil
}

func (m mesh) Dial(ctx context.Context, remote keys.PublicKey, port uint16) (net.Conn, error) {
	c, err := m.n.Dial(ctx, remote, port)
	if err != nil {
		return nil, mapErr(err)
	}
	return c, nil
}

func (m mesh) ListenPacket(port uint16) (appserver.PacketConn, error) {
	pc, err := m.n.ListenPacket(port)
	if err != nil {
		return nil, mapErr(err)
	}
	return &packetConn{pc: pc, buf: make([]byte, appnet.MaxDatagram)}, nil
}

// ListenPacketFunc implements appserver.PacketFuncMesh: the node hands
// the port's datagrams to handle on the goroutine that received them.
func (m mesh) ListenPacketFunc(port uint16, handle func(payload []byte, from keys.PublicKey, fromPort uint16)) (appserver.PacketConn, error) {
	pc, err := m.n.ListenPacketFunc(port, func(from node.Addr, b []byte) { handle(b, from.Key, from.Port) })
	if err != nil {
		return nil, mapErr(err)
	}
	return &packetConn{pc: pc}, nil
}

type listener struct{ l *node.Listener }

func (l listener) Accept(ctx context.Context) (net.Conn, keys.PublicKey, error) {
	c, k, err := l.l.Accept(ctx)
	if err != nil {
		return nil, keys.PublicKey{}, mapErr(err)
	}
	return c, k, nil
}

func (l listener) Close() error { return l.l.Close() }

// packetConn turns the node's deadline-based net.PacketConn into the
// context-based one the app server reads from (one reader at a time).
type packetConn struct {
	pc  node.PacketConn
	buf []byte
}

func (p *packetConn) ReadFrom(ctx context.Context) ([]byte, keys.PublicKey, uint16, error) {
	stop := context.AfterFunc(ctx, func() { p.pc.SetReadDeadline(time.Now()) })
	n, addr, err := p.pc.ReadFrom(p.buf)
	if !stop() {
		p.pc.SetReadDeadline(time.Time{}) // the interrupt fired: clear it for the next read
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, keys.PublicKey{}, 0, ctx.Err()
		}
		return nil, keys.PublicKey{}, 0, mapErr(err)
	}
	a, ok := addr.(node.Addr)
	if !ok {
		return nil, keys.PublicKey{}, 0, fmt.Errorf("datagram from unexpected address type %T", addr)
	}
	// The app server copies it into its queue for the app before the
	// next ReadFrom (appserver.PacketConn).
	return p.buf[:n], a.Key, a.Port, nil
}

func (p *packetConn) WriteTo(b []byte, to keys.PublicKey, port uint16) error {
	_, err := p.pc.WriteTo(b, node.Addr{Key: to, Port: port})
	return mapErr(err)
}

func (p *packetConn) Close() error { return p.pc.Close() }

// mapErr wraps a node error with the app API sentinel it means, keeping
// the node's text.
func mapErr(err error) error {
	var s error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, node.ErrNoRoute), errors.Is(err, node.ErrNoManager), errors.Is(err, node.ErrHandshake):
		s = appnet.ErrNoRoute
	case errors.Is(err, node.ErrPortInUse):
		s = appnet.ErrPortInUse
	case errors.Is(err, node.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		s = appnet.ErrTimeout
	case errors.Is(err, node.ErrClosed):
		s = appnet.ErrNodeClosed
	case errors.Is(err, node.ErrRefused):
		s = appnet.ErrRefused
	default:
		return err
	}
	return fmt.Errorf("%w: %w", s, err)
}
