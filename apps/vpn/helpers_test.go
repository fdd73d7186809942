package vpn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/apps/vpn/tuntest"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

// logSink keeps log lines for assertions and echoes them with -v.
type logSink struct {
	echo io.Writer // the test log with -v, else nil
	mu   sync.Mutex
	buf  bytes.Buffer
}

func newLogSink(tb testing.TB, prefix string) *logSink {
	s := &logSink{}
	if testing.Verbose() {
		s.echo = tstest.LogWriter(tb, prefix)
	}
	return s
}

func (s *logSink) Write(b []byte) (int, error) {
	s.mu.Lock()
	s.buf.Write(b)
	s.mu.Unlock()
	if s.echo != nil {
		s.echo.Write(b)
	}
	return len(b), nil
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func newLog(tb testing.TB, prefix string) (*slog.Logger, *logSink) {
	s := newLogSink(tb, prefix)
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug})), s
}

// meshNode is a fake mesh node with an app server on a unix socket.
type meshNode struct {
	mesh *fakemesh.Node
	srv  *appserver.Server
	path string
	once sync.Once
	quit func()
}

func newMeshNode(tb testing.TB, n *fakemesh.Network, k keys.PublicKey) *meshNode {
	tb.Helper()
	mn, err := n.AddNode(k)
	if err != nil {
		tb.Fatal(err)
	}
	srv, path, stopServer := fakemesh.ServeApps(tb, mn, nil)
	nd := &meshNode{mesh: mn, srv: srv, path: path}
	nd.quit = func() {
		stopServer()
		mn.Close()
	}
	tb.Cleanup(nd.stop)
	return nd
}

// stop takes the node away (its apps see Done).
func (nd *meshNode) stop() { nd.once.Do(nd.quit) }

// fakeNet is a NetConfig that keeps the host's state in memory.
type fakeNet struct {
	mu       sync.Mutex
	links    map[string]linkState
	routes   []Route
	forward  bool
	masq     map[string]netip.Prefix
	routeTo  map[netip.Addr]Route
	failAdd  netip.Prefix // AddRoute of this prefix fails
	setLinks int
}

type linkState struct {
	mtu  int
	addr netip.Prefix
}

var errFake = errors.New("fake net: refused")

func newFakeNet() *fakeNet {
	return &fakeNet{links: map[string]linkState{}, masq: map[string]netip.Prefix{}, routeTo: map[netip.Addr]Route{}}
}

func (f *fakeNet) SetLink(_ context.Context, dev string, mtu int, addr netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links[dev] = linkState{mtu, addr}
	f.setLinks++
	return nil
}

func (f *fakeNet) AddRoute(_ context.Context, r Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Dst == f.failAdd {
		return fmt.Errorf("add route %s: %w", r, errFake)
	}
	if !slices.Contains(f.routes, r) {
		f.routes = append(f.routes, r)
	}
	return nil
}

func (f *fakeNet) DelRoute(_ context.Context, r Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.Index(f.routes, r)
	if i < 0 {
		return fmt.Errorf("del route %s: no such route: %w", r, errFake)
	}
	f.routes = slices.Delete(f.routes, i, i+1)
	return nil
}

func (f *fakeNet) RouteTo(_ context.Context, dst netip.Addr) (Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.routeTo[dst]; ok {
		return r, nil
	}
	return Route{Dst: netip.PrefixFrom(dst, 32), Via: netip.MustParseAddr("192.0.2.1"), Dev: "eth0"}, nil
}

func (f *fakeNet) SetForwarding(_ context.Context, on bool) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.forward
	f.forward = on
	return old, nil
}

func (f *fakeNet) Masquerade(_ context.Context, pool netip.Prefix, tun string) (func(context.Context) error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.masq[tun] = pool
	return func(context.Context) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.masq, tun)
		return nil
	}, nil
}

func (f *fakeNet) link(dev string) linkState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.links[dev]
}

func (f *fakeNet) linkSets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.setLinks
}

func (f *fakeNet) snapshot() (routes []Route, forward bool, masq int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.routes), f.forward, len(f.masq)
}

// run is a role running in the background.
type run struct {
	cancel context.CancelFunc
	done   chan error
	dev    *tuntest.Device
	net    *fakeNet
	opened chan struct{} // closed when the device was opened
}

// stop cancels the role and returns what Run returned.
func (r *run) stop(tb testing.TB) error {
	tb.Helper()
	r.cancel()
	return r.result(tb, " of cancel")
}

// wait returns what Run returned, without cancelling it.
func (r *run) wait(tb testing.TB) error {
	tb.Helper()
	return r.result(tb, "")
}

// result waits up to 10s for what Run returned and puts it back for the
// next caller; after says what the 10s count from, in the failure.
func (r *run) result(tb testing.TB, after string) error {
	tb.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(10 * time.Second):
		tb.Fatalf("Run did not return within 10s%s", after)
		return nil
	}
}

// start runs role (a Server's or Client's Run) until the test ends or r
// is stopped.
func (r *run) start(tb testing.TB, role func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- role(ctx) }()
	tb.Cleanup(func() { r.stop(tb) })
}

// waitFor waits up to 10s for ready (a role's Ready), failing the test if
// the role stops first.
func (r *run) waitFor(tb testing.TB, role string, ready <-chan struct{}) {
	tb.Helper()
	select {
	case <-ready:
	case err := <-r.done:
		tb.Fatalf("%s stopped: %v", role, err)
	case <-time.After(10 * time.Second):
		tb.Fatalf("%s not ready in 10s", role)
	}
}

// offloadDevs, set by a test (never in parallel), makes newRun's devices
// fake TUN devices with offloads (tuntest.NewOffload).
var offloadDevs = map[string]bool{}

func newRun(tb testing.TB, name string) (*run, []Option) {
	dev := tuntest.New(name)
	if offloadDevs[name] {
		dev = tuntest.NewOffload(name)
	}
	r := &run{done: make(chan error, 1), dev: dev, net: newFakeNet(), opened: make(chan struct{})}
	var once sync.Once
	opts := []Option{
		WithTUN(func(n string) (Device, error) {
			if n != name {
				return nil, fmt.Errorf("open %q, want %q", n, name)
			}
			once.Do(func() { close(r.opened) })
			return r.dev, nil
		}),
		WithNetConfig(r.net),
	}
	return r, opts
}

func testServerConfig(tb testing.TB, socket string) ServerConfig {
	cfg := DefaultServerConfig()
	cfg.NodeSocket = socket
	cfg.StateDir = tb.TempDir()
	cfg.AllowAll = true
	// A control stream is dropped after three missed keepalives: short
	// enough that tests of a lost peer end soon, long enough that a
	// loaded machine's stall does not drop a healthy tunnel (at 100 ms,
	// a 300 ms stall reconnected it and lost the datagrams in flight).
	cfg.Keepalive = tstest.Scaled(2 * time.Second)
	// The tests' targets are on 10.99.0.0/16 (the client's routes), a
	// private range the default destination policy refuses.
	cfg.AllowDestinations = []string{"10.99.0.0/16"}
	return cfg
}

func testClientConfig(socket string, server keys.PublicKey) ClientConfig {
	cfg := DefaultClientConfig()
	cfg.NodeSocket = socket
	cfg.Server = server
	cfg.Routes = []string{"10.99.0.0/16"}
	cfg.RetryMax = 200 * time.Millisecond
	return cfg
}

// startServer runs a server; cleanup stops it.
func startServer(tb testing.TB, cfg ServerConfig, name string) (*Server, *run) {
	tb.Helper()
	log, _ := newLog(tb, name+": ")
	return startServerLog(tb, cfg, log)
}

// startServerLog runs a server logging to log and waits until it serves;
// cleanup stops it.
func startServerLog(tb testing.TB, cfg ServerConfig, log *slog.Logger) (*Server, *run) {
	tb.Helper()
	r, opts := newRun(tb, cfg.Tun)
	s, err := NewServer(cfg, log, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	r.start(tb, s.Run)
	r.waitFor(tb, "server", s.Ready())
	return s, r
}

// startClient runs a client without waiting for it.
func startClient(tb testing.TB, cfg ClientConfig, name string, log *slog.Logger) (*Client, *run) {
	tb.Helper()
	r, opts := newRun(tb, cfg.Tun)
	if log == nil {
		log, _ = newLog(tb, name+": ")
	}
	c, err := NewClient(cfg, log, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	r.start(tb, c.Run)
	return c, r
}

// waitReady waits for a client's tunnel to be up.
func waitReady(tb testing.TB, c *Client, r *run) {
	tb.Helper()
	r.waitFor(tb, "client", c.Ready())
}

// recv returns the next packet written to dev.
func recv(tb testing.TB, dev *tuntest.Device) []byte {
	tb.Helper()
	select {
	case p := <-dev.Written():
		return p
	case <-time.After(tstest.Scaled(tstest.WaitTimeout)):
		tb.Fatalf("no packet written to %s in %v", dev.Name(), tstest.Scaled(tstest.WaitTimeout))
		return nil
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }
