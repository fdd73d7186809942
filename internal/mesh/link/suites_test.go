package link

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/secure"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

var (
	bothSuites = []secure.Suite{secure.AES256GCM, secure.ChaCha20Poly1305}
	chachaOnly = []secure.Suite{secure.ChaCha20Poly1305}
)

// Links agree on the AEAD: AES-256-GCM when both ends offer it, else
// ChaCha20-Poly1305; a client of an earlier release (handshake version 1)
// still links, with ChaCha20-Poly1305.
func TestLinkSuites(t *testing.T) {
	tests := []struct {
		name           string
		client, server []secure.Suite
		v1Client       bool
		want           secure.Suite
	}{
		{"both AES", bothSuites, bothSuites, false, secure.AES256GCM},
		{"client without AES", chachaOnly, bothSuites, false, secure.ChaCha20Poly1305},
		{"server without AES", bothSuites, chachaOnly, false, secure.ChaCha20Poly1305},
		{"client of an earlier release", nil, bothSuites, true, secure.ChaCha20Poly1305},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tstest.CheckLeaks(t)
			ccfg, scfg := testConfig(tstest.KeyPair(t)), testConfig(tstest.KeyPair(t))
			ccfg.Suites, scfg.Suites, ccfg.handshakeV1 = tt.client, tt.server, tt.v1Client
			c, s := linkPair(t, "tcp", ccfg, scfg)
			if c.Suite() != tt.want || s.Suite() != tt.want {
				t.Fatalf("client %v, server %v; want %v", c.Suite(), s.Suite(), tt.want)
			}
			sendRecv(t, c, s, 20, 1400)
			sendRecv(t, s, c, 20, 1400)
		})
	}
}

// sendRecv sends n random frames of size bytes from one link end and
// checks that the other receives them in order.
func sendRecv(t *testing.T, from, to *Conn, n, size int) {
	t.Helper()
	recvFrames(t, to, sendFrames(from, n, size))
}

// sendFrames sends n random frames of size bytes from a link end in the
// background; the returned channel yields the frames, then the error.
func sendFrames(from *Conn, n, size int) <-chan any {
	ch := make(chan any, n+1)
	go func() {
		for range n {
			p := make([]byte, size)
			rand.Read(p)
			ch <- p
			if err := from.Send(MinUserType, p); err != nil {
				ch <- err
				return
			}
		}
		ch <- error(nil)
	}()
	return ch
}

// recvFrames receives the frames of sendFrames in order and checks them.
func recvFrames(t *testing.T, to *Conn, sent <-chan any) {
	t.Helper()
	for i := 0; ; i++ {
		switch v := (<-sent).(type) {
		case error:
			t.Fatalf("send after %d frames: %v", i, v)
		case nil:
			return
		case []byte:
			_, got, err := to.Recv()
			if err != nil || !bytes.Equal(got, v) {
				t.Fatalf("frame %d: %d bytes, %v", i, len(got), err)
			}
		}
	}
}

// Both directions of a link re-key after the same bytes without a message
// and the stream goes on intact, with either suite, while both ends send
// at once (the read and write paths re-key independently).
func TestLinkRekeysMidStream(t *testing.T) {
	t.Cleanup(secure.SetRekeyAfterForTest(64 << 10))
	for _, suites := range [][]secure.Suite{bothSuites, chachaOnly} {
		t.Run(fmt.Sprint(suites[0]), func(t *testing.T) {
			tstest.CheckLeaks(t)
			ccfg, scfg := testConfig(tstest.KeyPair(t)), testConfig(tstest.KeyPair(t))
			ccfg.Suites, scfg.Suites = suites, suites
			c, s := linkPair(t, "tcp", ccfg, scfg)
			toS, toC := sendFrames(c, 200, 16<<10), sendFrames(s, 200, 16<<10)
			recvFrames(t, s, toS)
			recvFrames(t, c, toC)
			// 200 × 16 KiB of payload (plus type bytes) is 50 re-keys at
			// 64 KiB; keepalives add a few.
			c.wmu.Lock()
			sent := c.send.Rekeys()
			c.wmu.Unlock()
			if sent < 50 {
				t.Fatalf("client re-keyed %d times sending 3.2 MiB at 64 KiB per key", sent)
			}
		})
	}
}

// CloseNow does not linger: with a peer that never reads nor hangs up (a
// raw handshake, then silence) and a linger of an hour, it returns, where
// Close would wait the hour.
func TestCloseNowDoesNotLinger(t *testing.T) {
	tstest.CheckLeaks(t)
	a, b := tstest.KeyPair(t), tstest.KeyPair(t)
	ca, cb := connPair(t, "tcp")
	defer ca.Close()
	cfg := testConfig(b)
	cfg.CloseLinger, cfg.DeadAfter = time.Hour, time.Hour // nor declared dead meanwhile
	ch := serverAsync(cb, cfg, nil)
	rawClient(t, ca, a, b.Public) // then never reads, never closes
	l := awaitLink(t, ch)
	done := make(chan error, 1)
	go func() { done <- l.CloseNow() }()
	if err := tstest.Await(t, done, 30*time.Second, "CloseNow to return"); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(l.Err(), ErrClosed) {
		t.Fatalf("after CloseNow: %v, want ErrClosed", l.Err())
	}
}
