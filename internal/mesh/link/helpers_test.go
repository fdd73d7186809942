package link

import (
	"context"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/secure"
	"github.com/skywire-mesh/skywire/keys"
)

var transports = []string{"pipe", "tcp"}

// testBound bounds every test that uses connPair: a test still running
// after it fails with a goroutine dump and has its connections closed,
// which unblocks every Send, Recv, handshake and Close on them. No test
// needs more than a few seconds even on a loaded machine.
const testBound = 30 * time.Second

// watchdog closes conns and fails t if t runs longer than testBound.
func watchdog(t testing.TB, conns ...net.Conn) {
	var mu sync.Mutex
	ended := false
	timer := time.AfterFunc(testBound, func() {
		mu.Lock()
		defer mu.Unlock()
		if ended {
			return
		}
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("test still running after %v: closing its connections; goroutines:\n%s", testBound, buf)
		for _, c := range conns {
			c.Close()
		}
	})
	t.Cleanup(func() {
		timer.Stop()
		mu.Lock()
		ended = true
		mu.Unlock()
	})
}

// connPair returns two connected net.Conns over the named transport; see
// watchdog for the bound on the test.
func connPair(t testing.TB, transport string) (net.Conn, net.Conn) {
	t.Helper()
	a, b := rawConnPair(t, transport)
	watchdog(t, a, b)
	return a, b
}

func rawConnPair(t testing.TB, transport string) (net.Conn, net.Conn) {
	t.Helper()
	switch transport {
	case "pipe":
		a, b := net.Pipe()
		return a, b
	case "tcp":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		type res struct {
			c   net.Conn
			err error
		}
		ch := make(chan res, 1)
		go func() {
			c, err := ln.Accept()
			ch <- res{c, err}
		}()
		a, err := net.DialTimeout("tcp", ln.Addr().String(), testBound)
		if err != nil {
			t.Fatal(err)
		}
		var r res
		select {
		case r = <-ch:
		case <-time.After(testBound):
			a.Close()
			t.Fatal("accept of a dialled loopback connection timed out")
		}
		if r.err != nil {
			a.Close()
			t.Fatal(r.err)
		}
		return a, r.c
	}
	t.Fatalf("unknown transport %q", transport)
	return nil, nil
}

func testConfig(kp keys.KeyPair) Config {
	c := DefaultConfig(kp)
	c.KeepaliveInterval = 20 * time.Millisecond
	// Long enough that a loaded machine (go test -race on 2 busy cores)
	// never starves a link into ErrDead; tests of dead peers set their own.
	c.DeadAfter = 10 * time.Second
	return c
}

type linkResult struct {
	c   *Conn
	err error
}

// serverAsync runs Server over conn in a goroutine; its result arrives on
// the channel.
func serverAsync(conn net.Conn, cfg Config, accept func(keys.PublicKey) error) <-chan linkResult {
	ch := make(chan linkResult, 1)
	go func() {
		c, err := Server(context.Background(), conn, cfg, accept)
		ch <- linkResult{c, err}
	}()
	return ch
}

// handshakePair runs Client and Server concurrently over conns a and b.
func handshakePair(t testing.TB, a, b net.Conn, ccfg, scfg Config, expect keys.PublicKey, accept func(keys.PublicKey) error) (client, server linkResult) {
	t.Helper()
	ch := serverAsync(b, scfg, accept)
	c, err := Client(context.Background(), a, ccfg, expect)
	client = linkResult{c, err}
	select {
	case server = <-ch:
	case <-time.After(testBound):
		t.Fatal("server handshake did not return") // HandshakeTimeout bounds it
	}
	return client, server
}

// awaitLink waits for the server link a goroutine sends on ch and fails
// the test if the handshake failed.
func awaitLink(t testing.TB, ch <-chan linkResult) *Conn {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.c
	case <-time.After(testBound):
		t.Fatal("server handshake did not return") // HandshakeTimeout bounds it
		return nil
	}
}

// linkPair returns an established client and server link over transport;
// both are closed at the end of the test.
func linkPair(t testing.TB, transport string, ccfg, scfg Config) (*Conn, *Conn) {
	t.Helper()
	a, b := connPair(t, transport)
	cr, sr := handshakePair(t, a, b, ccfg, scfg, scfg.Local.Public, nil)
	if cr.err != nil || sr.err != nil {
		t.Fatalf("handshake: client %v, server %v", cr.err, sr.err)
	}
	t.Cleanup(func() { cr.c.Close(); sr.c.Close() })
	return cr.c, sr.c
}

// rawClient does the client handshake by hand over conn and returns the
// session, for tests that play a misbehaving peer.
func rawClient(t testing.TB, conn net.Conn, local keys.KeyPair, remote keys.PublicKey) *secure.Session {
	t.Helper()
	msg1, st, err := secure.Initiate(secure.Config{Local: local, Prologue: Prologue}, remote)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.SetDeadline(time.Now().Add(testBound)); err != nil {
		t.Fatal(err)
	}
	defer conn.SetDeadline(time.Time{})
	if err := writeMsg(conn, msg1); err != nil {
		t.Fatal(err)
	}
	msg2, err := readMsg(conn)
	if err != nil {
		t.Fatal(err)
	}
	s, err := st.Finish(msg2)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// encodeFrame encodes one frame exactly as a Conn would.
func encodeFrame(s *secure.Sealer, typ uint8, payload []byte, clear bool) []byte {
	c := &Conn{send: s, cfg: Config{MaxFrame: maxMaxFrame}}
	c.appendFrameLocked(typ, payload, clear)
	return c.wbuf
}
