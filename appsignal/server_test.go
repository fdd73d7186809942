package appsignal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// TestSession runs one full session (hello, ping, usage, event, shutdown)
// over each real transport.
func TestSession(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			tstest.CheckLeaks(t)
			h := newHarness(t, network, nil)
			shutdown := make(chan struct{})
			var shutdowns atomic.Int32
			c := h.runClient(t, 7, func(cfg *ClientConfig) {
				cfg.Usage = func() map[string]uint64 { return map[string]uint64{"requests": 5, "goroutines": 1000} }
				cfg.OnShutdown = func() {
					if shutdowns.Add(1) == 1 {
						close(shutdown)
					}
				}
			})
			ctx := context.Background()

			if !h.srv.Connected(7) || h.srv.Connected(8) {
				t.Fatal("Connected reports the wrong apps")
			}
			rtt, err := h.srv.Ping(ctx, 7)
			if err != nil || rtt <= 0 {
				t.Fatalf("Ping = %v, %v", rtt, err)
			}
			if _, err := h.srv.Ping(ctx, 8); !errors.Is(err, ErrNotConnected) {
				t.Fatalf("Ping of absent app: %v, want ErrNotConnected", err)
			}

			u, err := h.srv.Usage(ctx, 7)
			if err != nil {
				t.Fatal(err)
			}
			if u["requests"] != 5 || u["goroutines"] != 1000 {
				t.Errorf("app counters missing or not overriding: %v", u)
			}
			if u["heap_bytes"] == 0 || u["sys_bytes"] == 0 {
				t.Errorf("runtime counters missing: %v", u)
			}

			if err := c.SendEvent(Event{Kind: "ready", Text: "serving"}); err != nil {
				t.Fatal(err)
			}
			select {
			case e := <-h.events:
				if e.id != 7 || e.ev != (Event{Kind: "ready", Text: "serving"}) {
					t.Fatalf("event = %+v", e)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("event not delivered")
			}

			for i := 0; i < 2; i++ { // a repeated request is acked, the hook runs once
				if err := h.srv.Shutdown(ctx, 7); err != nil {
					t.Fatalf("Shutdown #%d: %v", i, err)
				}
			}
			<-shutdown
			if n := shutdowns.Load(); n != 1 {
				t.Fatalf("OnShutdown called %d times", n)
			}
			st := h.srv.Stats()
			if st.Accepted != 1 || st.Authorized != 1 || st.Active != 1 || len(st.Rejected) != 0 {
				t.Fatalf("stats = %+v", st)
			}
		})
	}
}

// TestServerRejectsBadClients: each misbehaving connection is closed with a
// counted reason, and a well-behaved app on the same server keeps working.
func TestServerRejectsBadClients(t *testing.T) {
	tstest.CheckLeaks(t)
	h := newHarness(t, "unix", func(c *ServerConfig) { c.HelloTimeout = 500 * time.Millisecond })
	h.runClient(t, 1, nil)
	h.runClient(t, 2, nil)

	hello := func(id uint64, token string, version uint16) []byte {
		return frame(t, Message{ID: 1, Payload: Hello{Version: version, AppID: id, Name: "bad", Pid: 9, Token: token}})
	}
	tests := []struct {
		name      string
		authedAs  uint64 // if non-zero, say a valid hello first
		send      []byte
		halfClose bool
		reason    string
		code      ErrorCode // expected Error before close; 0 = none expected
	}{
		{name: "http garbage", send: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), reason: ReasonFrameTooLarge, code: CodeTooLarge},
		{name: "4 GiB length", send: []byte{0xff, 0xff, 0xff, 0xff}, reason: ReasonFrameTooLarge, code: CodeTooLarge},
		{name: "malformed body", send: []byte{0, 0, 0, 2, 0xc1, 0xc1}, reason: ReasonMalformed, code: CodeMalformed},
		{name: "truncated frame", send: []byte{0, 0, 0, 9, 0x93}, halfClose: true, reason: ReasonTruncated},
		{name: "unknown kind before hello", send: []byte{0, 0, 0, 4, 0x93, 0x63, 0x05, 0x90}, reason: ReasonUnknownKind, code: CodeUnknownKind},
		{name: "ping before hello", send: frame(t, Message{ID: 4, Payload: Ping{}}), reason: ReasonNoHello, code: CodeProtocol},
		{name: "event before hello", send: frame(t, Message{Payload: Event{Kind: "ready"}}), reason: ReasonNoHello, code: CodeProtocol},
		{name: "bad version", send: hello(50, tokenFor(50), 2), reason: ReasonBadVersion, code: CodeBadVersion},
		{name: "wrong token", send: hello(51, "guess", ProtocolVersion), reason: ReasonUnauthorized, code: CodeUnauthorized},
		{name: "another app's id", send: hello(1, tokenFor(52), ProtocolVersion), reason: ReasonUnauthorized, code: CodeUnauthorized},
		{name: "no hello in time", reason: ReasonHelloTimeout, code: CodeProtocol},
		{name: "unknown kind after hello", authedAs: 60, send: []byte{0, 0, 0, 4, 0x93, 0x63, 0x05, 0x90}, reason: ReasonUnknownKind, code: CodeUnknownKind},
		{name: "malformed after hello", authedAs: 61, send: []byte{0, 0, 0, 3, 0x93, 0x03, 0x01}, reason: ReasonMalformed, code: CodeMalformed},
		{name: "4 GiB after hello", authedAs: 62, send: []byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}, reason: ReasonFrameTooLarge, code: CodeTooLarge},
		{name: "second hello", authedAs: 63, send: hello(63, tokenFor(63), ProtocolVersion), reason: ReasonProtocol, code: CodeProtocol},
		{name: "request from app", authedAs: 64, send: frame(t, Message{ID: 2, Payload: UsageRequest{}}), reason: ReasonProtocol, code: CodeProtocol},
		{name: "unsolicited welcome", authedAs: 65, send: frame(t, Message{ID: 2, Payload: Welcome{}}), reason: ReasonProtocol, code: CodeProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.srv.Stats().Rejected[tt.reason]
			r := h.dialRaw(t)
			if tt.authedAs != 0 {
				r.hello(tt.authedAs)
				h.waitConnect(t, tt.authedAs)
			}
			if len(tt.send) > 0 {
				r.writeBytes(tt.send)
			}
			if tt.halfClose {
				r.c.(*net.UnixConn).CloseWrite()
			}
			got := r.drainUntilClosed()
			if tt.code != 0 {
				if len(got) != 1 {
					t.Fatalf("got %d messages before close, want one Error: %#v", len(got), got)
				}
				e, ok := got[0].Payload.(Error)
				if !ok || e.Code != tt.code {
					t.Fatalf("got %#v, want Error code %d", got[0], tt.code)
				}
				if tt.code == CodeUnknownKind && got[0].ID != 5 {
					t.Errorf("unknown-kind error carries id %d, want the request's 5", got[0].ID)
				}
			} else if len(got) != 0 {
				t.Fatalf("unexpected messages %#v", got)
			}
			if n := h.srv.Stats().Rejected[tt.reason]; n != before+1 {
				t.Errorf("Rejected[%s] = %d, want %d", tt.reason, n, before+1)
			}
			if tt.authedAs != 0 {
				h.waitDisconnect(t, tt.authedAs)
			}
			for _, id := range []uint64{1, 2} {
				if _, err := h.srv.Ping(context.Background(), id); err != nil {
					t.Fatalf("good app %d no longer answers: %v", id, err)
				}
			}
		})
	}
	if st := h.srv.Stats(); st.Active != 2 {
		t.Errorf("Active = %d after bad clients, want 2", st.Active)
	}
}

// TestReplacedConnection: a second authorized hello for the same app ID
// takes over; the old connection is told and closed without a disconnect.
func TestReplacedConnection(t *testing.T) {
	tstest.CheckLeaks(t)
	h := newHarness(t, "unix", nil)
	a := h.dialRaw(t)
	a.hello(5)
	h.waitConnect(t, 5)
	b := h.dialRaw(t)
	b.hello(5)
	h.waitConnect(t, 5)

	got := a.drainUntilClosed()
	if len(got) != 1 || got[0].Kind() != KindError || got[0].Payload.(Error).Code != CodeReplaced {
		t.Fatalf("old connection got %#v, want Error replaced", got)
	}
	select {
	case id := <-h.disconnects:
		t.Fatalf("disconnect of %d reported for a replaced connection", id)
	default:
	}
	if st := h.srv.Stats(); st.Replaced != 1 || st.Active != 1 {
		t.Fatalf("stats = %+v", st)
	}

	pinged := make(chan error, 1)
	go func() { _, err := h.srv.Ping(context.Background(), 5); pinged <- err }()
	m := b.recv()
	if m.Kind() != KindPing {
		t.Fatalf("new connection got %v, want ping", m.Kind())
	}
	b.send(Message{ID: m.ID, Payload: Pong{}})
	if err := <-pinged; err != nil {
		t.Fatal(err)
	}
	b.c.Close()
	h.waitDisconnect(t, 5)
	if h.srv.Connected(5) {
		t.Fatal("still connected after close")
	}
}

func TestConcurrentPings(t *testing.T) {
	tstest.CheckLeaks(t)
	h := newHarness(t, "unix", nil)
	ids := []uint64{1, 2, 3}
	for _, id := range ids {
		h.runClient(t, id, nil)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				id := ids[rand.IntN(len(ids))]
				var err error
				if i%5 == 0 {
					_, err = h.srv.Usage(context.Background(), id)
				} else {
					_, err = h.srv.Ping(context.Background(), id)
				}
				if err != nil {
					errs <- fmt.Errorf("app %d: %w", id, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestRequestTimeoutAndErrors drives a hand-written app to check deadlines,
// late replies, typed error replies and wrong-kind replies.
func TestRequestTimeoutAndErrors(t *testing.T) {
	h, r := newHelloed(t, 9)

	// No answer in time: ErrTimeout, counted.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := h.srv.Ping(ctx, 9)
	cancel()
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Ping without answer: %v, want ErrTimeout", err)
	}
	if n := h.srv.Stats().Timeouts; n != 1 {
		t.Fatalf("Timeouts = %d", n)
	}
	late := r.recv()
	r.send(Message{ID: late.ID, Payload: Pong{}}) // late reply: dropped

	// Cancelled (not timed out): the context's error, not ErrTimeout.
	ctx, cancel = context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { _, err := h.srv.Ping(ctx, 9); res <- err }()
	r.recv()
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("cancelled Ping: %v", err)
	}

	// A typed Error reply maps to the sentinel.
	go func() { _, err := h.srv.Usage(context.Background(), 9); res <- err }()
	m := r.recv()
	if m.Kind() != KindUsageRequest {
		t.Fatalf("got %v", m.Kind())
	}
	r.send(Message{ID: m.ID, Payload: Error{Code: CodeUnknownKind, Message: "what is usage"}})
	err = <-res
	var e Error
	if !errors.Is(err, ErrUnknownKind) || !errors.As(err, &e) || e.Message != "what is usage" {
		t.Fatalf("Usage with Error reply: %v", err)
	}

	// An Error with id 0 is logged; the connection stays.
	r.send(Message{Payload: Error{Code: CodeInternal, Message: "disk full"}})

	// A reply of the wrong kind is a protocol violation: connection closed.
	go func() { _, err := h.srv.Usage(context.Background(), 9); res <- err }()
	m = r.recv()
	r.send(Message{ID: m.ID, Payload: Pong{}})
	if err := <-res; !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Usage answered with Pong: %v, want ErrNotConnected", err)
	}
	h.waitDisconnect(t, 9)
	if n := h.srv.Stats().Rejected[ReasonProtocol]; n != 1 {
		t.Fatalf("Rejected[protocol] = %d", n)
	}
}

func TestServerPingFromApp(t *testing.T) {
	_, r := newHelloed(t, 4)
	r.send(Message{ID: 77, Payload: Ping{}})
	if m := r.recv(); m.Kind() != KindPong || m.ID != 77 {
		t.Fatalf("got %#v, want pong 77", m)
	}
}

func TestServerClose(t *testing.T) {
	h, r := newHelloed(t, 3)
	res := make(chan error, 1)
	go func() { _, err := h.srv.Ping(context.Background(), 3); res <- err }()
	r.recv() // the ping is in flight, never answered
	h.close(t)
	if err := <-res; !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNotConnected) {
		t.Fatalf("in-flight Ping after Close: %v", err)
	}
	if _, err := h.srv.Ping(context.Background(), 3); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ping after Close: %v, want ErrClosed", err)
	}
	ln, _ := listen(t, "unix")
	if err := h.srv.Serve(ln); !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
	if err := h.srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	r.drainUntilClosed()
}

func TestServeSeveralListeners(t *testing.T) {
	tstest.CheckLeaks(t)
	h := newHarness(t, "unix", nil)
	ln, addr := listen(t, "tcp")
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ln) }()
	h.runClient(t, 1, nil)
	h2 := &harness{network: "tcp", addr: addr, connects: h.connects}
	h2.runClient(t, 2, nil)
	for _, id := range []uint64{1, 2} {
		if _, err := h.srv.Ping(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	h.close(t)
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("second Serve returned %v", err)
	}
}

func TestNilAuthorizeRefuses(t *testing.T) {
	tstest.CheckLeaks(t)
	h := newHarness(t, "unix", func(c *ServerConfig) { c.Authorize = nil })
	r := h.dialRaw(t)
	r.send(Message{ID: 1, Payload: Hello{Version: ProtocolVersion, AppID: 1, Token: tokenFor(1)}})
	got := r.drainUntilClosed()
	if len(got) != 1 || got[0].Payload.(Error).Code != CodeUnauthorized {
		t.Fatalf("got %#v", got)
	}
}

// FuzzServerConn feeds arbitrary bytes to a server connection over an
// in-memory pipe; the server must never panic and must close cleanly.
func FuzzServerConn(f *testing.F) {
	hello := frame(f, Message{ID: 1, Payload: Hello{Version: ProtocolVersion, AppID: 1, Name: "f", Pid: 1, Token: tokenFor(1)}})
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add(hello)
	for _, m := range allKinds {
		f.Add(frame(f, m))
		f.Add(cat(hello, frame(f, m)))
	}
	f.Add(cat(hello, []byte{0, 0, 0, 4, 0x93, 0x63, 0x05, 0x90}))
	f.Add(cat(hello, frame(f, Message{Payload: Event{Kind: "ready"}}), frame(f, Message{ID: 3, Payload: Ping{}}), []byte{0, 0, 0, 9}))
	f.Add(cat(hello, frame(f, Message{ID: 5, Payload: Pong{}}), frame(f, Message{Payload: Error{Code: 1}})))

	f.Fuzz(func(t *testing.T, in []byte) {
		srv := NewServer(ServerConfig{
			Authorize: func(h Hello) error {
				return map[bool]error{true: nil, false: ErrUnauthorized}[h.Token == tokenFor(h.AppID)]
			},
			OnEvent:      func(uint64, Event) {},
			OnConnect:    func(Hello) {},
			OnDisconnect: func(uint64) {},
			HelloTimeout: time.Second,
		})
		ln := tstest.NewPipeListener()
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		c, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			io.Copy(io.Discard, c)
		}()
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		c.Write(in) // fails early if the server closed the connection
		c.Close()
		<-drained
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-served; !errors.Is(err, ErrClosed) {
			t.Fatalf("Serve: %v", err)
		}
	})
}

func TestServerConfigValidate(t *testing.T) {
	ok := func(Hello) error { return nil }
	tests := []struct {
		name    string
		cfg     ServerConfig
		wantErr bool
	}{
		{"minimal", ServerConfig{Authorize: ok}, false},
		{"full", ServerConfig{Authorize: ok, MaxFrame: 1 << 20, HelloTimeout: time.Second}, false},
		{"no authorize", ServerConfig{}, true},
		{"negative frame", ServerConfig{Authorize: ok, MaxFrame: -1}, true},
		{"tiny frame", ServerConfig{Authorize: ok, MaxFrame: 10}, true},
		{"huge frame", ServerConfig{Authorize: ok, MaxFrame: 1 << 31}, true},
		{"negative timeout", ServerConfig{Authorize: ok, HelloTimeout: -1}, true},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrBadServerConfig)) {
			t.Errorf("%s: Validate = %v, wantErr %v", tt.name, err, tt.wantErr)
		}
	}
}

func TestExpiredContextKeepsConnection(t *testing.T) {
	tstest.CheckLeaks(t)
	h := newHarness(t, "unix", nil)
	h.runClient(t, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	if _, err := h.srv.Ping(ctx, 1); !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping with expired ctx: %v", err)
	}
	if _, err := h.srv.Ping(context.Background(), 1); err != nil {
		t.Fatalf("connection harmed by an expired ctx: %v", err)
	}
}

// flakyListener returns the queued errors from Accept before delegating.
type flakyListener struct {
	*tstest.PipeListener
	errs chan error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	select {
	case err := <-l.errs:
		return nil, err
	default:
		return l.PipeListener.Accept()
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "accept timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestServeAcceptErrors(t *testing.T) {
	tstest.CheckLeaks(t)
	srv := NewServer(ServerConfig{Authorize: func(Hello) error { return nil }, Logger: tstest.Logger(t, "server: ")})
	defer srv.Close()

	// Temporary errors are retried; the listener keeps serving.
	ln := &flakyListener{tstest.NewPipeListener(), make(chan error, 2)}
	ln.errs <- timeoutErr{}
	ln.errs <- &net.OpError{Op: "accept", Net: "unix", Err: syscall.EMFILE}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	c, err := ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	r := &raw{t: t, c: c, w: newWire(c, MaxFrameSize)}
	r.hello(1)
	c.Close()

	// A permanent error ends Serve with it.
	boom := errors.New("listener broken")
	ln2 := &flakyListener{tstest.NewPipeListener(), make(chan error, 1)}
	ln2.errs <- boom
	if err := srv.Serve(ln2); !errors.Is(err, boom) {
		t.Fatalf("Serve = %v, want %v", err, boom)
	}
	srv.Close()
	if err := <-served; !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve after Close = %v", err)
	}
}
