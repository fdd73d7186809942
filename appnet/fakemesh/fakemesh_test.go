package fakemesh_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

var _ appserver.Mesh = (*fakemesh.Node)(nil)

func twoNodes(t *testing.T) (*fakemesh.Network, *fakemesh.Node, *fakemesh.Node) {
	n := fakemesh.New()
	return n, newNode(t, n), newNode(t, n)
}

func newNode(t *testing.T, n *fakemesh.Network) *fakemesh.Node {
	t.Helper()
	nd, err := n.NewNode()
	if err != nil {
		t.Fatal(err)
	}
	return nd
}

func dialAccept(t *testing.T, a, b *fakemesh.Node, port uint16) (net.Conn, net.Conn) {
	t.Helper()
	l := tstest.OpenPort(t, b.Listen, port)
	ctx := context.Background()
	c, err := a.Dial(ctx, b.PublicKey(), port)
	if err != nil {
		t.Fatal(err)
	}
	s, from, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if from != a.PublicKey() {
		t.Errorf("accepted from %s, want %s", from.Short(), a.PublicKey().Short())
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

func TestStreamTransferAndHalfClose(t *testing.T) {
	tstest.CheckLeaks(t)
	_, a, b := twoNodes(t)
	c, s := dialAccept(t, a, b, 7)
	// More than the pipe's buffer, so Write must wait for Read.
	msg := make([]byte, 3<<20)
	rand.Read(msg)
	go func() {
		c.Write(msg)
		c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %d bytes, %v; want %d bytes, EOF", len(got), err, len(msg))
	}
	if _, err := s.Write([]byte("back")); err != nil {
		t.Fatalf("write after the peer's half-close: %v", err)
	}
	s.Close()
	got, err = io.ReadAll(c)
	if err != nil || string(got) != "back" {
		t.Fatalf("read %q, %v after the peer closed", got, err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after CloseWrite: %v, want net.ErrClosed", err)
	}
	d, e := dialAccept(t, a, b, 8)
	e.Close()
	if _, err := d.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("write to a closed peer: %v, want EPIPE", err)
	}
}

func TestDeadlines(t *testing.T) {
	tstest.CheckLeaks(t)
	_, a, b := twoNodes(t)
	c, _ := dialAccept(t, a, b, 7)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Write(make([]byte, 1<<20)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("write past deadline with nobody reading: %v", err)
	}
	c.SetDeadline(time.Now().Add(-time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read with a past deadline: %v", err)
	}
	// Close wakes a blocked reader.
	c.SetDeadline(time.Time{})
	done := make(chan error)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	c.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("read on a closed conn: %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	tstest.CheckLeaks(t)
	n, a, b := twoNodes(t)
	l := tstest.OpenPort(t, b.Listen, 7)
	if _, err := b.Listen(7); !errors.Is(err, appnet.ErrPortInUse) {
		t.Errorf("second Listen: %v, want ErrPortInUse", err)
	}
	stranger, _ := keys.Generate()
	ctx := context.Background()
	tests := []struct {
		name   string
		remote keys.PublicKey
		port   uint16
		want   error
	}{
		{"no listener", b.PublicKey(), 8, appnet.ErrRefused},
		{"unknown node", stranger.Public, 7, appnet.ErrNoRoute},
	}
	for _, tt := range tests {
		if _, err := a.Dial(ctx, tt.remote, tt.port); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	n.Partition(a.PublicKey(), b.PublicKey())
	if _, err := a.Dial(ctx, b.PublicKey(), 7); !errors.Is(err, appnet.ErrNoRoute) {
		t.Errorf("partitioned: %v, want ErrNoRoute", err)
	}
	n.Heal(b.PublicKey(), a.PublicKey())
	c, err := a.Dial(ctx, b.PublicKey(), 7)
	if err != nil {
		t.Fatalf("healed: %v", err)
	}
	// A listener closed with a queued stream closes it.
	l.Close()
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read of a stream queued at a closed listener: %v, want EOF", err)
	}
	b.Close()
	if _, err := a.Dial(ctx, b.PublicKey(), 7); !errors.Is(err, appnet.ErrNoRoute) {
		t.Errorf("closed node: %v, want ErrNoRoute", err)
	}
}

func TestDatagrams(t *testing.T) {
	tstest.CheckLeaks(t)
	_, a, b := twoNodes(t)
	pa, pb := tstest.OpenPort(t, a.ListenPacket, 5), tstest.OpenPort(t, b.ListenPacket, 6)
	payload := []byte("datagram")
	if err := pa.WriteTo(payload, b.PublicKey(), 6); err != nil {
		t.Fatal(err)
	}
	payload[0] = 'X' // the mesh copied it
	got, from, port, err := pb.ReadFrom(context.Background())
	if err != nil || string(got) != "datagram" || from != a.PublicKey() || port != 5 {
		t.Fatalf("ReadFrom = %q from %s:%d, %v", got, from.Short(), port, err)
	}
	if err := pa.WriteTo(payload, b.PublicKey(), 99); err != nil {
		t.Errorf("datagram to a closed port: %v, want a silent drop", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, _, err := pb.ReadFrom(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ReadFrom with nothing sent: %v", err)
	}
	pb.Close()
	if _, _, _, err := pb.ReadFrom(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrom after Close: %v", err)
	}
	if _, err := b.ListenPacket(6); err != nil {
		t.Errorf("port not released by Close: %v", err)
	}
}

func BenchmarkPipe(b *testing.B) {
	n := fakemesh.New()
	x, _ := n.NewNode()
	y, _ := n.NewNode()
	l, _ := y.Listen(1)
	defer l.Close()
	c, _ := x.Dial(context.Background(), y.PublicKey(), 1)
	s, _, _ := l.Accept(context.Background())
	defer c.Close()
	defer s.Close()
	buf := make([]byte, 64<<10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(io.Discard, s)
	}()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		c.Write(buf)
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	<-done
}
