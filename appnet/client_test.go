package appnet_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

func TestRegister(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	a := newNode(t, n, "a")
	c := a.connect(t, "socks-server", 1080)
	if got, want := c.LocalKey(), a.mesh.PublicKey(); got != want {
		t.Errorf("LocalKey = %s, want the node's key %s", got, want)
	}
	apps := a.srv.Apps()
	if len(apps) != 1 {
		t.Fatalf("Apps() = %v, want one app", appNames(apps))
	}
	if got := apps[0]; got.Name != "socks-server" || got.Port != 1080 || got.PID != os.Getpid() {
		t.Errorf("Apps()[0] = %+v, want socks-server:1080 with pid %d", got, os.Getpid())
	}
	streams, packets := a.mesh.Ports()
	if len(streams) != 1 || len(packets) != 1 {
		t.Errorf("mesh ports = %v %v, want the app's port for streams and datagrams", streams, packets)
	}
	c.Close()
	tstest.WaitFor(t, "app unregistered", func() bool { return len(a.srv.Apps()) == 0 })
	if streams, packets := a.mesh.Ports(); len(streams)+len(packets) != 0 {
		t.Errorf("mesh ports after Close = %v %v, want none", streams, packets)
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if !errors.Is(c.Err(), appnet.ErrClosed) {
		t.Errorf("Err after Close = %v, want ErrClosed", c.Err())
	}
}

func TestRegisterErrors(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	a := newNode(t, n, "a")
	a.connect(t, "holder", 7)
	a.connect(t, "dialer-only", 0)
	a.connect(t, "dialer-only", 0) // names need not be unique; ports must
	tests := []struct {
		name, app string
		port      uint16
		want      error
		code      appnet.Code
	}{
		{"port in use", "other", 7, appnet.ErrPortInUse, appnet.CodePortInUse},
		{"empty name", "", 8, appnet.ErrBadName, appnet.CodeBadName},
		{"name with space", "a b", 8, appnet.ErrBadName, appnet.CodeBadName},
		{"name too long", string(bytes.Repeat([]byte("x"), 65)), 8, appnet.ErrBadName, appnet.CodeBadName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := appnet.Connect(ctxT(t, 5*time.Second), a.path, tt.app, tt.port)
			if err == nil {
				c.Close()
				t.Fatal("Connect succeeded")
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			var e *appnet.Error
			if !errors.As(err, &e) || e.Code != tt.code {
				t.Errorf("err = %#v, want *appnet.Error with code %d", err, tt.code)
			}
		})
	}
	if got := len(a.srv.Apps()); got != 3 {
		t.Errorf("%d apps after refusals, want 3", got)
	}
}

func TestConnectEnvAndMissingSocket(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	a := newNode(t, n, "a")
	t.Setenv(appnet.EnvNodeSocket, a.path)
	c, err := appnet.Connect(ctxT(t, 5*time.Second), "", "env-app", 0)
	if err != nil {
		t.Fatalf("Connect with %s: %v", appnet.EnvNodeSocket, err)
	}
	c.Close()
	t.Setenv(appnet.EnvNodeSocket, "")
	if _, err := appnet.Connect(ctxT(t, 5*time.Second), "", "env-app", 0); err == nil {
		t.Error("Connect with no path and no env succeeded")
	}
	if _, err := appnet.Connect(ctxT(t, 5*time.Second), a.path+".missing", "x", 0); err == nil {
		t.Error("Connect to a missing socket succeeded")
	}
}

// pair returns a server app on port 7 and a client app, on two nodes or on
// one node (a stream to the node's own key).
func pair(t *testing.T, sameNode bool) (srv, cli *appnet.Client) {
	srv, cli, _, _ = pairNodes(t, sameNode)
	return srv, cli
}

func pairNodes(t *testing.T, sameNode bool) (srv, cli *appnet.Client, a, b *node) {
	n := fakemesh.New()
	a = newNode(t, n, "a")
	b = a
	if !sameNode {
		b = newNode(t, n, "b")
	}
	return a.connect(t, "server", 7), b.connect(t, "client", 0), a, b
}

func TestStreamBothWaysWithHalfClose(t *testing.T) {
	for _, tt := range []struct {
		name     string
		sameNode bool
	}{{"two nodes", false}, {"same node", true}} {
		t.Run(tt.name, func(t *testing.T) {
			tstest.CheckLeaks(t)
			srv, cli := pair(t, tt.sameNode)
			ctx := ctxT(t, 10*time.Second)
			conn, err := cli.Dial(ctx, srv.LocalKey(), 7)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer conn.Close()
			in, from, err := srv.Accept(ctx)
			if err != nil {
				t.Fatalf("Accept: %v", err)
			}
			defer in.Close()
			if from != cli.LocalKey() {
				t.Errorf("Accept from %s, want %s", from.Short(), cli.LocalKey().Short())
			}
			if ra := conn.RemoteAddr().(appnet.Addr); ra.Key != srv.LocalKey() || ra.Port != 7 {
				t.Errorf("RemoteAddr = %v", ra)
			}
			// Client sends a request and half-closes; the server reads it
			// to EOF, then answers on the still-open direction.
			if _, err := conn.Write([]byte("request")); err != nil {
				t.Fatal(err)
			}
			if err := conn.(*appnet.Conn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(in)
			if err != nil || string(got) != "request" {
				t.Fatalf("server read %q, %v; want request, EOF", got, err)
			}
			if _, err := in.Write([]byte("response")); err != nil {
				t.Fatalf("write after the peer's half-close: %v", err)
			}
			in.(*appnet.Conn).CloseWrite()
			got, err = io.ReadAll(conn)
			if err != nil || string(got) != "response" {
				t.Fatalf("client read %q, %v; want response, EOF", got, err)
			}
			conn.Close()
			in.Close()
		})
	}
}

// echo accepts streams and echoes each until EOF, then half-closes. It
// returns when Accept fails; wait for it with the returned channel.
func TestConcurrentStreams(t *testing.T) {
	tstest.CheckLeaks(t)
	srv, cli := pair(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	echoed := tstest.ServeStreams(ctx, srv.Accept, tstest.Echo)
	defer func() { cancel(); <-echoed }()
	const streams = 200
	errs := make(chan error, streams)
	for i := 0; i < streams; i++ {
		go func() {
			errs <- func() error {
				conn, err := cli.Dial(ctx, srv.LocalKey(), 7)
				if err != nil {
					return err
				}
				defer conn.Close()
				msg := make([]byte, 4096+i)
				rand.Read(msg)
				return tstest.CheckEcho(conn, msg)
			}()
		}()
	}
	for i := 0; i < streams; i++ {
		if err := <-errs; err != nil {
			t.Errorf("stream: %v", err)
		}
	}
}

func TestLargeStreamSHA256(t *testing.T) {
	tstest.CheckLeaks(t)
	size := 50 << 20
	if testing.Short() {
		size = 5 << 20
	}
	srv, cli, a, b := pairNodes(t, false)
	ctx := ctxT(t, 60*time.Second)
	conn, in := dialAccept(t, ctx, cli, srv, 7)
	defer conn.Close()
	defer in.Close()
	sent := make(chan [32]byte, 1)
	go func() {
		h := sha256.New()
		chunk := make([]byte, 256<<10)
		for left := size; left > 0; left -= len(chunk) {
			b := chunk[:min(len(chunk), left)]
			rand.Read(b)
			h.Write(b)
			if _, err := conn.Write(b); err != nil {
				break
			}
		}
		conn.(*appnet.Conn).CloseWrite()
		sent <- [32]byte(h.Sum(nil))
	}()
	h := sha256.New()
	n, err := io.Copy(h, in)
	if err != nil {
		t.Fatalf("read after %d bytes: %v", n, err)
	}
	if n != int64(size) {
		t.Fatalf("read %d bytes, want %d", n, size)
	}
	if want := <-sent; [32]byte(h.Sum(nil)) != want {
		t.Fatal("SHA-256 of received bytes differs from sent")
	}
	// Each node's counters saw every byte of its app.
	if got := b.srv.Apps()[0].BytesOut; got != uint64(size) {
		t.Errorf("client's node counted %d bytes out, want %d", got, size)
	}
	if got := a.srv.Apps()[0].BytesIn; got != uint64(size) {
		t.Errorf("server's node counted %d bytes in, want %d", got, size)
	}
}

// TestDatagrams runs with the node handing datagrams to the app server as
// they arrive (appserver.PacketFuncMesh, as a real node does) and with
// the app server reading them from the port (ReadFrom).
func TestDatagrams(t *testing.T) {
	t.Run("pushed", func(t *testing.T) {
		tstest.CheckLeaks(t) // first: its check runs after the nodes' cleanups
		n := fakemesh.New()
		testDatagrams(t, newNode(t, n, "a"), newNode(t, n, "b"))
	})
	t.Run("queued", func(t *testing.T) {
		tstest.CheckLeaks(t)
		n := fakemesh.New()
		testDatagrams(t, newQueuedNode(t, n, "a"), newQueuedNode(t, n, "b"))
	})
}

func testDatagrams(t *testing.T, a, b *node) {
	vpnA, vpnB := a.connect(t, "vpn-server", 9), b.connect(t, "vpn-client", 10)
	dialOnly := b.connect(t, "dialer", 0)
	ctx := ctxT(t, 10*time.Second)

	for _, size := range []int{0, 1, 1400, appnet.MaxDatagram} {
		msg := make([]byte, size)
		rand.Read(msg)
		if err := vpnB.SendDatagram(vpnA.LocalKey(), 9, msg); err != nil {
			t.Fatalf("SendDatagram(%d bytes): %v", size, err)
		}
		got, from, port, err := vpnA.ReadDatagram(ctx)
		if err != nil {
			t.Fatalf("ReadDatagram: %v", err)
		}
		if !bytes.Equal(got, msg) || from != vpnB.LocalKey() || port != 10 {
			t.Fatalf("got %d bytes from %s:%d, want %d bytes from %s:10", len(got), from.Short(), port, size, vpnB.LocalKey().Short())
		}
	}
	// Reply path.
	if err := vpnA.SendDatagram(vpnB.LocalKey(), 10, []byte("pong")); err != nil {
		t.Fatal(err)
	}
	if got, _, port, err := vpnB.ReadDatagram(ctx); err != nil || string(got) != "pong" || port != 9 {
		t.Fatalf("reply: %q from port %d, %v", got, port, err)
	}
	// Errors.
	if err := vpnB.SendDatagram(vpnA.LocalKey(), 9, make([]byte, appnet.MaxDatagram+1)); !errors.Is(err, appnet.ErrTooLarge) {
		t.Errorf("oversized datagram: %v, want ErrTooLarge", err)
	}
	if err := dialOnly.SendDatagram(vpnA.LocalKey(), 9, nil); !errors.Is(err, appnet.ErrNoPort) {
		t.Errorf("datagram from a portless app: %v, want ErrNoPort", err)
	}
	if _, _, _, err := dialOnly.ReadDatagram(ctx); !errors.Is(err, appnet.ErrNoPort) {
		t.Errorf("ReadDatagram of a portless app: %v, want ErrNoPort", err)
	}
	if _, _, err := dialOnly.Accept(ctx); !errors.Is(err, appnet.ErrNoPort) {
		t.Errorf("Accept of a portless app: %v, want ErrNoPort", err)
	}
	// The node counts a datagram just after queueing it for the app, so
	// the app may have read it first: wait for the count.
	tstest.WaitFor(t, "vpn-server's counters to say 4 datagrams in, 1 out", func() bool {
		info := a.srv.Apps()
		return len(info) == 1 && info[0].DatagramsIn == 4 && info[0].DatagramsOut == 1
	})
}

func TestDialErrors(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	a, b := newNode(t, n, "a"), newNode(t, n, "b")
	a.connect(t, "server", 7)
	cli := b.connect(t, "client", 0)
	cut := newNode(t, n, "cut")
	cut.connect(t, "server", 7)
	n.Partition(b.mesh.PublicKey(), cut.mesh.PublicKey())
	stranger, _ := keys.Generate()

	tests := []struct {
		name   string
		remote keys.PublicKey
		port   uint16
		want   error
		code   appnet.Code
	}{
		{"no listener on the port", a.mesh.PublicKey(), 8, appnet.ErrRefused, appnet.CodeRefused},
		{"unknown node", stranger.Public, 7, appnet.ErrNoRoute, appnet.CodeNoRoute},
		{"partitioned node", cut.mesh.PublicKey(), 7, appnet.ErrNoRoute, appnet.CodeNoRoute},
		{"port zero", a.mesh.PublicKey(), 0, appnet.ErrBadRequest, appnet.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			conn, err := cli.Dial(ctxT(t, 5*time.Second), tt.remote, tt.port)
			if err == nil {
				conn.Close()
				t.Fatal("Dial succeeded")
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("error took %v, want it fast", d)
			}
			var e *appnet.Error
			if !errors.Is(err, tt.want) || !errors.As(err, &e) || e.Code != tt.code || appnet.CodeOf(err) != tt.code {
				t.Errorf("err = %v, want %v (code %d)", err, tt.want, tt.code)
			}
		})
	}
	t.Run("canceled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := cli.Dial(ctx, a.mesh.PublicKey(), 7); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

func TestAppDiesReleasesPortAndStreams(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	a, b := newNode(t, n, "a"), newNode(t, n, "b")
	ctx := ctxT(t, 10*time.Second)
	dying, err := appnet.Connect(ctx, a.path, "dying", 7)
	if err != nil {
		t.Fatal(err)
	}
	peer := b.connect(t, "peer", 8)
	// One stream each way, both with bytes in flight.
	in, acc := stream(t, ctx, peer, dying, a.mesh.PublicKey(), 7)
	out, far := stream(t, ctx, dying, peer, b.mesh.PublicKey(), 8)

	// The app writes, half-closes and then its registration goes away
	// (as when a sender exits right after its last write). Established
	// streams live on their own connections: what was written must all
	// arrive, and the far side sees EOF once the app's stream connections
	// close (a dead process's are closed by the kernel).
	payload := bytes.Repeat([]byte("last words "), 20000)
	if _, err := out.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := out.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	dying.Close()
	out.Close()
	acc.Close()
	for name, c := range map[string]net.Conn{"dialed": in, "accepted": far} {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil {
			t.Errorf("%s stream on the far side: read %v, want EOF", name, err)
		}
		if name == "accepted" && !bytes.Equal(got, payload) {
			t.Errorf("far side got %d of the %d bytes written before the app left", len(got), len(payload))
		}
	}
	tstest.WaitFor(t, "port 7 released", func() bool {
		c, err := appnet.Connect(ctx, a.path, "again", 7)
		if err != nil {
			if !errors.Is(err, appnet.ErrPortInUse) {
				t.Fatalf("reconnect: %v", err)
			}
			return false
		}
		c.Close()
		return true
	})
}

func TestNodeGoesAway(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	a := newNode(t, n, "a")
	c := a.connect(t, "app", 7)
	accepted := make(chan error, 1)
	go func() {
		_, _, err := c.Accept(context.Background())
		accepted <- err
	}()
	a.srv.Close()
	tstest.Await(t, c.Done(), 5*time.Second, "Done to close after the node went away")
	if err := <-accepted; !errors.Is(err, appnet.ErrClosed) {
		t.Errorf("Accept: %v, want ErrClosed", err)
	}
	if c.Err() == nil {
		t.Error("Err() is nil after the node went away")
	}
	if _, err := c.Dial(ctxT(t, time.Second), a.mesh.PublicKey(), 7); !errors.Is(err, appnet.ErrClosed) {
		t.Errorf("Dial after node gone: %v, want ErrClosed", err)
	}
	if err := c.SendDatagram(a.mesh.PublicKey(), 7, nil); !errors.Is(err, appnet.ErrClosed) {
		t.Errorf("SendDatagram after node gone: %v, want ErrClosed", err)
	}
}

func TestUnacceptedStreamExpires(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	a := newNode(t, n, "a", appserver.WithAcceptTimeout(50*time.Millisecond))
	lazy := a.connect(t, "lazy", 7)
	cli := a.connect(t, "client", 0)
	conn, err := cli.Dial(ctxT(t, 5*time.Second), lazy.LocalKey(), 7)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("read of an expired stream: %v, want EOF", err)
	}
	// The announcement is still queued in the client; Accept skips the
	// expired stream and waits for the next.
	if _, _, err := lazy.Accept(ctxT(t, 100*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Accept: %v, want the context's deadline", err)
	}
}

func TestCodeOf(t *testing.T) {
	tests := []struct {
		err  error
		want appnet.Code
	}{
		{nil, appnet.CodeOK},
		{appnet.ErrPortInUse, appnet.CodePortInUse},
		{errors.Join(errors.New("x"), appnet.ErrNoRoute), appnet.CodeNoRoute},
		{&appnet.Error{Code: appnet.CodeRefused}, appnet.CodeRefused},
		{context.DeadlineExceeded, appnet.CodeTimeout},
		{os.ErrDeadlineExceeded, appnet.CodeTimeout},
		{net.ErrClosed, appnet.CodeClosed},
		{errors.New("disk on fire"), appnet.CodeInternal},
	}
	for _, tt := range tests {
		if got := appnet.CodeOf(tt.err); got != tt.want {
			t.Errorf("CodeOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if err := appnet.Code(200).Err(); !errors.Is(err, appnet.ErrInternal) {
		t.Errorf("unknown code: %v, want ErrInternal", err)
	}
	e := &appnet.Error{Op: "dial x", Code: appnet.CodeTimeout, Msg: "slow"}
	if !e.Timeout() || !errors.Is(e, appnet.ErrTimeout) {
		t.Error("timeout error does not say so")
	}
}

// TestDialTimeout: a mesh dial that does not finish within the server's
// dial timeout comes back as ErrTimeout (code 6).
func TestDialTimeout(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	a := newNode(t, n, "a", appserver.WithDialTimeout(100*time.Millisecond))
	b := newNode(t, n, "b")
	// A listener on b that nobody accepts from: once its queue is full,
	// dials to it wait.
	l, err := b.mesh.Listen(9)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cli := a.connect(t, "client", 0)
	ctx := ctxT(t, 10*time.Second)
	for i := 0; ; i++ {
		conn, err := cli.Dial(ctx, b.mesh.PublicKey(), 9)
		if err == nil {
			defer conn.Close()
			if i > 1000 {
				t.Fatal("the fake listener's queue never filled")
			}
			continue
		}
		if !errors.Is(err, appnet.ErrTimeout) || appnet.CodeOf(err) != appnet.CodeTimeout {
			t.Fatalf("dial %d: %v, want ErrTimeout", i, err)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%v is not a net.Error timeout", err)
		}
		break
	}
}

func TestStreamLimit(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	a := newNode(t, n, "a", appserver.WithLimits(4, 2))
	srv := a.connect(t, "server", 7)
	cli := a.connect(t, "client", 0)
	ctx := ctxT(t, 10*time.Second)
	for i := 0; i < 2; i++ {
		c, err := cli.Dial(ctx, srv.LocalKey(), 7)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		defer c.Close()
	}
	if _, err := cli.Dial(ctx, srv.LocalKey(), 7); !errors.Is(err, appnet.ErrLimit) {
		t.Errorf("third stream: %v, want ErrLimit", err)
	}
}

func TestDatagramsDroppedWhenNotRead(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	a := newNode(t, n, "a")
	slow, fast := a.connect(t, "slow", 1), a.connect(t, "fast", 2)
	floodUntilDropped(t, fast, slow, []byte("flood"), 100)
	// The queue still holds what arrived first.
	if _, _, port, err := slow.ReadDatagram(ctxT(t, time.Second)); err != nil || port != 2 {
		t.Errorf("ReadDatagram after drops: port %d, %v", port, err)
	}
}

// floodUntilDropped sends batches of batch datagrams from fast to port 1
// of slow, which nobody reads, until slow reports a drop (within 10s).
func floodUntilDropped(t *testing.T, fast, slow *appnet.Client, payload []byte, batch int) {
	t.Helper()
	// A hang guard only: under two make tests at once the client's queue
	// took longer than 10 s to fill.
	deadline := time.Now().Add(tstest.Scaled(time.Minute))
	for {
		if d, _ := slow.Dropped(); d > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no datagram dropped although nobody reads")
		}
		for i := 0; i < batch; i++ {
			if err := fast.SendDatagram(slow.LocalKey(), 1, payload); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Millisecond) // let the node deliver the batch
	}
}

// Large datagrams that nobody reads fill the queue up to its byte bound
// (4 MiB), long before its count bound: memory stays bounded.
func TestDatagramQueueBytesBounded(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	a := newNode(t, n, "a")
	slow, fast := a.connect(t, "slow", 1), a.connect(t, "fast", 2)
	const size, bound = 60000, 4 << 20
	big := make([]byte, size)
	floodUntilDropped(t, fast, slow, big, 10)
	if q := slow.QueuedDatagrams(); q == 0 || q*size > bound {
		t.Fatalf("%d datagrams of %d bytes queued when drops began; want some, at most %d bytes", q, size, bound)
	}
	if b, _, _, err := slow.ReadDatagram(ctxT(t, time.Second)); err != nil || len(b) != size {
		t.Fatalf("ReadDatagram after drops: %d bytes, %v", len(b), err)
	}
}
