package socks

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// expectClosed reads from conn until EOF or a reset, failing on any data
// or on a hang of more than 5 s.
func expectClosed(t *testing.T, conn net.Conn, want []byte) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not closed within 5 s (read %x)", got)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("read %x before close, want %x", got, want)
	}
}

// TestMalformedApplications: a SOCKS application that sends garbage, or
// nothing, loses its connection; the proxy keeps serving.
func TestMalformedApplications(t *testing.T) {
	tstest.CheckLeaks(t)
	echo := tstest.ServeTCP(t, tstest.Echo)
	e := newEnv(t, envOptions{client: func(c *ClientConfig) { c.HandshakeTimeout = 100 * time.Millisecond }})
	tests := []struct {
		name      string
		send      []byte
		closeSend bool
		want      []byte // the proxy's answer before it closes
	}{
		{"socks4", []byte{4, 1, 0, 80, 127, 0, 0, 1, 0}, false, nil},
		{"http", []byte("GET / HTTP/1.1\r\n\r\n"), false, nil},
		{"truncated greeting", []byte{5, 3, 0}, true, nil},
		{"silent", nil, false, nil},
		{"silent after greeting", []byte{5, 1, 0}, false, []byte{5, 0}},
		{"truncated request", []byte{5, 1, 0, 5, 1, 0, 3, 20, 'a'}, true, []byte{5, 0}},
		{"request version 4", []byte{5, 1, 0, 4, 1, 0, 1, 127, 0, 0, 1, 0, 80}, false, []byte{5, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := dialTCP(t, e.proxy)
			conn.Write(tt.send)
			if tt.closeSend {
				conn.(*net.TCPConn).CloseWrite()
			}
			expectClosed(t, conn, tt.want)
		})
	}
	conn, err := socksDial(e.proxy, "", "", hostAddr(t, echo))
	if err != nil {
		t.Fatalf("proxy after malformed applications: %v", err)
	}
	conn.Close()
	tstest.WaitFor(t, "connections released", func() bool { return e.client.Stats().Open == 0 })
}

// TestMalformedStreams: a client node that sends a bad header, or none,
// loses that stream without a reply; the server keeps serving.
func TestMalformedStreams(t *testing.T) {
	tstest.CheckLeaks(t)
	echo := tstest.ServeTCP(t, tstest.Echo)
	e := newEnv(t, envOptions{server: func(c *ServerConfig) { c.HandshakeTimeout = 100 * time.Millisecond }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Another app on the client's node: same (allowed) key.
	raw := fakemesh.ConnectApp(t, e.cliNode.path, "raw", 0)
	tests := []struct {
		name string
		send []byte
	}{
		{"bad version", []byte{3, 1, 1, 127, 0, 0, 1, 0, 80}},
		{"bind", []byte{1, 2, 1, 127, 0, 0, 1, 0, 80}},
		{"bad address type", []byte{1, 1, 7, 127, 0, 0, 1, 0, 80}},
		{"empty name", []byte{1, 1, 3, 0, 0, 80}},
		{"silent", nil},
		{"truncated", []byte{1, 1, 3, 9, 'l', 'o'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := raw.Dial(ctx, e.srvNode.key, DefaultServerPort)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.Write(tt.send)
			expectClosed(t, conn, nil)
		})
	}
	conn, err := socksDial(e.proxy, "", "", hostAddr(t, echo))
	if err != nil {
		t.Fatalf("proxy after malformed streams: %v", err)
	}
	conn.Close()
	tstest.WaitFor(t, "streams released", func() bool { return e.server.Stats().Open == 0 })
	if s := e.server.Stats(); s.Failed != uint64(len(tests)) {
		t.Errorf("server failed = %d, want %d", s.Failed, len(tests))
	}
}

// TestHalfCloseFromTarget: the target finishes first; the application
// reads EOF and can still send.
func TestHalfCloseFromTarget(t *testing.T) {
	tstest.CheckLeaks(t)
	target, served := tstest.ServeTCPOnce(t, func(c net.Conn) error {
		c.Write([]byte("hello, send me your data"))
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		if err == nil && len(got) != 300000 {
			err = fmt.Errorf("target read %d bytes, want 300000", len(got))
		}
		return err
	})
	e := newEnv(t, envOptions{})
	conn := e.dial(t, target)
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != "hello, send me your data" {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := conn.Write(make([]byte, 300000)); err != nil {
		t.Fatalf("write after the target's EOF: %v", err)
	}
	conn.(*net.TCPConn).CloseWrite()
	if err := <-served; err != nil {
		t.Error(err)
	}
	tstest.WaitFor(t, "connection released", func() bool { return e.client.Stats().Open == 0 && e.server.Stats().Open == 0 })
	if s := e.client.Stats(); s.Up != 300000 || s.Down != 24 {
		t.Errorf("client stats up %d down %d, want 300000 and 24", s.Up, s.Down)
	}
}

// TestUDPForeignDatagram: a datagram for an association from another
// node is dropped, and so is one to the server's UDP socket from a host
// the client never sent to.
func TestUDPForeignDatagram(t *testing.T) {
	tstest.CheckLeaks(t)
	var received atomic.Int32
	echoAddr := udpEcho(t, func(p []byte) []byte { received.Add(1); return p })
	e := newEnv(t, envOptions{server: func(c *ServerConfig) { c.Allow = nil; c.AllowAll = true }})
	_, bnd := udpAssociate(t, e.proxy)
	e.server.assocMu.Lock()
	var id uint32
	var serverUDP *net.UDPAddr
	for k, a := range e.server.assocs {
		id, serverUDP = k, a.udp.LocalAddr().(*net.UDPAddr)
	}
	e.server.assocMu.Unlock()

	// A stranger on a third node (allowed: allow_all) forges the ID.
	other := newMeshNode(t, e.net, "stranger")
	stranger := fakemesh.ConnectApp(t, other.path, "stranger", 5)
	hdr, _ := appendUDPHeader(binary.BigEndian.AppendUint32(nil, id), echoAddr)
	if err := stranger.SendDatagram(e.srvNode.key, DefaultServerPort, append(hdr, "forged"...)); err != nil {
		t.Fatal(err)
	}

	app := dialRelay(t, bnd)
	real, _ := appendUDPHeader(nil, echoAddr)
	buf := make([]byte, 2048)
	roundTrip := func(msg string) {
		t.Helper()
		app.Write(append(real, msg...))
		app.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := app.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, data, _ := parseUDPHeader(buf[:n]); string(data) != msg {
			t.Fatalf("answer %q, want %q", data, msg)
		}
	}
	roundTrip("real")
	if got := received.Load(); got != 1 {
		t.Errorf("echo server received %d datagrams, want 1 (the forged one dropped)", got)
	}
	// Once the association is in use, an Internet stranger writes to
	// the server's UDP socket. That reaches the socket before the next
	// echo does: had it been passed on, it would be read first.
	spam, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: serverUDP.Port})
	if err != nil {
		t.Fatal(err)
	}
	defer spam.Close()
	if _, err := spam.Write([]byte("spam")); err != nil {
		t.Fatal(err)
	}
	roundTrip("again")
}

// TestClientRefusesStreams: a stream dialed to the client's UDP port is
// closed at once.
func TestClientRefusesStreams(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw := fakemesh.ConnectApp(t, e.srvNode.path, "raw", 0)
	conn, err := raw.Dial(ctx, e.cliNode.mesh.PublicKey(), DefaultClientUDPPort)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	expectClosed(t, conn, nil)
}

// TestCloseWithoutRun: a client and a server that never ran release
// their registrations, listener and goroutines.
func TestCloseWithoutRun(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ccfg := DefaultClientConfig()
	ccfg.NodeSocket, ccfg.Listen, ccfg.Server, ccfg.Port = e.cliNode.path, "127.0.0.1:0", e.srvNode.key, 0
	c, err := NewClient(ctx, ccfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	scfg := DefaultServerConfig()
	scfg.NodeSocket, scfg.Port, scfg.AllowAll = e.srvNode.path, 2000, true
	s, err := NewServer(ctx, scfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.Close()
	if _, err := net.Dial("tcp", c.Addr().String()); err == nil {
		t.Error("listener open after Close")
	}
	// The node frees the port once it notices the closed registration.
	tstest.WaitFor(t, "port 2000 released", func() bool {
		streams, _ := e.srvNode.mesh.Ports()
		for _, p := range streams {
			if p == 2000 {
				return false
			}
		}
		return true
	})
	s2, err := NewServer(ctx, scfg, nil)
	if err != nil {
		t.Fatalf("server port not released: %v", err)
	}
	// Run with a context that is already done returns at once.
	done, stop := context.WithCancel(ctx)
	stop()
	if err := s2.Run(done); err != nil {
		t.Errorf("Run(done ctx) = %v, want nil", err)
	}
}
