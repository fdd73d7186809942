package socks

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

var fakemeshNew = fakemesh.New

// httpThrough returns an http.Client that dials through the proxy,
// sending host names unresolved.
func httpThrough(tb testing.TB, proxy, user, pass string) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			return socksDial(proxy, user, pass, hostAddr(tb, address))
		},
		DisableKeepAlives: true,
	}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func TestHTTPThroughMesh(t *testing.T) {
	tstest.CheckLeaks(t)
	body := bytes.Repeat([]byte("skywire "), 64<<10) // 512 KiB
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	ts := httptest.NewServer(handler)
	defer ts.Close()
	port := ts.Listener.Addr().(*net.TCPAddr).Port
	targets := map[string]string{
		"ipv4":   fmt.Sprintf("http://127.0.0.1:%d/", port),
		"domain": fmt.Sprintf("http://localhost:%d/", port),
	}
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ts6 := httptest.NewUnstartedServer(handler)
		ts6.Listener.Close()
		ts6.Listener = ln
		ts6.Start()
		defer ts6.Close()
		targets["ipv6"] = "http://" + ln.Addr().String() + "/"
	} else {
		t.Logf("no IPv6 loopback: %v", err)
	}
	e := newEnv(t, envOptions{})
	hc := httpThrough(t, e.proxy, "", "")
	for name, url := range targets {
		t.Run(name, func(t *testing.T) {
			resp, err := hc.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("body: %d bytes, err %v; want %d bytes", len(got), err, len(body))
			}
		})
	}
	tstest.WaitFor(t, "connections closed", func() bool { return e.client.Stats().Open == 0 && e.server.Stats().Open == 0 })
	ss := e.server.Stats()
	if len(ss.Peers) != 1 {
		t.Fatalf("server peers = %+v, want the client node", ss.Peers)
	}
	if p := ss.Peers[0]; p.Peer != e.cliNode.mesh.PublicKey().String() || p.Open != 0 || p.Total != uint64(len(targets)) || p.Up != ss.Up || p.Down != ss.Down {
		t.Errorf("server peer stats = %+v, want totals %+v", p, ss)
	}
	if cs := e.client.Stats(); cs.Peers != nil {
		t.Errorf("client keeps peer stats: %+v", cs.Peers)
	}
	for name, s := range map[string]Stats{"client": e.client.Stats(), "server": ss} {
		if s.Total != uint64(len(targets)) || s.Failed != 0 {
			t.Errorf("%s stats: total %d failed %d, want %d and 0", name, s.Total, s.Failed, len(targets))
		}
		if s.Down < uint64(len(targets)*len(body)) || s.Up == 0 {
			t.Errorf("%s stats: up %d down %d, want down >= %d", name, s.Up, s.Down, len(targets)*len(body))
		}
	}
}

// TestCurl downloads 20 MB with curl --socks5-hostname and compares the
// SHA-256.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("no curl")
	}
	tstest.CheckLeaks(t)
	body := make([]byte, 20<<20)
	rand.Read(body)
	want := sha256.Sum256(body)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "file", time.Time{}, bytes.NewReader(body))
	}))
	defer ts.Close()
	e := newEnv(t, envOptions{client: func(c *ClientConfig) { c.Username, c.Password = "alice", "s3cret" }})
	port := ts.Listener.Addr().(*net.TCPAddr).Port
	// Only a hang guard: 20 MB through the race-built apps takes a while
	// on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(5*time.Minute))
	defer cancel()
	cmd := exec.CommandContext(ctx, curl, "-sS", "--fail", "--socks5-hostname", e.proxy,
		"--proxy-user", "alice:s3cret", fmt.Sprintf("http://localhost:%d/file", port))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl: %v: %s", err, stderr.Bytes())
	}
	if sha256.Sum256(got) != want {
		t.Fatalf("SHA-256 mismatch: got %d bytes", len(got))
	}
	// A refused target gives curl's SOCKS error, not a hang.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	cmd = exec.CommandContext(ctx, curl, "-sS", "--socks5-hostname", e.proxy, "--proxy-user", "alice:s3cret", "http://"+closed+"/")
	out, err := cmd.CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("SOCKS")) {
		t.Errorf("curl to a closed port: err %v, output %q; want a SOCKS error", err, out)
	}
}

func TestParallelConnections(t *testing.T) {
	tstest.CheckLeaks(t)
	echo := tstest.ServeTCP(t, tstest.Echo)
	e := newEnv(t, envOptions{})
	const n = 200
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				conn, err := socksDial(e.proxy, "", "", hostAddr(t, echo))
				if err != nil {
					return err
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(30 * time.Second))
				msg := bytes.Repeat([]byte{byte(i)}, 16<<10+i)
				go func() {
					conn.Write(msg)
					conn.(*net.TCPConn).CloseWrite()
				}()
				got, err := io.ReadAll(conn)
				if err != nil {
					return err
				}
				if !bytes.Equal(got, msg) {
					return fmt.Errorf("conn %d: echo of %d bytes, got %d", i, len(msg), len(got))
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	tstest.WaitFor(t, "connections closed", func() bool { return e.client.Stats().Open == 0 && e.server.Stats().Open == 0 })
	if s := e.server.Stats(); s.Total != n {
		t.Errorf("server total = %d, want %d", s.Total, n)
	}
}

// TestHalfClose: the target answers after reading EOF; the answer still
// reaches the client, which half-closed first.
func TestHalfClose(t *testing.T) {
	tstest.CheckLeaks(t)
	target, served := tstest.ServeTCPOnce(t, func(c net.Conn) error {
		got, err := io.ReadAll(c)
		if err == nil {
			_, err = fmt.Fprintf(c, "read %d bytes", len(got))
		}
		return err
	})
	e := newEnv(t, envOptions{})
	conn := e.dial(t, target)
	conn.Write(make([]byte, 100000))
	conn.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != "read 100000 bytes" {
		t.Errorf("answer = %q, %v", got, err)
	}
	if err := <-served; err != nil {
		t.Error(err)
	}
}

// errDialer fails dials to the addresses of the testNames with the
// errors their names say and dials everything else for real. (The
// server resolves names itself, with testLookup, and dials addresses.)
func errDialer(ctx context.Context, network, address string) (net.Conn, error) {
	host, _, _ := net.SplitHostPort(address)
	for name, ip := range testNames {
		if ip.String() == host {
			host = name
		}
	}
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", err)}
	}
	switch host {
	case "hostunreach.test":
		return nil, opErr(syscall.EHOSTUNREACH)
	case "netunreach.test":
		return nil, opErr(syscall.ENETUNREACH)
	case "blackhole.test":
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
	case "weird.test":
		return nil, errors.New("something else")
	case "slow.test":
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
		}
		return nil, opErr(syscall.EHOSTUNREACH)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

func TestReplyCodes(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t, envOptions{
		server:  func(c *ServerConfig) { c.DialTimeout = 200 * time.Millisecond },
		srvOpts: []ServerOption{WithDialer(errDialer)},
	})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := hostAddr(t, ln.Addr().String())
	ln.Close()

	// A server node that allows another key only.
	denied := newEnv(t, envOptions{server: func(c *ServerConfig) { c.Allow = []keys.PublicKey{{9}} }})
	// A client whose server key is not in the mesh.
	noRoute := newEnv(t, envOptions{client: func(c *ClientConfig) { c.Server = keys.PublicKey{7} }})
	// A client dialing a port where no socks-server listens.
	noServer := newEnv(t, envOptions{client: func(c *ClientConfig) { c.ServerPort = 999 }})
	// A client without UDP.
	noUDP := newEnv(t, envOptions{client: func(c *ClientConfig) { c.Port = 0 }})

	name := func(n string) addr { return addr{Name: n, Port: 80} }
	tests := []struct {
		name  string
		proxy string
		cmd   byte
		dst   addr
		want  Reply
	}{
		{"connection refused", e.proxy, cmdConnect, closedPort, ReplyConnRefused},
		{"host unreachable", e.proxy, cmdConnect, name("hostunreach.test"), ReplyHostUnreachable},
		{"network unreachable", e.proxy, cmdConnect, name("netunreach.test"), ReplyNetUnreachable},
		{"name not found", e.proxy, cmdConnect, name("notfound.test"), ReplyHostUnreachable},
		{"name not found by the resolver", e.proxy, cmdConnect, name("no-such-host.invalid"), ReplyHostUnreachable},
		{"dial timeout", e.proxy, cmdConnect, name("blackhole.test"), ReplyHostUnreachable},
		{"other dial error", e.proxy, cmdConnect, name("weird.test"), ReplyGeneralFailure},
		{"not allowed", denied.proxy, cmdConnect, closedPort, ReplyNotAllowed},
		{"not allowed UDP", denied.proxy, cmdUDPAssociate, addr{IP: netip.IPv4Unspecified()}, ReplyNotAllowed},
		{"server node unreachable", noRoute.proxy, cmdConnect, closedPort, ReplyGeneralFailure},
		{"no socks-server on the port", noServer.proxy, cmdConnect, closedPort, ReplyGeneralFailure},
		{"bind", e.proxy, cmdBind, closedPort, ReplyCmdNotSupported},
		{"UDP disabled", noUDP.proxy, cmdUDPAssociate, addr{IP: netip.IPv4Unspecified()}, ReplyCmdNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := dialTCP(t, tt.proxy)
			start := time.Now()
			_, err := socksHandshake(conn, "", "", tt.cmd, tt.dst)
			if got := replyOf(err); got != tt.want {
				t.Fatalf("reply = %v (err %v), want %v", got, err, tt.want)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("reply took %v", d)
			}
			// After a failure reply the proxy closes the connection.
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := conn.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
				t.Errorf("after the reply: read %d, %v; want EOF", n, err)
			}
		})
	}

	// Requests the proxy cannot even parse get a reply too, and the
	// connection ends with FIN: the whole reply, then EOF, never a reset
	// (closing with unread input resets, and the old code did both: RST
	// after reply 8 with the address still unread, and RST with no reply
	// at all for an empty name).
	for _, tt := range []struct {
		name string
		req  []byte
		want Reply
	}{
		{"address type not supported", []byte{5, 1, 0, 9, 1, 2, 3, 4, 0, 80}, ReplyAddrNotSupported},
		{"empty domain name", []byte{5, 1, 0, 3, 0, 0, 80}, ReplyHostUnreachable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn := dialTCP(t, e.proxy)
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			conn.Write([]byte{5, 1, 0})
			io.ReadFull(conn, make([]byte, 2))
			conn.Write(tt.req)
			reply := make([]byte, 10)
			if _, err := io.ReadFull(conn, reply); err != nil || Reply(reply[1]) != tt.want {
				t.Fatalf("reply = %x, %v; want code %#x", reply, err, byte(tt.want))
			}
			if n, err := conn.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
				t.Errorf("after the reply: read %d, %v; want EOF (FIN), not a reset", n, err)
			}
		})
	}
	tstest.WaitFor(t, "failed connections released", func() bool {
		return e.client.Stats().Open == 0 && e.server.Stats().Open == 0 && denied.server.Stats().Open == 0
	})
	if s := e.server.Stats(); s.Failed != s.Total || s.Failed < 7 {
		t.Errorf("server stats: failed %d of %d, want all of at least 7", s.Failed, s.Total)
	}

	// Every reply is counted by code on the side that sent it: the client
	// passes the server's on, and answers BIND and unparsable requests
	// itself.
	wantClient := map[string]uint64{ReplyAddrNotSupported.Label(): 1, ReplyHostUnreachable.Label(): 1}
	wantServer := map[string]uint64{}
	for _, tt := range tests {
		if tt.proxy != e.proxy {
			continue
		}
		wantClient[tt.want.Label()]++
		if tt.cmd != cmdBind {
			wantServer[tt.want.Label()]++
		}
	}
	for _, c := range []struct {
		side      string
		got, want map[string]uint64
	}{
		{"client", e.client.Stats().Replies, wantClient},
		{"server", e.server.Stats().Replies, wantServer},
		{"denying server", denied.server.Stats().Replies, map[string]uint64{"not_allowed": 2}},
	} {
		if !maps.Equal(c.got, c.want) {
			t.Errorf("%s replies %v, want %v", c.side, c.got, c.want)
		}
	}
}

func TestAuth(t *testing.T) {
	tstest.CheckLeaks(t)
	echo := tstest.ServeTCP(t, tstest.Echo)
	e := newEnv(t, envOptions{client: func(c *ClientConfig) { c.Username, c.Password = "alice", "s3cret" }})
	tests := []struct {
		name, user, pass string
		ok               bool
	}{
		{"right", "alice", "s3cret", true},
		{"wrong password", "alice", "guess", false},
		{"wrong user", "bob", "s3cret", false},
		{"password prefix", "alice", "s3cre", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := socksDial(e.proxy, tt.user, tt.pass, hostAddr(t, echo))
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				conn.Close()
				return
			}
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("err = %v, want ErrAuth", err)
			}
		})
	}
	t.Run("no auth offered", func(t *testing.T) {
		conn := dialTCP(t, e.proxy)
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.Write([]byte{5, 1, methodNoAuth})
		b, err := io.ReadAll(conn)
		if err != nil || !bytes.Equal(b, []byte{5, methodNoAcceptable}) {
			t.Errorf("answer = %x, %v; want 05ff then EOF", b, err)
		}
	})
}

// TestUDPAssociate: a datagram to a local UDP echo server and back, by
// IP and by name; the association ends with the TCP connection.
func TestUDPAssociate(t *testing.T) {
	tstest.CheckLeaks(t)
	echoAddr := udpEcho(t, func(p []byte) []byte { return append([]byte("echo:"), p...) })

	e := newEnv(t, envOptions{})
	ctrl, bnd := udpAssociate(t, e.proxy)
	app := dialRelay(t, bnd)
	for _, dst := range []addr{echoAddr, {Name: "localhost", Port: echoAddr.Port}} {
		t.Run(dst.String(), func(t *testing.T) {
			hdr, _ := appendUDPHeader(nil, dst)
			want := "echo:hello " + dst.String()
			buf := make([]byte, 65536)
			// Datagrams may be lost: retry a few times, never sleep;
			// skip late answers to earlier attempts.
			for attempt := 0; ; attempt++ {
				app.Write(append(hdr, "hello "+dst.String()...))
				app.SetReadDeadline(time.Now().Add(time.Second))
				for {
					n, err := app.Read(buf)
					if err != nil {
						if attempt < 5 {
							break
						}
						t.Fatalf("no answer: %v", err)
					}
					frag, src, data, err := parseUDPHeader(buf[:n])
					if err != nil || frag != 0 {
						t.Fatalf("answer header: frag %d err %v", frag, err)
					}
					if src != echoAddr {
						t.Fatalf("answer from %v, want from %v", src, echoAddr)
					}
					if string(data) == want {
						return
					}
					t.Logf("skipping a late answer %q", data)
				}
			}
		})
	}
	cs := e.client.Stats()
	if cs.Open != 1 || len(cs.Conns) != 1 || cs.Conns[0].Kind != "udp" || cs.Conns[0].Up == 0 || cs.Conns[0].Down == 0 {
		t.Errorf("client stats during the association: %+v", cs)
	}
	ctrl.Close()
	tstest.WaitFor(t, "association closed", func() bool { return e.client.Stats().Open == 0 && e.server.Stats().Open == 0 })
	e.server.assocMu.Lock()
	n := len(e.server.assocs)
	e.server.assocMu.Unlock()
	if n != 0 {
		t.Errorf("server keeps %d associations after close", n)
	}
}

// TestClientDisconnectMidTransfer: an application that goes away while
// the target streams releases everything on both sides, target included.
func TestClientDisconnectMidTransfer(t *testing.T) {
	tstest.CheckLeaks(t)
	target, targetDone := tstest.ServeTCPOnce(t, func(c net.Conn) error {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
	})
	e := newEnv(t, envOptions{})
	conn := e.dial(t, target)
	if _, err := io.CopyN(io.Discard, conn, 4<<20); err != nil {
		t.Fatal(err)
	}
	// The server counts a write when it returns, which can be after the
	// application has read the bytes: wait for the counter.
	tstest.WaitFor(t, "server counted 4 MiB", func() bool {
		s := e.server.Stats()
		return s.Open == 1 && s.Conns[0].Down >= 4<<20
	})
	want := ConnStats{Kind: "connect", Peer: e.cliNode.mesh.PublicKey().String(), Target: target}
	if c := e.server.Stats().Conns[0]; c.Kind != want.Kind || c.Peer != want.Peer || c.Target != want.Target || c.Started.IsZero() {
		t.Errorf("server conn stats = %+v, want %+v", c, want)
	}
	if c := e.client.Stats().Conns[0]; c.Kind != want.Kind || c.Peer != conn.LocalAddr().String() || c.Target != want.Target {
		t.Errorf("client conn stats = %+v, want peer %s target %s", c, conn.LocalAddr(), want.Target)
	}
	conn.Close()
	if err := tstest.Await(t, targetDone, 10*time.Second, "the target to stop writing after the client left"); err == nil {
		t.Error("target ended without error")
	}
	tstest.WaitFor(t, "both sides released", func() bool { return e.client.Stats().Open == 0 && e.server.Stats().Open == 0 })
}

// TestRunEndsWhenNodeGoesAway: Run returns appnet.ErrNodeLost.
func TestRunEndsWhenNodeGoesAway(t *testing.T) {
	t.Run("client", testClientNodeLost)
	t.Run("server", testServerNodeLost)
}

func testServerNodeLost(t *testing.T) {
	tstest.CheckLeaks(t)
	nd := newMeshNode(t, fakemeshNew(), "lonely")
	cfg := DefaultServerConfig()
	cfg.NodeSocket, cfg.AllowAll = nd.path, true
	runUntilNodeLost(t, nd, func(ctx context.Context) (*Server, error) { return NewServer(ctx, cfg, nil) })
}

// runUntilNodeLost makes a role with newRole, runs it, takes nd's app
// server away and checks that Run returns ErrNodeLost (within 10s, a
// generous bound on the context of both).
func runUntilNodeLost[R interface{ Run(context.Context) error }](t *testing.T, nd *meshNode, newRole func(context.Context) (R, error)) R {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := newRole(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	nd.srv.Close()
	if err := tstest.Await(t, done, 10*time.Second, "Run to return after the node went away"); !errors.Is(err, appnet.ErrNodeLost) {
		t.Errorf("Run = %v, want appnet.ErrNodeLost", err)
	}
	return r
}

func testClientNodeLost(t *testing.T) {
	tstest.CheckLeaks(t)
	n := newEnv(t, envOptions{}) // keeps the fake network alive
	nd := newMeshNode(t, n.net, "lonely")
	cfg := DefaultClientConfig()
	cfg.NodeSocket, cfg.Listen, cfg.Server = nd.path, "127.0.0.1:0", n.srvNode.mesh.PublicKey()
	c := runUntilNodeLost(t, nd, func(ctx context.Context) (*Client, error) { return NewClient(ctx, cfg, nil) })
	if _, err := net.Dial("tcp", c.Addr().String()); err == nil {
		t.Error("listener still open after Run returned")
	}
}

func TestNewErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := NewClient(ctx, ClientConfig{}, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("NewClient(zero config) = %v, want ErrConfig", err)
	}
	if _, err := NewServer(ctx, DefaultServerConfig(), nil); !errors.Is(err, ErrConfig) {
		t.Errorf("NewServer(defaults) = %v, want ErrConfig (nobody allowed)", err)
	}
	cfg := DefaultServerConfig()
	cfg.AllowAll, cfg.NodeSocket = true, "/nonexistent/node.sock"
	if _, err := NewServer(ctx, cfg, nil); err == nil {
		t.Error("NewServer without a node succeeded")
	}
}

// TestSlowFailureKeepsItsReply: a target that takes longer to fail than
// the handshake timeouts still gets its reply code to the application.
func TestSlowFailureKeepsItsReply(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t, envOptions{
		client:  func(c *ClientConfig) { c.HandshakeTimeout = 100 * time.Millisecond },
		server:  func(c *ServerConfig) { c.HandshakeTimeout = 100 * time.Millisecond },
		srvOpts: []ServerOption{WithDialer(errDialer)},
	})
	_, err := socksDial(e.proxy, "", "", addr{Name: "slow.test", Port: 80})
	if got := replyOf(err); got != ReplyHostUnreachable {
		t.Errorf("reply = %v (err %v), want host unreachable", got, err)
	}
}

// udpAssociate opens a SOCKS control connection to proxy (closed at
// cleanup) and asks for a UDP association; it returns the connection and
// the relay address the proxy bound.
func udpAssociate(t *testing.T, proxy string) (net.Conn, addr) {
	t.Helper()
	ctrl := dialTCP(t, proxy)
	bnd, err := socksHandshake(ctrl, "", "", cmdUDPAssociate, addr{IP: netip.IPv4Unspecified()})
	if err != nil {
		t.Fatal(err)
	}
	return ctrl, bnd
}

// udpEcho runs a UDP server on 127.0.0.1 that answers each datagram with
// reply(datagram) until the test ends, and returns its address.
func udpEcho(t *testing.T, reply func(p []byte) []byte) addr {
	t.Helper()
	echo, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := echo.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			echo.WriteToUDPAddrPort(reply(buf[:n]), from)
		}
	}()
	t.Cleanup(func() { echo.Close(); <-done })
	return hostAddr(t, echo.LocalAddr().String())
}
