package link

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/secure"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

// One test body, both transports.
func TestLink(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Run("round trip", func(t *testing.T) { testRoundTrip(t, tr) })
			t.Run("frame bodies", func(t *testing.T) { testFrameBodies(t, tr) })
			t.Run("concurrent senders", func(t *testing.T) { testConcurrentSenders(t, tr) })
			t.Run("keepalive and RTT", func(t *testing.T) { testKeepalive(t, tr) })
			t.Run("close", func(t *testing.T) { testClose(t, tr) })
			t.Run("misbehaving peer", func(t *testing.T) { testMisbehavingPeer(t, tr) })
			t.Run("dead peer", func(t *testing.T) { testDeadPeer(t, tr) })
		})
	}
}

func testRoundTrip(t *testing.T, tr string) {
	tstest.CheckLeaks(t)
	a, b := tstest.KeyPair(t), tstest.KeyPair(t)
	c, s := linkPair(t, tr, testConfig(a), testConfig(b))
	if c.Remote() != b.Public || s.Remote() != a.Public {
		t.Fatalf("remotes: client sees %s, server sees %s", c.Remote().Short(), s.Remote().Short())
	}
	sizes := []int{0, 1, 100, 1500, 16 << 10, DefaultMaxFrame}
	for _, dir := range []struct {
		name     string
		from, to *Conn
	}{{"client to server", c, s}, {"server to client", s, c}} {
		for i, n := range sizes {
			msg := bytes.Repeat([]byte{byte(i + 1)}, n)
			typ := uint8(MinUserType + i)
			errc := make(chan error, 1)
			go func() { errc <- dir.from.Send(typ, msg) }()
			gotTyp, got, err := dir.to.Recv()
			if err != nil {
				t.Fatalf("%s size %d: %v", dir.name, n, err)
			}
			if gotTyp != typ || !bytes.Equal(got, msg) {
				t.Fatalf("%s size %d: got type %d, %d bytes", dir.name, n, gotTyp, len(got))
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.Send(MinUserType-1, nil); !errors.Is(err, ErrReservedType) {
		t.Fatalf("reserved type: %v", err)
	}
	if err := c.Send(MinUserType, make([]byte, DefaultMaxFrame+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	st := c.Stats()
	if st.FramesOut < uint64(len(sizes)) || st.BytesOut == 0 || st.Rejected != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// testFrameBodies: SendFrame and RecvFrame carry the frame body (type
// byte, payload) and mix with Send and Recv in order; SendFrame leaves
// body as it was and refuses what Send refuses; a relay forwards a body
// as it came.
func testFrameBodies(t *testing.T, tr string) {
	tstest.CheckLeaks(t)
	c, s := linkPair(t, tr, testConfig(tstest.KeyPair(t)), testConfig(tstest.KeyPair(t)))
	r, d := linkPair(t, tr, testConfig(tstest.KeyPair(t)), testConfig(tstest.KeyPair(t)))
	sizes := []int{0, 1, 100, 1500, 16 << 10, DefaultMaxFrame}
	bodies := make([][]byte, len(sizes))
	for i, n := range sizes {
		bodies[i] = append([]byte{uint8(MinUserType + i)}, bytes.Repeat([]byte{byte(i + 1)}, n)...)
	}
	errc := make(chan error, 1)
	go func() {
		for i, body := range bodies {
			body = bytes.Clone(body)
			sent := bytes.Clone(body)
			var err error
			if i%2 == 0 {
				err = c.SendFrame(body)
			} else {
				err = c.Send(body[0], body[1:])
			}
			if err == nil && !bytes.Equal(body, sent) {
				err = fmt.Errorf("frame %d: SendFrame changed its body", i)
			}
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	// s relays what it receives to d with SendFrame.
	go func() {
		for range sizes {
			body, err := s.RecvFrame()
			if err == nil {
				err = r.SendFrame(body)
			}
			if err != nil {
				t.Errorf("relay: %v", err)
				return
			}
		}
	}()
	for i := range sizes {
		var typ uint8
		var payload []byte
		var err error
		if i%2 == 0 {
			typ, payload, err = d.Recv()
		} else {
			var body []byte
			body, err = d.RecvFrame()
			if err == nil {
				typ, payload = body[0], body[1:]
			}
		}
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if want := bodies[i]; typ != want[0] || !bytes.Equal(payload, want[1:]) {
			t.Fatalf("frame %d: got type %d, %d bytes; want type %d, %d bytes", i, typ, len(payload), want[0], len(want)-1)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		body []byte
		want error
	}{
		{"empty", nil, ErrReservedType},
		{"reserved type", []byte{MinUserType - 1, 1, 2}, ErrReservedType},
		{"too large", make([]byte, 1+DefaultMaxFrame+1), ErrTooLarge},
	} {
		if len(tt.body) > 0 && tt.want == ErrTooLarge {
			tt.body[0] = MinUserType
		}
		if err := c.SendFrame(tt.body); !errors.Is(err, tt.want) {
			t.Errorf("SendFrame(%s): %v, want %v", tt.name, err, tt.want)
		}
	}
}

func testConcurrentSenders(t *testing.T, tr string) {
	tstest.CheckLeaks(t)
	c, s := linkPair(t, tr, testConfig(tstest.KeyPair(t)), testConfig(tstest.KeyPair(t)))
	const senders, perSender = 4, 200
	var wg sync.WaitGroup
	for w := range senders {
		wg.Go(func() {
			buf := make([]byte, 8+w*300)
			for i := range perSender {
				binary.BigEndian.PutUint32(buf, uint32(w))
				binary.BigEndian.PutUint32(buf[4:], uint32(i))
				if err := c.Send(MinUserType, buf); err != nil {
					t.Errorf("sender %d: %v", w, err)
					return
				}
			}
		})
	}
	next := make([]uint32, senders)
	for range senders * perSender {
		_, p, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		w, i := binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])
		if int(w) >= senders || i != next[w] || len(p) != 8+int(w)*300 {
			t.Fatalf("sender %d message %d (want %d), %d bytes", w, i, next[w], len(p))
		}
		next[w]++
	}
	wg.Wait()
}

func testKeepalive(t *testing.T, tr string) {
	tstest.CheckLeaks(t)
	ccfg, scfg := testConfig(tstest.KeyPair(t)), testConfig(tstest.KeyPair(t))
	// DeadAfter is 25 keepalive intervals: a loaded machine may delay a
	// few pings, but not a dozen in a row.
	ccfg.DeadAfter, scfg.DeadAfter = 500*time.Millisecond, 500*time.Millisecond
	c, s := linkPair(t, tr, ccfg, scfg)
	// No user traffic for several DeadAfter periods: keepalives keep the
	// link up (this wait is the property under test, not synchronisation).
	time.Sleep(3 * ccfg.DeadAfter)
	for _, l := range []*Conn{c, s} {
		if err := l.Err(); err != nil {
			t.Fatalf("idle link died: %v", err)
		}
		if l.RTT() <= 0 || l.RTT() > time.Second {
			t.Fatalf("RTT = %v", l.RTT())
		}
		if l.Stats().KeepalivesSent == 0 {
			t.Fatal("no keepalives sent")
		}
	}
}

func testClose(t *testing.T, tr string) {
	tstest.CheckLeaks(t)
	c, s := linkPair(t, tr, testConfig(tstest.KeyPair(t)), testConfig(tstest.KeyPair(t)))
	go c.Send(MinUserType, []byte("last words"))
	typ, p, err := s.Recv()
	if err != nil || typ != MinUserType || string(p) != "last words" {
		t.Fatalf("recv: %d %q %v", typ, p, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	if _, _, err := s.Recv(); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("peer Recv after Close: %v, want ErrPeerClosed", err)
	}
	<-s.Done()
	if !errors.Is(c.Err(), ErrClosed) || !errors.Is(s.Err(), ErrPeerClosed) {
		t.Fatalf("errors: local %v, peer %v", c.Err(), s.Err())
	}
	if err := c.Send(MinUserType, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	if _, _, err := c.Recv(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
}

// testMisbehavingPeer plays a peer that completes the handshake and then
// sends something bad: the link must close with ErrProtocol, count the
// rejection, and deliver nothing bad.
func testMisbehavingPeer(t *testing.T, tr string) {
	tests := []struct {
		name string
		// frames builds what the peer sends; good is how many valid user
		// frames precede the bad input.
		frames func(s *secure.Sealer) []byte
		good   int
	}{
		{"garbage", func(*secure.Sealer) []byte { return []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n") }, 0},
		{"forged body", func(s *secure.Sealer) []byte {
			f := encodeFrame(s, MinUserType, []byte("hello"), false)
			f[len(f)-20] ^= 1
			return f
		}, 0},
		{"link v1 clear frame", func(s *secure.Sealer) []byte {
			// Authenticated with this link's key and counter, but no
			// longer a valid frame: every frame is encrypted.
			return encodeFrame(s, MinUserType, []byte("hello"), true)
		}, 0},
		{"clear flag flipped", func(s *secure.Sealer) []byte {
			f := encodeFrame(s, MinUserType, []byte("hello"), false)
			f[0] |= 0x80
			return f
		}, 0},
		{"replayed", func(s *secure.Sealer) []byte {
			f := encodeFrame(s, MinUserType, []byte("once"), false)
			return append(f, f...)
		}, 1},
		{"reordered", func(s *secure.Sealer) []byte {
			f0 := encodeFrame(s, MinUserType, []byte("zero"), false)
			f1 := encodeFrame(s, MinUserType, []byte("one"), false)
			return append(f1, f0...)
		}, 0},
		{"oversized", func(s *secure.Sealer) []byte {
			var h [hdrLen]byte
			binary.BigEndian.PutUint32(h[:], uint32(DefaultMaxFrame+frameOverhead+1))
			return h[:]
		}, 0},
		{"undersized", func(s *secure.Sealer) []byte { return []byte{0, 0, 0, 3, 1, 2, 3} }, 0},
		{"unknown link type", func(s *secure.Sealer) []byte { return encodeFrame(s, 7, nil, false) }, 0},
		{"bad ping", func(s *secure.Sealer) []byte { return encodeFrame(s, typePing, []byte{1, 2, 3}, false) }, 0},
		{"bad pong", func(s *secure.Sealer) []byte { return encodeFrame(s, typePong, nil, false) }, 0},
		{"frame from another session", func(*secure.Sealer) []byte {
			other := otherSealer(t)
			return encodeFrame(other, MinUserType, []byte("hi"), false)
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tstest.CheckLeaks(t)
			a, b := tstest.KeyPair(t), tstest.KeyPair(t)
			ca, cb := connPair(t, tr)
			defer ca.Close()
			var logs bytes.Buffer // written by slog's handler under its lock
			cfg := testConfig(b)
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			ch := serverAsync(cb, cfg, nil)
			sess := rawClient(t, ca, a, b.Public)
			l := awaitLink(t, ch)
			defer l.Close()
			go func() {
				ca.Write(tt.frames(sess.Send))
				io.Copy(io.Discard, ca) // read pings until the link closes us
			}()
			for i := range tt.good {
				if _, _, err := l.Recv(); err != nil {
					t.Fatalf("good frame %d: %v", i, err)
				}
			}
			if typ, p, err := l.Recv(); !errors.Is(err, ErrProtocol) {
				t.Fatalf("Recv = %d %q %v, want ErrProtocol", typ, p, err)
			}
			<-l.Done()
			if !errors.Is(l.Err(), ErrProtocol) || l.Stats().Rejected != 1 {
				t.Fatalf("Err %v, stats %+v", l.Err(), l.Stats())
			}
			if log := logs.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "bad frame from peer") {
				t.Fatalf("no logged reason:\n%s", log)
			}
		})
	}
}

func otherSealer(t *testing.T) *secure.Sealer {
	a, b := tstest.KeyPair(t), tstest.KeyPair(t)
	msg1, st, err := secure.Initiate(secure.Config{Local: a, Prologue: Prologue}, b.Public)
	if err != nil {
		t.Fatal(err)
	}
	msg2, _, err := secure.Respond(secure.Config{Local: b, Prologue: Prologue}, msg1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := st.Finish(msg2)
	if err != nil {
		t.Fatal(err)
	}
	return s.Send
}

// testDeadPeer: a peer that handshakes and then goes silent is declared
// dead after DeadAfter, not before, and within DeadAfter plus scheduling
// slack (generous: a loaded machine running go test -race).
func testDeadPeer(t *testing.T, tr string) {
	tstest.CheckLeaks(t)
	a, b := tstest.KeyPair(t), tstest.KeyPair(t)
	ca, cb := connPair(t, tr)
	defer ca.Close()
	cfg := testConfig(b)
	cfg.KeepaliveInterval, cfg.DeadAfter = 50*time.Millisecond, 300*time.Millisecond
	// The read deadline is first set after the handshake, so the link
	// cannot be declared dead before start+DeadAfter.
	start := time.Now()
	ch := serverAsync(cb, cfg, nil)
	rawClient(t, ca, a, b.Public) // then never read nor write
	r := awaitLink(t, ch)
	defer r.Close()
	select {
	case <-r.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("dead peer not detected within 10s")
	}
	if el := time.Since(start); el < cfg.DeadAfter {
		t.Fatalf("declared dead after %v, before DeadAfter %v", el, cfg.DeadAfter)
	}
	if !errors.Is(r.Err(), ErrDead) {
		t.Fatalf("Err = %v, want ErrDead", r.Err())
	}
	if _, _, err := r.Recv(); !errors.Is(err, ErrDead) {
		t.Fatalf("Recv: %v", err)
	}
}

func TestHandshakeFailures(t *testing.T) {
	refuse := errors.New("not in peers list")
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			a, b, other := tstest.KeyPair(t), tstest.KeyPair(t), tstest.KeyPair(t)
			tests := []struct {
				name                 string
				expect               keys.PublicKey
				accept               func(keys.PublicKey) error
				clientErr, serverErr error
			}{
				{"wrong expected key", other.Public, nil, ErrHandshake, ErrHandshake},
				{"accept refuses", b.Public, func(keys.PublicKey) error { return refuse }, ErrRefused, refuse},
				{"accept checks key", b.Public, func(k keys.PublicKey) error {
					if k != a.Public {
						return refuse
					}
					return nil
				}, nil, nil},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					tstest.CheckLeaks(t)
					ca, cb := connPair(t, tr)
					cr, sr := handshakePair(t, ca, cb, testConfig(a), testConfig(b), tt.expect, tt.accept)
					if cr.c != nil {
						defer cr.c.Close()
					}
					if sr.c != nil {
						defer sr.c.Close()
					}
					if !errors.Is(cr.err, tt.clientErr) || (tt.clientErr == nil) != (cr.err == nil) {
						t.Errorf("client: %v, want %v", cr.err, tt.clientErr)
					}
					if !errors.Is(sr.err, tt.serverErr) || (tt.serverErr == nil) != (sr.err == nil) {
						t.Errorf("server: %v, want %v", sr.err, tt.serverErr)
					}
				})
			}
		})
	}
}

func TestHandshakeGarbageAndTimeouts(t *testing.T) {
	b := tstest.KeyPair(t)
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			for _, tt := range []struct {
				name  string
				input []byte
				want  error
			}{
				{"http request", []byte("GET / HTTP/1.1\r\n\r\n"), ErrHandshake},
				{"huge length", []byte{0xff, 0xff, 1, 2, 3}, ErrHandshake},
				{"zero length", []byte{0, 0}, ErrHandshake},
				{"right length, junk", append([]byte{0, secure.Msg1Len}, make([]byte, secure.Msg1Len)...), ErrHandshake},
				{"silence", nil, ErrHandshake},
			} {
				t.Run(tt.name, func(t *testing.T) {
					tstest.CheckLeaks(t)
					ca, cb := connPair(t, tr)
					defer ca.Close()
					cfg := testConfig(b)
					cfg.HandshakeTimeout = 200 * time.Millisecond
					go func() {
						if tt.input != nil {
							ca.Write(tt.input)
						}
						io.Copy(io.Discard, ca)
					}()
					l, err := Server(context.Background(), cb, cfg, nil)
					if !errors.Is(err, tt.want) || l != nil {
						t.Fatalf("Server = %v, %v; want %v", l, err, tt.want)
					}
				})
			}
			t.Run("context canceled", func(t *testing.T) {
				tstest.CheckLeaks(t)
				ca, cb := connPair(t, tr)
				defer cb.Close()
				ctx, cancel := context.WithCancel(context.Background())
				go func() {
					io.Copy(io.Discard, cb) // swallow msg1, never answer
				}()
				time.AfterFunc(20*time.Millisecond, cancel)
				start := time.Now()
				_, err := Client(ctx, ca, testConfig(tstest.KeyPair(t)), b.Public)
				if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
					t.Fatalf("Client = %v after %v", err, time.Since(start))
				}
			})
		})
	}
}

func TestConfigValidate(t *testing.T) {
	kp := tstest.KeyPair(t)
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"zero durations mean defaults", func(c *Config) { c.DeadAfter, c.KeepaliveInterval = 0, 0 }, true},
		{"no key", func(c *Config) { c.Local = keys.KeyPair{} }, false},
		{"dead before keepalive", func(c *Config) { c.DeadAfter, c.KeepaliveInterval = time.Second, 2*time.Second }, false},
		{"negative timeout", func(c *Config) { c.HandshakeTimeout = -1 }, false},
		{"negative max frame", func(c *Config) { c.MaxFrame = -1 }, false},
		{"huge max frame", func(c *Config) { c.MaxFrame = 1 << 31 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Local: kp}
			tt.mod(&c)
			err := c.Validate()
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("Validate = %v", err)
			}
			if err == nil && (c.DeadAfter == 0 || c.KeepaliveInterval == 0 || c.MaxFrame == 0 || c.Logger == nil) {
				t.Fatalf("defaults not filled: %+v", c)
			}
		})
	}
	ca, cb := net.Pipe()
	defer cb.Close()
	if _, err := Client(context.Background(), ca, Config{}, kp.Public); !errors.Is(err, ErrConfig) {
		t.Fatalf("Client with bad config: %v", err)
	}
	cc, cd := net.Pipe()
	defer cd.Close()
	if _, err := Client(context.Background(), cc, Config{Local: kp}, keys.PublicKey{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("Client with zero remote: %v", err)
	}
}

func TestRecvPayloadReuseDocumented(t *testing.T) {
	// Payloads are valid until the next Recv: copies taken before then
	// are intact even though buffers are recycled.
	tstest.CheckLeaks(t)
	c, s := linkPair(t, "pipe", testConfig(tstest.KeyPair(t)), testConfig(tstest.KeyPair(t)))
	go func() {
		for i := range 50 {
			c.Send(MinUserType, []byte(fmt.Sprintf("frame %03d", i)))
		}
	}()
	for i := range 50 {
		_, p, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("frame %03d", i); string(p) != want {
			t.Fatalf("got %q want %q", p, want)
		}
	}
}

// A peer that stops reading blocks Send (backpressure); Close must still
// return promptly and unblock the sender with ErrClosed.
func TestCloseUnblocksStuckSend(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tstest.CheckLeaks(t)
			a, b := tstest.KeyPair(t), tstest.KeyPair(t)
			ca, cb := connPair(t, tr)
			defer ca.Close()
			// testConfig's DeadAfter outlasts the test: the silent peer
			// must not get the link declared dead before Close.
			ch := serverAsync(cb, testConfig(b), nil)
			rawClient(t, ca, a, b.Public) // then never reads
			l := awaitLink(t, ch)
			defer l.Close() // on early failure: unblocks the sender
			sendErr := make(chan error, 1)
			go func() {
				payload := make([]byte, DefaultMaxFrame)
				for {
					if err := l.Send(MinUserType, payload); err != nil {
						sendErr <- err
						return
					}
				}
			}()
			// Wait until the sender is writing (over net.Pipe it then blocks
			// at once; over TCP once the socket buffers are full).
			tstest.WaitFor(t, "the sender to start", func() bool { return l.Stats().FramesOut >= 1 })
			start := time.Now()
			closed := make(chan struct{})
			go func() { l.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("Close blocked for 10s")
			}
			// Close waits at most closeTimeout for the close frame and
			// CloseLinger (2 s) for the silent peer; the rest is scheduling
			// slack on a loaded machine.
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("Close took %v", el)
			}
			if err := tstest.Await(t, sendErr, 10*time.Second, "Send to return after Close"); !errors.Is(err, ErrClosed) {
				t.Fatalf("Send: %v, want ErrClosed", err)
			}
		})
	}
}

// Close writes everything queued before it, then its close frame: the
// peer reads every frame and then ErrPeerClosed, not a bare EOF. Over TCP
// only: on a synchronous net.Pipe the peer's next keepalive write fails as
// soon as the closer has hung up, which (rightly) takes the link down with
// frames still unread.
func TestCloseFlushesQueuedFrames(t *testing.T) {
	for _, tr := range []string{"tcp"} {
		t.Run(tr, func(t *testing.T) {
			tstest.CheckLeaks(t)
			// The closer lingers as long as the test waits for the peer, so
			// the verdict does not depend on how fast the peer reads.
			ccfg := testConfig(tstest.KeyPair(t))
			ccfg.CloseLinger = 10 * time.Second
			c, s := linkPair(t, tr, ccfg, testConfig(tstest.KeyPair(t)))
			const frames = 200
			got := make(chan error, 1)
			go func() {
				for i := 0; i < frames; i++ {
					typ, p, err := s.Recv()
					if err != nil {
						got <- fmt.Errorf("frame %d: %w", i, err)
						return
					}
					if typ != MinUserType || len(p) != 1000 || p[0] != byte(i) {
						got <- fmt.Errorf("frame %d: type %d, %d bytes, first %d", i, typ, len(p), p[0])
						return
					}
				}
				_, _, err := s.Recv()
				got <- err
			}()
			payload := make([]byte, 1000)
			for i := 0; i < frames; i++ {
				payload[0] = byte(i)
				if err := c.Send(MinUserType, payload); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if err := tstest.Await(t, got, 10*time.Second, "the peer's reads to end after Close"); !errors.Is(err, ErrPeerClosed) {
				t.Fatalf("peer after Close: %v, want every frame then ErrPeerClosed", err)
			}
		})
	}
}
