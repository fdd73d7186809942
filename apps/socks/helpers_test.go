package socks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/node/nodeapp"
)

// meshNode is a mesh node with an app server on a unix socket: a fake
// one (mesh is set), or a real node of a meshtest mesh.
type meshNode struct {
	mesh *fakemesh.Node // nil for a real node
	key  keys.PublicKey
	srv  *appserver.Server
	path string
}

func newMeshNode(tb testing.TB, n *fakemesh.Network, name string) *meshNode {
	tb.Helper()
	mn, err := n.NewNode()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { mn.Close() }) // after the app server's cleanup
	nd := serveNode(tb, mn, name)
	nd.mesh, nd.key = mn, mn.PublicKey()
	return nd
}

// newRealNode serves the apps of node i of m.
func newRealNode(tb testing.TB, m *meshtest.Mesh, i int, name string) *meshNode {
	tb.Helper()
	nd := serveNode(tb, nodeapp.Mesh(m.Nodes[i].Node), name)
	nd.key = m.Nodes[i].Keys.Public
	return nd
}

func serveNode(tb testing.TB, mn appserver.Mesh, name string) *meshNode {
	tb.Helper()
	srv, path, _ := fakemesh.ServeApps(tb, mn, tstest.VerboseLogger(tb, name+" node: "))
	return &meshNode{srv: srv, path: path}
}

// env is a socks-client and a socks-server on two nodes of a fake mesh.
type env struct {
	net              *fakemesh.Network
	cliNode, srvNode *meshNode
	client           *Client
	server           *Server
	proxy            string // the client's SOCKS address
}

type envOptions struct {
	client  func(*ClientConfig)
	server  func(*ServerConfig)
	srvOpts []ServerOption
	// configLookup leaves the server's resolver as its config says (the
	// system's, or server.Resolver) instead of testLookup.
	configLookup bool
	// realMesh puts the client and the server on the ends of a line of
	// real nodes linked over loopback TCP, relays of them in between.
	realMesh bool
	relays   int
}

func newEnv(tb testing.TB, o envOptions) *env {
	tb.Helper()
	e := &env{}
	if o.realMesh {
		nodes := o.relays + 2
		m := meshtest.New(tb, meshtest.Options{Nodes: nodes, Links: meshtest.Line(nodes), TCP: true})
		m.WaitReady()
		e.srvNode = newRealNode(tb, m, 0, "server")
		e.cliNode = newRealNode(tb, m, nodes-1, "client")
	} else {
		e.net = fakemesh.New()
		e.srvNode = newMeshNode(tb, e.net, "server")
		e.cliNode = newMeshNode(tb, e.net, "client")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	scfg := DefaultServerConfig()
	scfg.NodeSocket = e.srvNode.path
	scfg.Allow = []keys.PublicKey{e.cliNode.key}
	// Generous: a loaded machine must not turn a slow connect into a
	// failed one (tests of the timeouts set their own).
	scfg.DialTimeout = tstest.Scaled(tstest.WaitTimeout)
	// The tests' targets listen on the loopback, which the default
	// destination policy refuses.
	scfg.AllowDestinations = []string{"127.0.0.0/8", "::1/128"}
	if o.server != nil {
		o.server(&scfg)
	}
	srvOpts := append([]ServerOption{WithLookup(testLookup)}, o.srvOpts...)
	if o.configLookup {
		srvOpts = o.srvOpts
	}
	srv, err := NewServer(ctx, scfg, tstest.VerboseLogger(tb, "socks-server: "), srvOpts...)
	if err != nil {
		tb.Fatal(err)
	}
	e.server = srv
	tstest.RunUntilCleanup(tb, "server Run", srv.Run)

	ccfg := DefaultClientConfig()
	ccfg.NodeSocket = e.cliNode.path
	ccfg.Listen = "127.0.0.1:0"
	ccfg.Server = e.srvNode.key
	ccfg.ConnectTimeout = tstest.Scaled(2 * time.Minute) // 30 s ran out for TestParallelConnections with three make tests at once
	if o.client != nil {
		o.client(&ccfg)
	}
	cli, err := NewClient(ctx, ccfg, tstest.VerboseLogger(tb, "socks-client: "))
	if err != nil {
		tb.Fatal(err)
	}
	e.client = cli
	e.proxy = cli.Addr().String()
	tstest.RunUntilCleanup(tb, "client Run", cli.Run)
	return e
}

// socksError is a SOCKS reply other than succeeded.
type socksError struct{ rep Reply }

func (e *socksError) Error() string { return "socks reply: " + e.rep.String() }

// replyOf returns the reply code of a socksDial error (0 if none).
func replyOf(err error) Reply {
	var se *socksError
	if errors.As(err, &se) {
		return se.rep
	}
	return 0
}

// socksHandshake is a tiny SOCKS5 client: method selection, optional
// RFC 1929 auth, request. It returns the bound address of the reply.
//
// Its deadline only turns a hang into a failure: two hundred handshakes
// at once through race-built apps on a loaded machine take a while.
func socksHandshake(conn net.Conn, user, pass string, cmd byte, dst addr) (addr, error) {
	conn.SetDeadline(time.Now().Add(tstest.Scaled(3 * time.Minute)))
	defer conn.SetDeadline(time.Time{})
	method := byte(methodNoAuth)
	if user != "" {
		method = methodUserPass
	}
	if _, err := conn.Write([]byte{5, 1, method}); err != nil {
		return addr{}, err
	}
	var b [2]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return addr{}, fmt.Errorf("read method: %w", err)
	}
	if b[0] != 5 || b[1] != method {
		return addr{}, fmt.Errorf("method answer %x", b)
	}
	if user != "" {
		msg := append([]byte{1, byte(len(user))}, user...)
		msg = append(append(msg, byte(len(pass))), pass...)
		if _, err := conn.Write(msg); err != nil {
			return addr{}, err
		}
		if _, err := io.ReadFull(conn, b[:]); err != nil {
			return addr{}, fmt.Errorf("read auth status: %w", err)
		}
		if b[1] != 0 {
			return addr{}, fmt.Errorf("%w: status %d", ErrAuth, b[1])
		}
	}
	req, err := appendAddr([]byte{5, cmd, 0}, dst)
	if err != nil {
		return addr{}, err
	}
	if _, err := conn.Write(req); err != nil {
		return addr{}, err
	}
	var h [3]byte
	if _, err := io.ReadFull(conn, h[:]); err != nil {
		return addr{}, fmt.Errorf("read reply: %w", err)
	}
	bnd, err := readAddr(conn)
	if err != nil {
		return addr{}, fmt.Errorf("read reply address: %w", err)
	}
	if h[1] != 0 {
		return bnd, &socksError{Reply(h[1])}
	}
	return bnd, nil
}

// socksDial connects to dst through the proxy.
func socksDial(proxy, user, pass string, dst addr) (net.Conn, error) {
	conn, err := net.Dial("tcp", proxy)
	if err != nil {
		return nil, err
	}
	if _, err := socksHandshake(conn, user, pass, cmdConnect, dst); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// closeAtEnd returns c, failing the test at once if err (from opening c)
// is not nil; c is closed when the test ends.
func closeAtEnd[C io.Closer](tb testing.TB, c C, err error) C {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// dialTCP connects to address; see closeAtEnd.
func dialTCP(tb testing.TB, address string) net.Conn {
	tb.Helper()
	conn, err := net.Dial("tcp", address)
	return closeAtEnd(tb, conn, err)
}

// dialRelay opens a UDP socket to the relay bound by a UDP ASSOCIATE; see
// closeAtEnd.
func dialRelay(tb testing.TB, bnd addr) *net.UDPConn {
	tb.Helper()
	app, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(bnd.IP, bnd.Port)))
	return closeAtEnd(tb, app, err)
}

// dial connects through e's proxy, without authentication, to target
// ("host:port"); see closeAtEnd.
func (e *env) dial(tb testing.TB, target string) net.Conn {
	tb.Helper()
	conn, err := socksDial(e.proxy, "", "", hostAddr(tb, target))
	return closeAtEnd(tb, conn, err)
}

// hostAddr parses "host:port" into an addr: an IP if host is one, else a
// name.
func hostAddr(tb testing.TB, hostport string) addr {
	tb.Helper()
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		tb.Fatal(err)
	}
	var p uint16
	fmt.Sscan(port, &p)
	if ip, err := netip.ParseAddr(host); err == nil {
		return addr{IP: ip, Port: p}
	}
	return addr{Name: host, Port: p}
}

// testNames are the names testLookup knows besides localhost: the
// targets of errDialer, on addresses of TEST-NET-2 (which the default
// destination policy allows).
var testNames = map[string]netip.Addr{
	"hostunreach.test": netip.MustParseAddr("198.51.100.1"),
	"netunreach.test":  netip.MustParseAddr("198.51.100.2"),
	"blackhole.test":   netip.MustParseAddr("198.51.100.3"),
	"weird.test":       netip.MustParseAddr("198.51.100.4"),
	"slow.test":        netip.MustParseAddr("198.51.100.5"),
}

// testLookup is the servers' resolver in tests, so that no test asks
// the machine's: localhost is 127.0.0.1 and ::1, the names of testNames
// their address, and every other name is not found.
func testLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if host == "localhost" {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}, nil
	}
	if ip, ok := testNames[host]; ok {
		return []netip.Addr{ip}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}
