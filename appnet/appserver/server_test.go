package appserver_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/appnet/internal/wire"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

type env struct {
	mesh *fakemesh.Node
	srv  *appserver.Server
	path string
}

func start(tb testing.TB, n *fakemesh.Network, opts ...appserver.Option) *env {
	tb.Helper()
	mn, err := n.NewNode()
	if err != nil {
		tb.Fatal(err)
	}
	srv, path, _ := fakemesh.ServeApps(tb, mn, nil, opts...)
	return &env{mesh: mn, srv: srv, path: path}
}

func (e *env) raw(tb testing.TB) net.Conn {
	tb.Helper()
	c, err := net.Dial("unix", e.path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func send(tb testing.TB, c net.Conn, m wire.Message) {
	tb.Helper()
	b, err := wire.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		tb.Fatal(err)
	}
}

func recv(tb testing.TB, c net.Conn) wire.Message {
	tb.Helper()
	t, body, _, err := wire.ReadFrame(c, nil, wire.MaxFrame)
	if err != nil {
		tb.Fatalf("read frame: %v", err)
	}
	m, err := wire.Decode(t, body)
	if err != nil {
		tb.Fatalf("decode %s: %v", t, err)
	}
	return m
}

// register sends a hello on a raw connection and returns the token.
func register(tb testing.TB, c net.Conn, name string, port uint16) wire.Token {
	tb.Helper()
	send(tb, c, &wire.Hello{Version: wire.Version, Name: name, Port: wire.Port(port)})
	w, ok := recv(tb, c).(*wire.Welcome)
	if !ok {
		tb.Fatal("no welcome")
	}
	return w.Token
}

// closedByNode reads c until EOF; anything but a possible error frame
// fails the test.
func closedByNode(tb testing.TB, c net.Conn) {
	tb.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		var op *net.OpError
		if !errors.As(err, &op) { // connection reset is fine too
			tb.Fatalf("read: %v", err)
		}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		tb.Fatal("node did not close the connection")
	}
	if len(b) > 0 && (len(b) < 5 || wire.Type(b[4]) != wire.TypeError) {
		tb.Fatalf("node sent %x before closing, want nothing or an error frame", b)
	}
}

// stillServes checks that the server serves a new app and a stream.
func stillServes(tb testing.TB, e *env) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := appnet.Connect(ctx, e.path, "probe", 0)
	if err != nil {
		tb.Fatalf("server stopped serving: %v", err)
	}
	defer c.Close()
	if _, err := c.Dial(ctx, e.mesh.PublicKey(), 1); !errors.Is(err, appnet.ErrRefused) {
		tb.Fatalf("probe dial: %v, want ErrRefused", err)
	}
}

func frame(typ byte, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(1+len(body)))
	return append(append(b, typ), body...)
}

func TestHelloRefusals(t *testing.T) {
	tstest.CheckLeaks(t)
	e := start(t, fakemesh.New())
	register(t, e.raw(t), "holder", 7)
	tests := []struct {
		name  string
		hello wire.Hello
		code  appnet.Code
	}{
		{"version", wire.Hello{Version: 2, Name: "x"}, appnet.CodeVersion},
		{"version zero", wire.Hello{Name: "x"}, appnet.CodeVersion},
		{"empty name", wire.Hello{Version: 1}, appnet.CodeBadName},
		{"bad name", wire.Hello{Version: 1, Name: "../etc"}, appnet.CodeBadName},
		{"port in use", wire.Hello{Version: 1, Name: "x", Port: 7}, appnet.CodePortInUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.raw(t)
			send(t, c, &tt.hello)
			m, ok := recv(t, c).(*wire.Error)
			if !ok || appnet.Code(m.Code) != tt.code {
				t.Fatalf("reply %#v, want error code %d", m, tt.code)
			}
			closedByNode(t, c)
		})
	}
	if apps := e.srv.Apps(); len(apps) != 1 || apps[0].Name != "holder" {
		t.Errorf("Apps() = %+v, want only holder", apps)
	}
}

func TestBadFirstFrame(t *testing.T) {
	tstest.CheckLeaks(t)
	e := start(t, fakemesh.New())
	tests := []struct {
		name string
		in   []byte
	}{
		{"text", []byte("GET / HTTP/1.1\r\n\r\n")},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 1}},
		{"over the open limit", frame(byte(wire.TypeHello), make([]byte, wire.MaxOpenFrame))},
		{"zero length", []byte{0, 0, 0, 0}},
		{"unknown type", frame(0x7f, []byte{0x80})},
		{"hello not a map", frame(byte(wire.TypeHello), []byte{0x93, 1, 2, 3})},
		{"node message", frame(byte(wire.TypeOK), nil)},
		{"datagram first", frame(byte(wire.TypeDatagram), make([]byte, 40))},
		{"truncated", []byte{0, 0, 0, 9, 1, 0x81}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.raw(t)
			c.Write(tt.in)
			if tt.name == "truncated" {
				c.(*net.UnixConn).CloseWrite()
			}
			closedByNode(t, c)
			stillServes(t, e)
		})
	}
}

func TestHelloTimeout(t *testing.T) {
	tstest.CheckLeaks(t)
	e := start(t, fakemesh.New(), appserver.WithHelloTimeout(50*time.Millisecond))
	closedByNode(t, e.raw(t)) // sends nothing
	stillServes(t, e)
}

func TestBadControlFrames(t *testing.T) {
	tstest.CheckLeaks(t)
	e := start(t, fakemesh.New())
	other, err := appnet.Connect(context.Background(), e.path, "bystander", 9)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tests := []struct {
		name string
		port uint16
		in   []byte
	}{
		{"unknown type", 7, frame(0x7f, nil)},
		{"huge length", 7, []byte{0xff, 0xff, 0xff, 0xff}},
		{"over the control limit", 7, binary.BigEndian.AppendUint32(nil, wire.MaxFrame+1)},
		{"second hello", 7, frame(byte(wire.TypeHello), []byte{0x80})},
		{"short datagram", 7, frame(byte(wire.TypeDatagram), make([]byte, 33))},
		{"datagram without a port", 0, frame(byte(wire.TypeDatagram), make([]byte, 40))},
		{"zero length", 7, []byte{0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.raw(t)
			register(t, c, "victim", tt.port)
			c.Write(tt.in)
			closedByNode(t, c)
			// The victim's port is released; the bystander is untouched.
			tstest.WaitFor(t, "one app left", func() bool { return len(e.srv.Apps()) == 1 })
			if apps := e.srv.Apps(); len(apps) != 1 || apps[0].Name != "bystander" {
				t.Fatalf("Apps() = %+v, want only the bystander", apps)
			}
			stillServes(t, e)
			select {
			case <-other.Done():
				t.Fatal("bystander lost its node")
			default:
			}
		})
	}
}

func TestBadStreamHeaders(t *testing.T) {
	tstest.CheckLeaks(t)
	e := start(t, fakemesh.New())
	tok := register(t, e.raw(t), "app", 7)
	var stranger wire.Token
	stranger[0] = 1
	tests := []struct {
		name string
		msg  wire.Message
		code appnet.Code
	}{
		{"dial with unknown token", &wire.Dial{Token: stranger, Key: wire.Key(e.mesh.PublicKey()), Port: 7}, appnet.CodeBadRequest},
		{"accept with unknown token", &wire.Accept{Token: stranger, ID: 1}, appnet.CodeBadRequest},
		{"accept of unknown ID", &wire.Accept{Token: tok, ID: 99}, appnet.CodeUnknownStream},
		{"dial port zero", &wire.Dial{Token: tok, Key: wire.Key(e.mesh.PublicKey())}, appnet.CodeBadRequest},
		{"dial unknown node", &wire.Dial{Token: tok, Key: wire.Key{1}, Port: 7}, appnet.CodeNoRoute},
		{"welcome from an app", &wire.Welcome{Version: 1}, appnet.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.raw(t)
			send(t, c, tt.msg)
			m, ok := recv(t, c).(*wire.Error)
			if !ok || appnet.Code(m.Code) != tt.code {
				t.Fatalf("reply %#v, want error code %d", m, tt.code)
			}
			closedByNode(t, c)
		})
	}
	t.Run("oversized dial", func(t *testing.T) {
		c := e.raw(t)
		c.Write(frame(byte(wire.TypeDial), bytes.Repeat([]byte{0x80}, wire.MaxOpenFrame)))
		closedByNode(t, c)
	})
	stillServes(t, e)
}

// TestAcceptIsOneTime: an incoming stream can be accepted once.
func TestAcceptIsOneTime(t *testing.T) {
	tstest.CheckLeaks(t)
	e := start(t, fakemesh.New())
	ctrl := e.raw(t)
	tok := register(t, ctrl, "app", 7)
	dialer, err := appnet.Connect(context.Background(), e.path, "dialer", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dialer.Close()
	out, err := dialer.Dial(context.Background(), e.mesh.PublicKey(), 7)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	in, ok := recv(t, ctrl).(*wire.Incoming)
	if !ok || keys.PublicKey(in.Key) != e.mesh.PublicKey() {
		t.Fatalf("announcement %#v", in)
	}
	first := e.raw(t)
	send(t, first, &wire.Accept{Token: tok, ID: in.ID})
	if _, ok := recv(t, first).(*wire.OK); !ok {
		t.Fatal("first accept refused")
	}
	second := e.raw(t)
	send(t, second, &wire.Accept{Token: tok, ID: in.ID})
	if m, ok := recv(t, second).(*wire.Error); !ok || appnet.Code(m.Code) != appnet.CodeUnknownStream {
		t.Fatalf("second accept: %#v, want unknown stream", m)
	}
	// Raw bytes flow on the accepted connection right after ok.
	out.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(first, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if apps := e.srv.Apps(); apps[0].Name != "app" || apps[0].Streams != 1 || apps[0].BytesIn != 4 {
		t.Errorf("Apps()[0] = %+v, want one stream and 4 bytes in", apps[0])
	}
}

func TestCloseIsIdempotentAndServeAfterClose(t *testing.T) {
	tstest.CheckLeaks(t)
	mn, _ := fakemesh.New().NewNode()
	srv := appserver.New(mn, nil)
	srv.Close()
	srv.Close()
	ln := tstest.NewPipeListener()
	if err := srv.Serve(ln); !errors.Is(err, appserver.ErrServerClosed) {
		t.Errorf("Serve after Close: %v", err)
	}
}

// FuzzServe feeds arbitrary bytes to a server as a new connection: it
// must never panic, must read all of them or close the connection, and
// must close the connection once the app side has.
//
// Each input runs to completion before the next: the server has read all
// of it (and is waiting for more) or closed the connection, then the
// client closes, then the server closes its end and unregisters any app
// the input registered. No input waits for a timeout.
func FuzzServe(f *testing.F) {
	for _, m := range []wire.Message{
		&wire.Hello{Version: 1, Name: "fuzz", Port: 7},
		&wire.Hello{Version: 1, Name: "fuzz"},
		&wire.Dial{Port: 7},
		&wire.Accept{ID: 1},
		&wire.Datagram{Port: 7, Payload: []byte("x")},
	} {
		b, _ := wire.Marshal(m)
		f.Add(b)
	}
	hello, _ := wire.Marshal(&wire.Hello{Version: 1, Name: "fuzz", Port: 7})
	dgram, _ := wire.Marshal(&wire.Datagram{Port: 7, Payload: []byte("x")})
	f.Add(append(append([]byte{}, hello...), dgram...))
	f.Add(append(append([]byte{}, hello...), 0xff, 0xff, 0xff, 0xff))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})

	mn, _ := fakemesh.New().NewNode()
	srv := appserver.New(mn, nil, appserver.WithHelloTimeout(100*time.Millisecond))
	ln := tstest.NewPipeListener()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	f.Cleanup(func() {
		srv.Close()
		<-served
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		c, sc := net.Pipe()
		w := newWatchedConn(sc, len(in))
		if err := ln.Push(w); err != nil {
			t.Fatal(err)
		}
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			io.Copy(io.Discard, c) // the replies, until c is closed
		}()
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			c.Write(in) // fails early if the server closed the connection
		}()
		tstest.Await(t, w.settled, 20*time.Second, "the server to read all of the input or close the connection")
		c.Close()
		<-wrote
		<-drained
		tstest.Await(t, w.closed, 20*time.Second, "the server to close the connection after the app closed it")
		tstest.WaitFor(t, "the app of the input to unregister", func() bool { return len(srv.Apps()) == 0 })
	})
}

// watchedConn is the server's end of a connection whose client writes
// want bytes. settled is closed when the server has read them all and
// reads again (so it has acted on all of them) or closes the connection;
// closed when it closes the connection.
type watchedConn struct {
	net.Conn
	want                  int64
	read                  atomic.Int64
	settled, closed       chan struct{}
	settleOnce, closeOnce sync.Once
}

func newWatchedConn(c net.Conn, want int) *watchedConn {
	return &watchedConn{Conn: c, want: int64(want), settled: make(chan struct{}), closed: make(chan struct{})}
}

func (w *watchedConn) settle() { w.settleOnce.Do(func() { close(w.settled) }) }

func (w *watchedConn) Read(b []byte) (int, error) {
	if w.read.Load() >= w.want {
		w.settle()
	}
	n, err := w.Conn.Read(b)
	w.read.Add(int64(n))
	return n, err
}

func (w *watchedConn) Close() error {
	w.settle()
	w.closeOnce.Do(func() { close(w.closed) })
	return w.Conn.Close()
}
