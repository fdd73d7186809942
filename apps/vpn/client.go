package vpn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/apps/internal/approle"
	"github.com/skywire-mesh/skywire/keys"
)

// dialTimeout bounds one attempt to open the control stream.
const dialTimeout = 20 * time.Second

// Client is vpn-client: it creates a TUN device with the address the
// server assigns, routes the configured prefixes into it and carries its
// packets to the server over the mesh.
type Client struct {
	role
	cfg     ClientConfig
	routes  []netip.Prefix
	exclude []string // hosts: addresses or names

	ready     chan struct{} // closed once the device and routes are up
	ctr       counters
	connected atomic.Bool
	serverGSO atomic.Bool // the server of the current session takes GSO datagrams

	resolve func(ctx context.Context, host string) ([]netip.Addr, error)

	mu   sync.Mutex
	addr netip.Prefix // guarded by mu: the assigned address
}

// NewClient checks cfg (filling defaults) and returns a client; Run
// starts it.
func NewClient(cfg ClientConfig, log *slog.Logger, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	routes, _ := parseRoutes(cfg.Routes)
	var exclude []string
	for _, e := range cfg.Exclude {
		h, _ := excludeHost(e)
		exclude = append(exclude, h)
	}
	c := &Client{
		cfg: cfg, routes: routes, exclude: exclude, ready: make(chan struct{}),
		resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		},
	}
	if err := c.init("vpn-client", log, opts); err != nil {
		return nil, err
	}
	return c, nil
}

// Ready is closed once the device has its address and the routes are
// installed.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// Addr returns the assigned address with the pool's prefix length
// (invalid before the first assignment).
func (c *Client) Addr() netip.Prefix {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// Stats returns the tunnel's counters.
func (c *Client) Stats() Stats {
	st := Stats{Key: c.cfg.Server, Addr: c.Addr().Addr(), Connected: c.connected.Load()}
	c.ctr.fill(&st)
	return st
}

// session is an established control stream.
type session struct {
	conn net.Conn
	addr netip.Prefix
	gw   netip.Addr
	mtu  int
	ka   time.Duration
	gso  bool // the server takes GSO datagrams
}

// Run connects to the server (retrying with backoff), sets up the device
// and routes, and carries packets until ctx is done (nil), the node goes
// away (appnet.ErrNodeLost), the server refuses the client (ErrNotAllowed,
// ErrVersion) or the device fails (ErrDevice). While the server is
// unreachable the device and routes stay (traffic is dropped, not leaked
// outside the tunnel) and the client reconnects, keeping its address.
// Before Run returns, every route it added and the device are removed
// and its goroutines have stopped. A Client runs once.
func (c *Client) Run(ctx context.Context) error {
	return c.runOnce(func() error { return c.run(ctx) })
}

func (c *Client) run(ctx context.Context) (err error) {
	g, err := approle.Connect(ctx, c.cfg.NodeSocket, "vpn-client", c.cfg.Port, c.baseLog)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, g.Stop)
	defer stop()
	g.OnClose(func() { logDropped(c.log, g.App()) })
	if c.cfg.StatsFile != "" {
		g.Go(func() {
			statsLoop(g.Context(), c.log, c.cfg.StatsFile, c.cfg.StatsInterval, func() StatsFile {
				return StatsFile{Role: "vpn-client", Time: time.Now().UTC(), Tunnels: []Stats{c.Stats()}}
			})
		})
	}
	t, sess, err := c.openTunnel(g.Context(), g.App())
	if err == nil {
		// Closing the tunnel (routes first, while the device that holds
		// them exists) ends tunToMesh; meshToTun ends with g's context.
		g.OnClose(func() { t.Close() })
		g.Go(func() { meshToTun(g.Context(), c.log, g.App(), t.dev, c.fromMesh) })
		g.Go(func() {
			if err := tunToMesh(g.App(), t.dev, c.toMesh); err != nil {
				g.Fail(fmt.Errorf("%w: %w", ErrDevice, err))
			}
		})
		c.serverGSO.Store(sess.gso)
		c.connected.Store(true)
		close(c.ready)
		err = c.keepConnected(g.Context(), g.App(), t, sess)
	}
	err = g.Cause(err)
	if err == nil {
		c.log.Info("stopping")
	}
	g.Close()
	if t != nil {
		if cerr := t.Close(); cerr != nil { // Close's error again: it ran in g.Close
			c.log.Error("cleanup failed", "err", cerr)
			if err == nil {
				err = fmt.Errorf("clean up: %w", cerr)
			}
		} else {
			c.log.Info("device and routes removed", "tun", t.dev.Name(), "routes", len(t.routes))
		}
	}
	return err
}

// openTunnel reaches the server, then creates the device with the
// address the server assigned and routes into it. On failure nothing it
// did stays.
func (c *Client) openTunnel(ctx context.Context, app *appnet.Client) (*tunnelSetup, *session, error) {
	sess, err := c.connect(ctx, app)
	if err != nil {
		return nil, nil, err
	}
	t, err := openTunnel(c.opts.open, c.opts.net, c.cfg.Tun)
	if err != nil {
		sess.conn.Close()
		return nil, nil, asNeedRoot(err)
	}
	if err := c.setupHost(ctx, t, sess); err != nil {
		sess.conn.Close()
		if cerr := t.Close(); cerr != nil {
			c.log.Error("cleanup failed", "err", cerr)
		}
		return nil, nil, err
	}
	return t, sess, nil
}

// keepConnected runs the control stream and, when it is lost, reconnects
// until ctx is done (nil) or the server refuses the client.
func (c *Client) keepConnected(ctx context.Context, app *appnet.Client, t *tunnelSetup, sess *session) error {
	for {
		c.serverGSO.Store(sess.gso)
		c.connected.Store(true)
		cerr := controlLoop(ctx, sess.conn, sess.ka)
		c.connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("control stream to the server lost; reconnecting", "reason", cerr)
		var err error
		if sess, err = c.connect(ctx, app); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if old := c.Addr(); sess.addr != old {
			c.log.Warn("server assigned a new address", "old", old, "new", sess.addr)
			if err := c.readdress(ctx, t, sess); err != nil {
				sess.conn.Close()
				return err
			}
			c.mu.Lock()
			c.addr = sess.addr
			c.mu.Unlock()
		}
	}
}

func (c *Client) mtu(sess *session) int {
	if c.cfg.MTU != 0 && c.cfg.MTU < sess.mtu {
		return c.cfg.MTU
	}
	return sess.mtu
}

// readdress gives the device a new address and installs the tunnel
// routes again, in case the kernel dropped them with the old address.
func (c *Client) readdress(ctx context.Context, t *tunnelSetup, sess *session) error {
	dev := t.dev
	if err := c.opts.net.SetLink(ctx, dev.Name(), c.mtu(sess), sess.addr); err != nil {
		return fmt.Errorf("re-address %s: %w", dev.Name(), err)
	}
	for _, r := range t.routes {
		if r.Dev != dev.Name() {
			continue
		}
		if err := c.opts.net.AddRoute(ctx, r); err != nil {
			return fmt.Errorf("route %s into the tunnel: %w", r.Dst, err)
		}
	}
	return nil
}

// setupHost configures the device and installs the routes, recording
// each route in t as soon as it is in place.
func (c *Client) setupHost(ctx context.Context, t *tunnelSetup, sess *session) error {
	dev, nc := t.dev, c.opts.net
	if err := nc.SetLink(ctx, dev.Name(), c.mtu(sess), sess.addr); err != nil {
		return fmt.Errorf("configure %s: %w", dev.Name(), err)
	}
	c.mu.Lock()
	c.addr = sess.addr
	c.mu.Unlock()
	// Peers and managers whose address the tunnel routes would capture
	// keep the route they have now.
	var keep []Route
	for _, a := range c.excludeAddrs(ctx) {
		if !c.tunnels(a) || a.IsLoopback() {
			continue
		}
		r, err := nc.RouteTo(ctx, a)
		if err != nil {
			return fmt.Errorf("keep %s outside the tunnel: %w", a, err)
		}
		if r.Dev == "lo" || r.Dev == dev.Name() {
			continue
		}
		keep = append(keep, r)
	}
	for _, r := range keep {
		if err := t.addRoute(ctx, r); err != nil {
			return fmt.Errorf("keep %s outside the tunnel: %w", r.Dst, err)
		}
	}
	for _, p := range c.routes {
		if err := t.addRoute(ctx, Route{Dst: p, Dev: dev.Name()}); err != nil {
			return fmt.Errorf("route %s into the tunnel: %w", p, err)
		}
	}
	c.log.Info("tunnel up", "tun", dev.Name(), "addr", sess.addr, "mtu", c.mtu(sess), "offload", offloadState(dev), "routes", c.routes, "kept_outside", len(keep))
	return nil
}

// excludeAddrs resolves the exclude list to IPv4 addresses. A name that
// does not resolve is logged and skipped: that peer is unreachable anyway.
func (c *Client) excludeAddrs(ctx context.Context) []netip.Addr {
	var out []netip.Addr
	for _, h := range c.exclude {
		if a, err := netip.ParseAddr(h); err == nil {
			out = append(out, a)
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		as, err := c.resolve(rctx, h)
		cancel()
		if err != nil {
			c.log.Warn("cannot resolve a peer to keep outside the tunnel", "host", h, "err", err)
			continue
		}
		out = append(out, as...)
	}
	return out
}

// tunnels reports whether a configured route covers a.
func (c *Client) tunnels(a netip.Addr) bool {
	for _, p := range c.routes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// connect opens the control stream and runs the hello exchange, retrying
// transient failures (no route, nobody listening, timeouts, a full pool)
// with backoff up to RetryMax. It stops at a refusal that will not change
// (ErrNotAllowed, ErrVersion) and when ctx is done.
func (c *Client) connect(ctx context.Context, app *appnet.Client) (*session, error) {
	wait := 500 * time.Millisecond
	for {
		sess, err := c.handshake(ctx, app)
		if err == nil {
			return sess, nil
		}
		if errors.Is(err, ErrNotAllowed) || errors.Is(err, ErrVersion) || ctx.Err() != nil {
			return nil, err
		}
		c.log.Warn("cannot reach the vpn server; retrying", "server", c.cfg.Server.Short(), "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, max(c.cfg.RetryMax, 500*time.Millisecond))
	}
}

func (c *Client) handshake(ctx context.Context, app *appnet.Client) (*session, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := app.Dial(dctx, c.cfg.Server, c.cfg.ServerPort)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(helloTimeout))
	if err := writeMsg(conn, &hello{Version: protoVersion, Port: u16(c.cfg.Port), MTU: u16(c.cfg.MTU), GSO: true}); err != nil {
		conn.Close()
		return nil, err
	}
	m, err := readMsg(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read the server's answer: %w", err)
	}
	switch m := m.(type) {
	case *assign:
		addr, gw, err := m.parsed()
		if err != nil {
			conn.Close()
			return nil, err
		}
		ka := time.Duration(m.Keepalive) * time.Millisecond
		if ka == 0 {
			ka = DefaultServerConfig().Keepalive
		}
		ka = min(max(ka, 10*time.Millisecond), time.Minute)
		conn.SetDeadline(time.Time{})
		return &session{conn: conn, addr: addr, gw: gw, mtu: int(min(m.MTU, MaxMTU)), ka: ka, gso: m.GSO}, nil
	case *refuse:
		conn.Close()
		switch m.Code {
		case refuseNotAllowed:
			return nil, fmt.Errorf("%w (%s)", ErrNotAllowed, m.Msg)
		case refuseVersion:
			return nil, fmt.Errorf("%w (%s)", ErrVersion, m.Msg)
		}
		return nil, fmt.Errorf("refused by the server: code %d: %s", m.Code, m.Msg)
	default:
		conn.Close()
		return nil, fmt.Errorf("%w: server answered %T to hello", ErrMalformed, m)
	}
}

// fromMesh picks the counters of a datagram from the mesh: only the
// server's packets to the client's address are taken.
func (c *Client) fromMesh(b []byte, from keys.PublicKey, port uint16) *counters {
	if !from.Equal(c.cfg.Server) || port != c.cfg.ServerPort {
		c.ctr.drop(dropStranger)
		c.log.Debug("datagram not from the server dropped", "from", from.Short(), "port", port)
		return nil
	}
	if _, dst, ok := ipv4Addrs(b); !ok || dst != c.Addr().Addr() {
		c.ctr.drop(either(ok, dropMisaddressed, dropMalformed))
		c.log.Debug("packet dropped: not IPv4 to the client's address", "dst", dst, "len", len(b))
		return nil
	}
	return &c.ctr
}

// toMesh sends the device's IPv4 packets to the server; others (IPv6
// neighbour discovery, …) and packets read while disconnected are
// dropped.
func (c *Client) toMesh(b []byte) (keys.PublicKey, uint16, *counters, bool) {
	if _, _, ok := ipv4Addrs(b); !ok || !c.connected.Load() {
		c.ctr.drop(either(ok, dropDisconnected, dropMalformed))
		return keys.PublicKey{}, 0, nil, false
	}
	return c.cfg.Server, c.cfg.ServerPort, &c.ctr, c.serverGSO.Load()
}
