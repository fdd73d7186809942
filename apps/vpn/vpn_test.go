package vpn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/apps/vpn/tuntest"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

// env is a fake mesh with a server node and client nodes.
type env struct {
	net    *fakemesh.Network
	srvKey keys.PublicKey
	srv    *meshNode
	scfg   ServerConfig // what serve started the server with
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{net: fakemesh.New(), srvKey: tstest.KeyPair(t).Public}
	e.srv = newMeshNode(t, e.net, e.srvKey)
	return e
}

func (e *env) clientNode(t testing.TB) (*meshNode, keys.PublicKey) {
	k := tstest.KeyPair(t).Public
	return newMeshNode(t, e.net, k), k
}

// serve starts a server named "server" on e's server node, with the test
// config changed by edit (if not nil), and keeps that config in e.scfg
// for a restart.
func (e *env) serve(t testing.TB, edit func(*ServerConfig)) (*Server, *run) {
	t.Helper()
	e.scfg = testServerConfig(t, e.srv.path)
	if edit != nil {
		edit(&e.scfg)
	}
	return startServer(t, e.scfg, "server")
}

// readyClient starts a client named "client" on a new node of e, with the
// test config changed by edit (if not nil), and waits until its tunnel is
// up.
func (e *env) readyClient(t testing.TB, edit func(*ClientConfig)) (*Client, *run) {
	t.Helper()
	cli, cr, _ := e.readyNamed(t, "client", edit)
	return cli, cr
}

// readyNamed is readyClient for a client named name; it also returns the
// key of the client's node.
func (e *env) readyNamed(t testing.TB, name string, edit func(*ClientConfig)) (*Client, *run, keys.PublicKey) {
	t.Helper()
	cn, ck := e.clientNode(t)
	cfg := testClientConfig(cn.path, e.srvKey)
	if edit != nil {
		edit(&cfg)
	}
	cli, cr := startClient(t, cfg, name, nil)
	waitReady(t, cli, cr)
	return cli, cr, ck
}

// portFree waits until nobody holds port on nd (after an app stopped).
func portFree(t *testing.T, nd *meshNode, port uint16) {
	t.Helper()
	tstest.WaitFor(t, "port released", func() bool {
		s, p := nd.mesh.Ports()
		return !slices.Contains(s, port) && !slices.Contains(p, port)
	})
}

func TestForwardingBothWays(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	srv, sr := e.serve(t, nil)
	cli, cr, ck := e.readyNamed(t, "client", nil)

	if got, want := cli.Addr(), netip.MustParsePrefix("10.77.0.2/24"); got != want {
		t.Fatalf("client address %s, want %s", got, want)
	}
	if got, want := cr.net.link(DefaultClientTun), (linkState{DefaultMTU, netip.MustParsePrefix("10.77.0.2/24")}); got != want {
		t.Errorf("client link %+v, want %+v", got, want)
	}
	if got, want := sr.net.link(DefaultServerTun), (linkState{DefaultMTU, netip.MustParsePrefix("10.77.0.1/24")}); got != want {
		t.Errorf("server link %+v, want %+v", got, want)
	}
	routes, _, _ := cr.net.snapshot()
	if want := []Route{{Dst: netip.MustParsePrefix("10.99.0.0/16"), Dev: DefaultClientTun}}; !slices.Equal(routes, want) {
		t.Errorf("client routes %v, want %v", routes, want)
	}
	if _, fwd, _ := sr.net.snapshot(); !fwd {
		t.Error("server did not turn forwarding on")
	}

	tests := []struct {
		name     string
		from, to *tuntest.Device
		pkt      []byte
	}{
		{"client to target", cr.dev, sr.dev, tuntest.IPv4(addr("10.77.0.2"), addr("10.99.0.5"), 17, []byte("ping"))},
		{"target to client", sr.dev, cr.dev, tuntest.IPv4(addr("10.99.0.5"), addr("10.77.0.2"), 17, []byte("pong"))},
		{"big to target", cr.dev, sr.dev, tuntest.IPv4(addr("10.77.0.2"), addr("10.99.0.5"), 6, bytes.Repeat([]byte{7}, DefaultMTU-20))},
		{"big to client", sr.dev, cr.dev, tuntest.IPv4(addr("10.99.0.5"), addr("10.77.0.2"), 6, bytes.Repeat([]byte{8}, DefaultMTU-20))},
	}
	var sent int
	for _, tc := range tests {
		if !tc.from.Inject(tc.pkt) {
			t.Fatalf("%s: device closed", tc.name)
		}
		if got := recv(t, tc.to); !bytes.Equal(got, tc.pkt) {
			t.Fatalf("%s: got %d bytes, want the %d sent", tc.name, len(got), len(tc.pkt))
		}
		sent += len(tc.pkt)
	}
	half := uint64(sent / 2)
	// Counters are updated just after a packet is handed on: wait for them.
	clientOK := func(cs Stats) bool {
		return cs.PacketsOut == 2 && cs.PacketsIn == 2 && cs.BytesOut == half && cs.BytesIn == half && cs.Connected && cs.Key == e.srvKey && cs.Dropped == 0
	}
	serverOK := func(ss []Stats) bool {
		return len(ss) == 1 && ss[0].Key == ck && ss[0].Addr == addr("10.77.0.2") && ss[0].PacketsIn == 2 && ss[0].PacketsOut == 2 &&
			ss[0].BytesIn == half && ss[0].BytesOut == half && ss[0].Connected && ss[0].Dropped == 0
	}
	deadline := time.Now().Add(5 * time.Second)
	for !clientOK(cli.Stats()) || !serverOK(srv.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("stats: client %+v, server %+v; want 2 packets and %d bytes each way on both", cli.Stats(), srv.Stats(), half)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBadPacketsDropped(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	srv, sr := e.serve(t, nil)
	cli, cr := e.readyClient(t, nil)

	ipv6 := make([]byte, 40)
	ipv6[0] = 0x60
	truncated := tuntest.IPv4(addr("10.77.0.2"), addr("10.99.0.5"), 17, []byte("abcd"))
	truncated[3] += 10 // total length beyond the packet
	// The client drops what is not IPv4; the server drops a spoofed source.
	for _, p := range [][]byte{ipv6, {0x45}, truncated, tuntest.IPv4(addr("10.77.0.9"), addr("10.99.0.5"), 17, []byte("spoof"))} {
		cr.dev.Inject(p)
	}
	good := tuntest.IPv4(addr("10.77.0.2"), addr("10.99.0.5"), 17, []byte("good"))
	cr.dev.Inject(good)
	if got := recv(t, sr.dev); !bytes.Equal(got, good) {
		t.Fatalf("server wrote %x, want the good packet %x", got, good)
	}
	if d := cli.Stats(); d.Dropped != 3 || !maps.Equal(d.Drops, map[string]uint64{"malformed": 3}) {
		t.Errorf("client dropped %d %v, want 3 malformed (IPv6, short, truncated)", d.Dropped, d.Drops)
	}
	if st := srv.Stats(); len(st) != 1 || st[0].Dropped != 1 || !maps.Equal(st[0].Drops, map[string]uint64{"spoofed": 1}) {
		t.Errorf("server stats %+v, want 1 spoofed packet dropped", st)
	}
	// The server drops packets to addresses no client has.
	sr.dev.Inject(tuntest.IPv4(addr("10.99.0.5"), addr("10.77.0.77"), 17, []byte("nobody")))
	back := tuntest.IPv4(addr("10.99.0.5"), addr("10.77.0.2"), 17, []byte("back"))
	sr.dev.Inject(back)
	if got := recv(t, cr.dev); !bytes.Equal(got, back) {
		t.Fatalf("client wrote %x, want %x", got, back)
	}
	if d := srv.Dropped(); d != 1 || srv.Drops()["no_client"] != 1 {
		t.Errorf("server Dropped() = %d %v, want 1 for no client", d, srv.Drops())
	}
}

func TestStableAddresses(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	_, sr := e.serve(t, nil)
	na, ka := e.clientNode(t)
	nb, kb := e.clientNode(t)

	connect := func(nd *meshNode, name string) (*Client, *run) {
		t.Helper()
		c, r := startClient(t, testClientConfig(nd.path, e.srvKey), name, nil)
		waitReady(t, c, r)
		return c, r
	}
	a, ar := connect(na, "a")
	b, br := connect(nb, "b")
	if a.Addr().Addr() != addr("10.77.0.2") || b.Addr().Addr() != addr("10.77.0.3") {
		t.Fatalf("addresses %s, %s; want 10.77.0.2, 10.77.0.3", a.Addr(), b.Addr())
	}
	// a reconnects: same address.
	if err := ar.stop(t); err != nil {
		t.Fatalf("client a: %v", err)
	}
	portFree(t, na, DefaultClientPort)
	a, ar = connect(na, "a2")
	if got := a.Addr().Addr(); got != addr("10.77.0.2") {
		t.Errorf("a reconnected with %s, want 10.77.0.2", got)
	}
	// The server restarts from its state dir; b comes back first and
	// still gets .3.
	for _, r := range []*run{ar, br} {
		r.stop(t)
	}
	sr.stop(t)
	portFree(t, e.srv, DefaultServerPort)
	portFree(t, na, DefaultClientPort)
	portFree(t, nb, DefaultClientPort)
	srv2, _ := startServer(t, e.scfg, "server2")
	b, _ = connect(nb, "b2")
	if got := b.Addr().Addr(); got != addr("10.77.0.3") {
		t.Errorf("b after the server's restart got %s, want 10.77.0.3", got)
	}
	a, _ = connect(na, "a3")
	if got := a.Addr().Addr(); got != addr("10.77.0.2") {
		t.Errorf("a after the server's restart got %s, want 10.77.0.2", got)
	}
	st := srv2.Stats()
	if len(st) != 2 || st[0].Key != ka || st[1].Key != kb {
		t.Errorf("server stats %+v, want a then b", st)
	}
}

func TestClientReconnectsToRestartedServer(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	_, sr := e.serve(t, nil)
	cli, cr := e.readyClient(t, nil)

	sr.stop(t)
	tstest.WaitFor(t, "client to notice the server is gone", func() bool { return !cli.Stats().Connected })
	routes, _, _ := cr.net.snapshot()
	if len(routes) != 1 {
		t.Errorf("routes while disconnected: %v, want them kept", routes)
	}
	// Packets sent meanwhile are dropped, not leaked.
	cr.dev.Inject(tuntest.IPv4(addr("10.77.0.2"), addr("10.99.0.5"), 17, []byte("lost")))
	portFree(t, e.srv, DefaultServerPort)
	_, sr2 := startServer(t, e.scfg, "server2")
	tstest.WaitFor(t, "client to reconnect", func() bool { return cli.Stats().Connected })
	p := tuntest.IPv4(addr("10.77.0.2"), addr("10.99.0.5"), 17, []byte("again"))
	cr.dev.Inject(p)
	if got := recv(t, sr2.dev); !bytes.Equal(got, p) {
		t.Fatalf("after reconnect the server got %x, want %x", got, p)
	}
	if cr.net.linkSets() != 1 {
		t.Errorf("client configured its link %d times, want once (same address)", cr.net.linkSets())
	}
	if d := cli.Stats(); d.Dropped != 1 || d.Drops["disconnected"] != 1 {
		t.Errorf("client dropped %d packets %v, want the 1 sent while disconnected", d.Dropped, d.Drops)
	}
}

func TestRefusal(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	scfg := testServerConfig(t, e.srv.path)
	scfg.AllowAll = false
	allowedNode, allowedKey := e.clientNode(t)
	scfg.Allow = []keys.PublicKey{allowedKey}
	log, sink := newLog(t, "server: ")
	startServerLog(t, scfg, log)

	strangerNode, strangerKey := e.clientNode(t)
	_, cr := startClient(t, testClientConfig(strangerNode.path, e.srvKey), "stranger", nil)
	if err := cr.wait(t); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("stranger: Run = %v, want ErrNotAllowed", err)
	}
	select {
	case <-cr.opened:
		t.Error("a refused client opened its device")
	default:
	}
	logs := sink.String()
	if !strings.Contains(logs, "client refused") || !strings.Contains(logs, strangerKey.String()) || !strings.Contains(logs, "not in vpn_server.allow") {
		t.Errorf("server log does not name the refused client and reason:\n%s", logs)
	}
	// The allowed client is served.
	c, ar := startClient(t, testClientConfig(allowedNode.path, e.srvKey), "allowed", nil)
	waitReady(t, c, ar)
}

// rawControl dials the server's control port from a new client node.
func rawControl(t *testing.T, e *env) (*appnet.Client, func(frame []byte) (any, error)) {
	t.Helper()
	nd, _ := e.clientNode(t)
	app := fakemesh.ConnectApp(t, nd.path, "raw", 0)
	return app, func(frame []byte) (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := app.Dial(ctx, e.srvKey, DefaultServerPort)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(frame); err != nil {
			t.Fatal(err)
		}
		return readMsg(conn)
	}
}

func TestServerAnswersBadHellos(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	e.serve(t, nil)
	_, exchange := rawControl(t, e)
	frame := func(m any) []byte {
		b, err := appendMsg(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name  string
		frame []byte
		code  uint8 // 0: the server closes without an answer
	}{
		{"version 2", frame(&hello{Version: 2, Port: 45}), refuseVersion},
		{"no port", frame(&hello{Version: 1}), refuseBadHello},
		{"not a hello", frame(&keepalive{}), 0},
		{"unknown type", []byte{0, 1, 99}, 0},
		{"oversized", []byte{0xff, 0xff, 1}, 0},
		{"body not a map", []byte{0, 2, 1, 0x91}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := exchange(tc.frame)
			if tc.code == 0 {
				if err == nil {
					t.Fatalf("server answered %#v, want the stream closed", m)
				}
				return
			}
			r, ok := m.(*refuse)
			if err != nil || !ok || uint8(r.Code) != tc.code {
				t.Fatalf("answer %#v, %v; want refuse code %d", m, err, tc.code)
			}
		})
	}
	// The server still serves.
	m, err := exchange(frame(&hello{Version: 1, Port: 45}))
	if a, ok := m.(*assign); err != nil || !ok || a.Addr != "10.77.0.2/24" {
		t.Fatalf("answer to a good hello: %#v, %v", m, err)
	}
}

func TestMTU(t *testing.T) {
	if DefaultMTU != 16342 {
		t.Fatalf("DefaultMTU = %d; the arithmetic in the package doc says 16342", DefaultMTU)
	}
	tests := []struct {
		name           string
		server, client int
		want           int
	}{
		{"defaults", 0, 0, DefaultMTU},
		{"server sets it", 1400, 0, 1400},
		{"client caps it", 0, 1280, 1280},
		{"client cap above the server's", 1400, 9000, 1400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tstest.CheckLeaks(t)
			e := newEnv(t)
			_, sr := e.serve(t, func(c *ServerConfig) { c.MTU = tc.server })
			_, cr := e.readyClient(t, func(c *ClientConfig) { c.MTU = tc.client })
			if got := cr.net.link(DefaultClientTun).mtu; got != tc.want {
				t.Errorf("client MTU %d, want %d", got, tc.want)
			}
			wantSrv := tc.server
			if wantSrv == 0 {
				wantSrv = DefaultMTU
			}
			if got := sr.net.link(DefaultServerTun).mtu; got != wantSrv {
				t.Errorf("server MTU %d, want %d", got, wantSrv)
			}
		})
	}
}

func TestClientCleanup(t *testing.T) {
	everything := func(cfg *ClientConfig) {
		cfg.Routes = []string{"everything", "10.99.0.0/16"}
		cfg.Exclude = []string{"198.51.100.7:7901", "127.0.0.1:7900", "203.0.113.9"}
	}
	wantUp := []Route{
		{Dst: netip.MustParsePrefix("198.51.100.7/32"), Via: addr("192.0.2.1"), Dev: "eth0"},
		{Dst: netip.MustParsePrefix("203.0.113.9/32"), Via: addr("192.0.2.1"), Dev: "eth0"},
		{Dst: netip.MustParsePrefix("0.0.0.0/1"), Dev: DefaultClientTun},
		{Dst: netip.MustParsePrefix("128.0.0.0/1"), Dev: DefaultClientTun},
		{Dst: netip.MustParsePrefix("10.99.0.0/16"), Dev: DefaultClientTun},
	}
	tests := []struct {
		name    string
		stop    func(t *testing.T, r *run, nd *meshNode) error
		wantErr error
	}{
		{"cancel", func(t *testing.T, r *run, _ *meshNode) error { return r.stop(t) }, nil},
		{"node gone", func(t *testing.T, r *run, nd *meshNode) error { nd.stop(); return r.wait(t) }, appnet.ErrNodeLost},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tstest.CheckLeaks(t)
			e := newEnv(t)
			e.serve(t, nil)
			cn, _ := e.clientNode(t)
			cfg := testClientConfig(cn.path, e.srvKey)
			everything(&cfg)
			cli, cr := startClient(t, cfg, "client", nil)
			waitReady(t, cli, cr)
			if routes, _, _ := cr.net.snapshot(); !slices.Equal(routes, wantUp) {
				t.Fatalf("routes while up:\n%v\nwant\n%v", routes, wantUp)
			}
			if err := tc.stop(t, cr, cn); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Run = %v, want %v", err, tc.wantErr)
			}
			checkClientUndone(t, cr)
		})
	}
}

func TestClientSetupFailureCleansUp(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	e.serve(t, nil)
	cn, _ := e.clientNode(t)
	cfg := testClientConfig(cn.path, e.srvKey)
	cfg.Routes = []string{"10.98.0.0/16", "10.99.0.0/16"}
	r, opts := newRun(t, cfg.Tun)
	r.net.failAdd = netip.MustParsePrefix("10.99.0.0/16")
	c, err := NewClient(cfg, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); !errors.Is(err, errFake) {
		t.Fatalf("Run = %v, want the route failure", err)
	}
	checkClientUndone(t, r)
}

// checkClientUndone fails t if the client run r left routes or its
// device open.
func checkClientUndone(t *testing.T, r *run) {
	t.Helper()
	if routes, _, _ := r.net.snapshot(); len(routes) != 0 {
		t.Errorf("routes left after stop: %v", routes)
	}
	checkDeviceClosed(t, r)
}

// checkDeviceClosed fails t if r's device is still open.
func checkDeviceClosed(t *testing.T, r *run) {
	t.Helper()
	select {
	case <-r.dev.Closed():
	default:
		t.Error("device not closed after stop")
	}
}

func TestServerCleanup(t *testing.T) {
	tests := []struct {
		name    string
		exit    bool
		stop    func(t *testing.T, r *run, e *env) error
		wantErr error
	}{
		{"cancel", false, func(t *testing.T, r *run, _ *env) error { return r.stop(t) }, nil},
		{"cancel exit", true, func(t *testing.T, r *run, _ *env) error { return r.stop(t) }, nil},
		{"node gone", true, func(t *testing.T, r *run, e *env) error { e.srv.stop(); return r.wait(t) }, appnet.ErrNodeLost},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tstest.CheckLeaks(t)
			e := newEnv(t)
			_, sr := e.serve(t, func(c *ServerConfig) { c.Exit = tc.exit })
			cli, _ := e.readyClient(t, nil)
			if _, fwd, masq := sr.net.snapshot(); !fwd || (masq == 1) != tc.exit {
				t.Fatalf("while up: forwarding %v, masquerade tables %d; want on, exit=%v", fwd, masq, tc.exit)
			}
			if err := tc.stop(t, sr, e); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Run = %v, want %v", err, tc.wantErr)
			}
			if _, fwd, masq := sr.net.snapshot(); fwd || masq != 0 {
				t.Errorf("after stop: forwarding %v, masquerade tables %d; want both undone", fwd, masq)
			}
			checkDeviceClosed(t, sr)
			tstest.WaitFor(t, "client to notice", func() bool { return !cli.Stats().Connected })
		})
	}
}

func TestUnsupportedWithoutTUN(t *testing.T) {
	if supported {
		t.Skip("this system supports TUN devices")
	}
	cfg := DefaultServerConfig()
	cfg.AllowAll = true
	_, err := NewServer(cfg, nil)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("NewServer = %v, want ErrUnsupported", err)
	}
}

// TestClientNodeGoneWhileRetrying: with no server to reach, the client
// retries; when its node goes away it stops without having opened a
// device.
func TestClientNodeGoneWhileRetrying(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t) // no server runs
	cn, _ := e.clientNode(t)
	log, sink := newLog(t, "client: ")
	_, cr := startClient(t, testClientConfig(cn.path, e.srvKey), "client", log)
	tstest.WaitFor(t, "a retry", func() bool { return strings.Contains(sink.String(), "cannot reach the vpn server") })
	cn.stop()
	if err := cr.wait(t); !errors.Is(err, appnet.ErrNodeLost) {
		t.Fatalf("Run = %v, want appnet.ErrNodeLost", err)
	}
	select {
	case <-cr.opened:
		t.Error("device opened without a server")
	default:
	}
}

// TestSecondStreamReplacesFirst: a client that reconnects before the
// server noticed its old stream died gets the same address, and the old
// stream is closed.
func TestSecondStreamReplacesFirst(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	srv, _ := e.serve(t, nil)
	app, _ := rawControl(t, e)
	open := func() (net.Conn, *assign) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := app.Dial(ctx, e.srvKey, DefaultServerPort)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if err := writeMsg(conn, &hello{Version: 1, Port: 45}); err != nil {
			t.Fatal(err)
		}
		m, err := readMsg(conn)
		a, ok := m.(*assign)
		if err != nil || !ok {
			t.Fatalf("answer %#v, %v", m, err)
		}
		return conn, a
	}
	first, a1 := open()
	_, a2 := open()
	if a1.Addr != a2.Addr {
		t.Errorf("second stream got %s, first %s", a2.Addr, a1.Addr)
	}
	// The first stream ends (keepalives may come before the EOF).
	for {
		m, err := readMsg(first)
		if err != nil {
			break
		}
		if _, ok := m.(*keepalive); !ok {
			t.Fatalf("first stream got %#v", m)
		}
	}
	if st := srv.Stats(); len(st) != 1 || !st[0].Connected {
		t.Errorf("server stats %+v, want the client connected once", st)
	}
}

func TestStatsFile(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	_, sr := e.serve(t, func(c *ServerConfig) {
		c.StatsFile = filepath.Join(t.TempDir(), "server.json")
		c.StatsInterval = 20 * time.Millisecond
	})
	cn, ck := e.clientNode(t)
	ccfg := testClientConfig(cn.path, e.srvKey)
	ccfg.StatsFile = filepath.Join(t.TempDir(), "client.json")
	cli, cr := startClient(t, ccfg, "client", nil)
	waitReady(t, cli, cr)
	p := tuntest.IPv4(addr("10.77.0.2"), addr("10.99.0.5"), 17, []byte("counted"))
	cr.dev.Inject(p)
	recv(t, sr.dev)
	tstest.WaitFor(t, "the server's stats file to count the packet", func() bool {
		sf, err := readStatsFile(e.scfg.StatsFile)
		return err == nil && sf.Role == "vpn-server" && len(sf.Tunnels) == 1 && sf.Tunnels[0].Key == ck &&
			sf.Tunnels[0].PacketsIn == 1 && sf.Tunnels[0].BytesIn == uint64(len(p)) && sf.Tunnels[0].Addr == addr("10.77.0.2")
	})
	// The client writes at stop.
	if err := cr.stop(t); err != nil {
		t.Fatal(err)
	}
	sf, err := readStatsFile(ccfg.StatsFile)
	if err != nil || sf.Role != "vpn-client" || len(sf.Tunnels) != 1 || sf.Tunnels[0].PacketsOut != 1 || sf.Tunnels[0].Key != e.srvKey {
		t.Fatalf("client stats file: %+v, %v", sf, err)
	}
}

// readStatsFile reads a stats file the way a tool watching it would.
func readStatsFile(path string) (StatsFile, error) {
	var sf StatsFile
	b, err := os.ReadFile(path)
	if err != nil {
		return sf, err
	}
	return sf, json.Unmarshal(b, &sf)
}

// TestClientReaddressed: a server that lost its state assigns another
// address; the client re-addresses its device and keeps its routes.
func TestClientReaddressed(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	_, sr := e.serve(t, nil)
	// Another client takes .2 first, so ours gets .3.
	_, or, _ := e.readyNamed(t, "other", nil)
	cli, cr := e.readyClient(t, nil)
	if got := cli.Addr().Addr(); got != addr("10.77.0.3") {
		t.Fatalf("first address %s, want 10.77.0.3", got)
	}
	or.stop(t)
	sr.stop(t)
	portFree(t, e.srv, DefaultServerPort)
	e.scfg.StateDir = t.TempDir() // the state is lost
	startServer(t, e.scfg, "server2")
	tstest.WaitFor(t, "the new address", func() bool { return cli.Addr().Addr() == addr("10.77.0.2") })
	if got := cr.net.link(DefaultClientTun).addr; got != netip.MustParsePrefix("10.77.0.2/24") {
		t.Errorf("device address %s, want 10.77.0.2/24", got)
	}
	if routes, _, _ := cr.net.snapshot(); len(routes) != 1 || routes[0].Dst != netip.MustParsePrefix("10.99.0.0/16") {
		t.Errorf("routes after re-addressing: %v", routes)
	}
}

// A server keeps the counters of at most maxKnownClients clients: a new
// one beyond that makes it forget those not connected, so that keys
// coming and going cannot grow its memory (or its metrics) without end.
func TestKnownClientsBounded(t *testing.T) {
	tstest.CheckLeaks(t)
	defer func(n int) { maxKnownClients = n }(maxKnownClients)
	maxKnownClients = 2
	e := newEnv(t)
	srv, _ := e.serve(t, nil)
	for i := range 2 {
		_, cr, _ := e.readyNamed(t, fmt.Sprintf("client%d", i), nil)
		cr.stop(t)
	}
	tstest.WaitFor(t, "both clients known and disconnected", func() bool {
		st := srv.Stats()
		return len(st) == 2 && !st[0].Connected && !st[1].Connected
	})
	_, _, k := e.readyNamed(t, "client2", nil)
	if st := srv.Stats(); len(st) != 1 || st[0].Key != k || !st[0].Connected {
		t.Errorf("after a third client with room for two: %+v, want only the third, connected", st)
	}
}
