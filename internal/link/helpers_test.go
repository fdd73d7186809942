package link

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/keys"
	"github.com/skywire-mesh/skywire/internal/secure"
)

// leakCheck fails the test if goroutines started during it are still
// running shortly after it ends.
func leakCheck(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

var transports = []string{"pipe", "tcp"}

// connPair returns two connected net.Conns over the named transport.
func connPair(t testing.TB, transport string) (net.Conn, net.Conn) {
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
		a, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		return a, r.c
	}
	t.Fatalf("unknown transport %q", transport)
	return nil, nil
}

func mustKey(t testing.TB) keys.KeyPair {
	t.Helper()
	kp, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func testConfig(kp keys.KeyPair) Config {
	c := DefaultConfig(kp)
	c.KeepaliveInterval = 20 * time.Millisecond
	c.DeadAfter = 2 * time.Second
	return c
}

type linkResult struct {
	c   *Conn
	err error
}

// handshakePair runs Client and Server concurrently over conns a and b.
func handshakePair(t testing.TB, a, b net.Conn, ccfg, scfg Config, expect keys.PublicKey, accept func(keys.PublicKey) error) (client, server linkResult) {
	t.Helper()
	ch := make(chan linkResult, 1)
	go func() {
		c, err := Server(context.Background(), b, scfg, accept)
		ch <- linkResult{c, err}
	}()
	c, err := Client(context.Background(), a, ccfg, expect)
	client = linkResult{c, err}
	server = <-ch
	return client, server
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
