package socks

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// TestBoundAddress: a CONNECT's reply carries, as BND.ADDR and BND.PORT,
// the address socks-server's connection to the target is bound to (what
// the target sees as its peer), not 0.0.0.0:0.
func TestBoundAddress(t *testing.T) {
	tstest.CheckLeaks(t)
	peer := make(chan string, 1)
	target, served := tstest.ServeTCPOnce(t, func(c net.Conn) error {
		peer <- c.RemoteAddr().String()
		_, err := io.Copy(io.Discard, c)
		return err
	})
	e := newEnv(t, envOptions{})
	conn, err := net.Dial("tcp", e.proxy)
	if err != nil {
		t.Fatal(err)
	}
	bnd, err := socksHandshake(conn, "", "", cmdConnect, hostAddr(t, target))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	want := netip.MustParseAddrPort(<-peer)
	if bnd.IP != want.Addr() || bnd.Port != want.Port() {
		t.Errorf("BND = %v, want %v (the server's end of its connection to the target)", bnd, want)
	}
	if err := <-served; err != nil {
		t.Error(err)
	}
}

// TestOlderServer: a socks-server that knows stream header version 1 only
// closes a version 2 stream without a reply; the client asks again with
// version 1 (the application still gets its connection, with BND
// 0.0.0.0:0) and keeps to version 1 afterwards.
func TestOlderServer(t *testing.T) {
	tstest.CheckLeaks(t)
	const oldPort = 999
	e := newEnv(t, envOptions{client: func(c *ClientConfig) { c.ServerPort = oldPort }})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old, err := appnet.Connect(ctx, e.srvNode.path, "old-socks-server", oldPort)
	if err != nil {
		t.Fatal(err)
	}
	var v2 atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, _, err := old.Accept(ctx)
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var h [2]byte
				if _, err := io.ReadFull(c, h[:]); err != nil {
					return
				}
				if h[0] != streamVersion1 {
					v2.Add(1)
					return // what the old server did: close, no reply
				}
				if _, err := readAddr(c); err != nil {
					return
				}
				c.Write([]byte{1, 0, 0, 0, 0, 0})
				io.Copy(c, c)
			}()
		}
	}()
	defer func() { old.Close(); <-done }()

	for i := range 2 {
		conn, err := net.Dial("tcp", e.proxy)
		if err != nil {
			t.Fatal(err)
		}
		bnd, err := socksHandshake(conn, "", "", cmdConnect, addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 80})
		if err != nil {
			conn.Close()
			t.Fatalf("connection %d through an older server: %v", i, err)
		}
		if bnd != (addr{IP: netip.IPv4Unspecified()}) {
			t.Errorf("connection %d: BND = %v, want 0.0.0.0:0 (unknown)", i, bnd)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write([]byte("x"))
		b := make([]byte, 1)
		if _, err := io.ReadFull(conn, b); err != nil || b[0] != 'x' {
			t.Errorf("connection %d: echo %q, %v", i, b, err)
		}
		conn.Close()
	}
	if n := v2.Load(); n != 1 {
		t.Errorf("%d version 2 headers reached the old server, want 1 (then version 1 only)", n)
	}
}
