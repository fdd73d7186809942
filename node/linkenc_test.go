package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/node"
)

// wireTap records every byte a node writes on the connections it dials to
// one address: what a passive observer of that link sees in one direction.
type wireTap struct {
	mu  sync.Mutex
	buf []byte // guarded by mu
}

func (w *wireTap) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf)
}

type tappedConn struct {
	net.Conn
	tap *wireTap
}

func (c tappedConn) Write(p []byte) (int, error) {
	c.tap.mu.Lock()
	c.tap.buf = append(c.tap.buf, p...)
	c.tap.mu.Unlock()
	return c.Conn.Write(p)
}

// tapDial wraps a node's Dial so that writes on connections to addr are
// recorded in tap.
func tapDial(c *node.Config, addr string, tap *wireTap) {
	dial := c.Dial
	c.Dial = func(ctx context.Context, a string) (net.Conn, error) {
		conn, err := dial(ctx, a)
		if err != nil || a != addr {
			return conn, err
		}
		return tappedConn{Conn: conn, tap: tap}, nil
	}
}

// TestLinksHideWhatTheyCarry: on a line n0—n1—n2, a passive observer of the
// links n0→n1 and n1→n2 must not be able to match a flow's packets by their
// bytes. Every frame is encrypted per hop, so no 32-byte window of what n0
// wrote towards n1 appears in what n1 wrote towards n2 (session packets
// included: they are sealed end to end, and again on each link), and the
// application's plaintext appears on neither.
func TestLinksHideWhatTheyCarry(t *testing.T) {
	tstest.CheckLeaks(t)
	var ab, bc wireTap // n0→n1, n1→n2; the lower index dials
	m := meshtest.New(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3), Node: func(i int, c *node.Config) {
		switch i {
		case 0:
			tapDial(c, "n1", &ab)
		case 1:
			tapDial(c, "n2", &bc)
		}
	}})
	m.WaitReady()
	c := dialEcho(t, m, ctxT(t, 20*time.Second))
	// Random data: any window the two captures share comes from the
	// forwarding, not from repetition in the payload.
	msg := make([]byte, 64<<10)
	rand.Read(msg)
	go func() { c.Write(msg); c.(*node.Conn).CloseWrite() }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %v", err)
	}
	a, b := ab.bytes(), bc.bytes()
	if len(a) < len(msg) || len(b) < len(msg) {
		t.Fatalf("captured %d bytes on n0→n1 and %d on n1→n2, want at least %d each: are the taps on the links?", len(a), len(b), len(msg))
	}
	tstest.CheckUnlinkable(t, msg, "n0→n1", a, "n1→n2", b)
}
