package appsignal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

func tokenFor(id uint64) string { return fmt.Sprintf("tok-%d", id) }

type appEvent struct {
	id uint64
	ev Event
}

// harness is a server on a real listener with recording callbacks. Its
// Authorize accepts an app ID with the token tokenFor(ID).
type harness struct {
	srv         *Server
	network     string
	addr        string
	connects    chan Hello
	disconnects chan uint64
	events      chan appEvent
	serveDone   chan error
}

func listen(t testing.TB, network string) (net.Listener, string) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(tstest.SocketDir(t), "s.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln, ln.Addr().String()
}

func newHarness(t testing.TB, network string, mod func(*ServerConfig)) *harness {
	ln, addr := listen(t, network)
	return newHarnessOn(t, ln, network, addr, mod)
}

func newHarnessOn(t testing.TB, ln net.Listener, network, addr string, mod func(*ServerConfig)) *harness {
	t.Helper()
	h := &harness{
		network:     network,
		addr:        addr,
		connects:    make(chan Hello, 100),
		disconnects: make(chan uint64, 100),
		events:      make(chan appEvent, 100),
		serveDone:   make(chan error, 1),
	}
	cfg := ServerConfig{
		Logger: tstest.Logger(t, "server: "),
		Authorize: func(hl Hello) error {
			if hl.Token != tokenFor(hl.AppID) {
				return errors.New("wrong token for app ID")
			}
			return nil
		},
		OnConnect:    func(hl Hello) { h.connects <- hl },
		OnDisconnect: func(id uint64) { h.disconnects <- id },
		OnEvent:      func(id uint64, e Event) { h.events <- appEvent{id, e} },
	}
	if mod != nil {
		mod(&cfg)
	}
	h.srv = NewServer(cfg)
	go func() { h.serveDone <- h.srv.Serve(ln) }()
	t.Cleanup(func() { h.close(t) })
	return h
}

// close closes the server and checks Serve returned ErrClosed. Idempotent.
func (h *harness) close(t testing.TB) {
	t.Helper()
	if err := h.srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if h.serveDone != nil {
		if err := <-h.serveDone; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve returned %v, want ErrClosed", err)
		}
		h.serveDone = nil
	}
}

func (h *harness) waitConnect(t testing.TB, id uint64) Hello {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case hl := <-h.connects:
			if hl.AppID == id {
				return hl
			}
		case <-timeout:
			t.Fatalf("app %d did not connect", id)
		}
	}
}

func (h *harness) waitDisconnect(t testing.TB, id uint64) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case got := <-h.disconnects:
			if got == id {
				return
			}
		case <-timeout:
			t.Fatalf("app %d did not disconnect", id)
		}
	}
}

// runClient starts a real client for app id and waits until the server saw
// it connect. The client is stopped (and waited for) at cleanup.
func (h *harness) runClient(t testing.TB, id uint64, mod func(*ClientConfig)) *Client {
	t.Helper()
	cfg := ClientConfig{
		Network: h.network, Addr: h.addr, AppID: id, Token: tokenFor(id),
		Name: fmt.Sprintf("app%d", id), Logger: tstest.Logger(t, fmt.Sprintf("client %d: ", id)),
		MaxBackoff: 100 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	c := NewClient(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("client %d Run returned %v, want context.Canceled", id, err)
		}
	})
	h.waitConnect(t, id)
	tstest.WaitFor(t, "client sees its connection", c.Connected)
	return c
}

// raw is a hand-driven protocol peer on a real connection.
type raw struct {
	t testing.TB
	c net.Conn
	w *wire
}

func (h *harness) dialRaw(t testing.TB) *raw {
	t.Helper()
	c, err := net.Dial(h.network, h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, c: c, w: newWire(c, MaxFrameSize)}
}

func (r *raw) writeBytes(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

func (r *raw) send(m Message) {
	r.t.Helper()
	b, err := EncodeMessage(m)
	if err != nil {
		r.t.Fatal(err)
	}
	var buf bytes.Buffer
	WriteFrame(&buf, b)
	r.writeBytes(buf.Bytes())
}

func (r *raw) recv() Message {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := r.w.recv()
	if err != nil {
		r.t.Fatalf("raw recv: %v", err)
	}
	return m
}

// hello sends a hello for id with its right token and expects a Welcome.
func (r *raw) hello(id uint64) {
	r.t.Helper()
	r.send(Message{ID: 1, Payload: Hello{Version: ProtocolVersion, AppID: id, Name: "raw", Pid: 1, Token: tokenFor(id)}})
	if m := r.recv(); m.Kind() != KindWelcome || m.ID != 1 {
		r.t.Fatalf("got %#v, want welcome", m)
	}
}

// newHelloed checks for leaks and gives a server on a unix socket with
// one raw connection that said hello as id and was welcomed and reported
// connected.
func newHelloed(t *testing.T, id uint64) (*harness, *raw) {
	t.Helper()
	tstest.CheckLeaks(t)
	h := newHarness(t, "unix", nil)
	r := h.dialRaw(t)
	r.hello(id)
	h.waitConnect(t, id)
	return h, r
}

// drainUntilClosed reads until the server closes the connection and
// returns the messages it sent before.
func (r *raw) drainUntilClosed() []Message {
	r.t.Helper()
	var out []Message
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		m, err := r.w.recv()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) || isConnReset(err) {
				return out
			}
			r.t.Fatalf("waiting for close: %v", err)
		}
		out = append(out, m)
	}
}

func isConnReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func frame(t testing.TB, m Message) []byte {
	t.Helper()
	b, err := EncodeMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
