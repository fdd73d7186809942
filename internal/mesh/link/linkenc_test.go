package link

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/skywire-mesh/skywire/internal/mesh/secure"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// appendFrameLocked is what encodeFrame (helpers_test.go) calls. clear
// false appends a frame as a Conn does; clear true appends a frame of link
// v1's authenticated-only kind (hdr bit 31 set, type|payload|tag in the
// clear), which links no longer accept: tests use it as bad input.
func (c *Conn) appendFrameLocked(typ uint8, payload []byte, clear bool) {
	if !clear {
		c.appendFrame(typ, payload)
		return
	}
	off := len(c.wbuf)
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, 1<<31|uint32(frameOverhead+len(payload)))
	c.wbuf = append(c.wbuf, typ)
	c.wbuf = append(c.wbuf, payload...)
	c.wbuf = c.send.Seal(c.wbuf, nil, c.wbuf[off:]) // v1 authenticated the frame without encrypting it
}

// tapConn records what is written to a connection: what an observer of
// that link sees in one direction.
type tapConn struct {
	net.Conn
	mu    sync.Mutex
	wrote []byte // guarded by mu
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.wrote = append(c.wrote, p...)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *tapConn) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.wrote)
}

// tappedLinkPair is linkPair with the client's writes recorded.
func tappedLinkPair(t *testing.T, tr string) (client, server *Conn, tap *tapConn) {
	t.Helper()
	a, b := connPair(t, tr)
	tap = &tapConn{Conn: a}
	ccfg, scfg := testConfig(tstest.KeyPair(t)), testConfig(tstest.KeyPair(t))
	cr, sr := handshakePair(t, tap, b, ccfg, scfg, scfg.Local.Public, nil)
	if cr.err != nil || sr.err != nil {
		t.Fatalf("handshake: client %v, server %v", cr.err, sr.err)
	}
	t.Cleanup(func() { cr.c.Close(); sr.c.Close() })
	return cr.c, sr.c, tap
}

// A relay R forwarding frames from link A→R to link R→B: what crosses the
// second link shares no 32-byte window with what crossed the first, and the
// payloads (random, like end-to-end ciphertext) cross neither in the clear.
func TestRelayedFramesDiffer(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tstest.CheckLeaks(t)
			a, r1, tapA := tappedLinkPair(t, tr)
			r2, dst, tapR := tappedLinkPair(t, tr)
			var sent []byte
			for _, n := range []int{0, 32, 1400, 16 << 10} {
				p := make([]byte, n)
				rand.Read(p)
				sent = append(sent, p...)
				errc := make(chan error, 2)
				go func() { errc <- a.Send(MinUserType, p) }()
				go func() {
					typ, got, err := r1.Recv()
					if err == nil {
						err = r2.Send(typ, got)
					}
					errc <- err
				}()
				if _, got, err := dst.Recv(); err != nil || !bytes.Equal(got, p) {
					t.Fatalf("%d bytes: got %d bytes, %v", n, len(got), err)
				}
				for range 2 {
					if err := <-errc; err != nil {
						t.Fatal(err)
					}
				}
			}
			onA, onR := tapA.bytes(), tapR.bytes()
			tstest.CheckUnlinkable(t, sent, "A→R", onA, "R→B", onR)
		})
	}
}

// A link v1 client (route traffic in the clear) is refused by a v2 server
// with a reason on both sides: the server's error wraps ErrVersion and
// names both versions; the old client gets an authenticated refusal
// (ErrRefused), not a failed handshake. A v2 client to a v1 server fails
// the handshake (the v1 server cannot read msg1 and says nothing).
func TestOldVersionRefused(t *testing.T) {
	tstest.CheckLeaks(t)
	old, srv := tstest.KeyPair(t), tstest.KeyPair(t)
	ca, cb := connPair(t, "pipe")
	defer ca.Close()
	ch := serverAsync(cb, testConfig(srv), nil)
	msg1, st, err := secure.Initiate(secure.Config{Local: old, Prologue: prologueV1}, srv.Public)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeMsg(ca, msg1); err != nil {
		t.Fatal(err)
	}
	msg2, err := readMsg(ca)
	if err != nil {
		t.Fatalf("v1 client got no answer: %v", err)
	}
	if _, err := st.Finish(msg2); !errors.Is(err, secure.ErrRefused) {
		t.Fatalf("v1 client: Finish = %v, want ErrRefused", err)
	}
	r := <-ch
	if r.err == nil {
		r.c.Close()
		t.Fatal("v2 server accepted a v1 client")
	}
	if !errors.Is(r.err, ErrVersion) || !errors.Is(r.err, ErrRefused) {
		t.Fatalf("server: %v, want ErrVersion and ErrRefused", r.err)
	}

	// v2 client, v1 server.
	ca, cb = connPair(t, "pipe")
	defer ca.Close()
	go func() {
		defer cb.Close()
		msg1, err := readMsg(cb)
		if err != nil {
			return
		}
		if _, _, err := secure.Respond(secure.Config{Local: srv, Prologue: prologueV1}, msg1); err == nil {
			t.Error("a v1 server completed a v2 handshake")
		}
	}()
	if c, err := Client(context.Background(), ca, testConfig(old), srv.Public); !errors.Is(err, ErrHandshake) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("v2 client to v1 server: %v, want ErrHandshake", err)
	}
}
