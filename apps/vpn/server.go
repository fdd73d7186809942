package vpn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/apps/internal/approle"
	"github.com/skywire-mesh/skywire/apps/internal/exitpolicy"
	"github.com/skywire-mesh/skywire/keys"
)

// helloTimeout bounds the control exchange of a new client.
const helloTimeout = 10 * time.Second

// Server is vpn-server: it owns a TUN device and the address pool and
// forwards IP packets between the device and its clients.
type Server struct {
	role
	cfg  ServerConfig
	pool netip.Prefix
	gw   netip.Addr // the server's address in the pool
	ka   time.Duration

	ready chan struct{} // closed once clients are served
	// Packets no client could be found for: datagrams from a key or port
	// that is no connected client, packets from the device to an address
	// no connected client has.
	unknownClient, noClient atomic.Uint64

	// policy decides which destinations outside the pool clients reach.
	policy     *exitpolicy.Policy
	refusedLog exitpolicy.LogLimiter
	icmpLimit  exitpolicy.LogLimiter // paces the ICMP errors sent back
	app        *appnet.Client        // set before the packet loops start

	// leaseMu serialises handshakes: assigning an address (which writes
	// the state file) and registering the peer. Taken before mu.
	leaseMu sync.Mutex
	leases  *leases // guarded by leaseMu

	// mu guards the tables the packet path reads.
	mu       sync.RWMutex
	byKey    map[keys.PublicKey]*peer      // guarded by mu: connected clients
	byAddr   map[netip.Addr]*peer          // guarded by mu
	counts   map[keys.PublicKey]*counters  // guarded by mu: per client, kept across reconnects
	lastAddr map[keys.PublicKey]netip.Addr // guarded by mu: each client's latest address
	stopped  bool                          // guarded by mu: no new peers
}

// peer is one connected client.
type peer struct {
	key  keys.PublicKey
	addr netip.Addr
	port uint16 // the client's datagram port
	conn net.Conn
	ctr  *counters
	gso  bool // the client takes GSO datagrams
}

// NewServer checks cfg (filling defaults) and returns a server; Run
// starts it.
func NewServer(cfg ServerConfig, log *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pool, _ := parsePool(cfg.Pool)
	gw := pool.Addr().Next()
	// The server's own addresses include its pool address (and so the
	// pool's broadcast), even before the device has it.
	policy, err := exitpolicy.Parse("vpn_server", cfg.AllowDestinations, cfg.DenyDestinations,
		exitpolicy.WithLocalAddrs(func() ([]netip.Prefix, error) {
			ps, err := exitpolicy.InterfaceAddrs()
			return append(ps, netip.PrefixFrom(gw, pool.Bits())), err
		}))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s := &Server{
		cfg: cfg, pool: pool, gw: gw, ka: cfg.Keepalive, policy: policy,
		icmpLimit: exitpolicy.LogLimiter{Every: 10 * time.Millisecond},
		ready:     make(chan struct{}),
		byKey:     map[keys.PublicKey]*peer{},
		byAddr:    map[netip.Addr]*peer{},
		counts:    map[keys.PublicKey]*counters{},
		lastAddr:  map[keys.PublicKey]netip.Addr{},
	}
	if err := s.init("vpn-server", log, opts); err != nil {
		return nil, err
	}
	return s, nil
}

// maxKnownClients bounds the clients whose counters a Server keeps (a
// variable for tests): beyond it, those not connected are forgotten.
var maxKnownClients = 4096

// forgetDisconnectedLocked drops the counters of every client that is not
// connected now. The caller holds s.mu.
func (s *Server) forgetDisconnectedLocked() {
	n := 0
	for k := range s.counts {
		if s.byKey[k] == nil {
			delete(s.counts, k)
			delete(s.lastAddr, k)
			n++
		}
	}
	s.log.Info("counters of disconnected clients forgotten", "clients", n, "max_known_clients", maxKnownClients)
}

// Ready is closed once the server has its device and serves clients.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Dropped counts packets from the TUN device to an address no connected
// client has, and datagrams from unknown clients.
func (s *Server) Dropped() uint64 { return s.unknownClient.Load() + s.noClient.Load() }

// Drops splits Dropped by reason: "unknown_client" (a datagram from a key
// or port that is no connected client) and "no_client" (a packet from
// the device to an address no connected client has).
func (s *Server) Drops() map[string]uint64 {
	return map[string]uint64{"unknown_client": s.unknownClient.Load(), "no_client": s.noClient.Load()}
}

// Stats returns the counters of every client seen since Run started
// (beyond 4096 clients, those not connected are forgotten), ordered by
// address.
func (s *Server) Stats() []Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Stats
	for k, c := range s.counts {
		st := Stats{Key: k, Addr: s.lastAddr[k], Connected: s.byKey[k] != nil}
		c.fill(&st)
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b Stats) int { return a.Addr.Compare(b.Addr) })
	return out
}

// Run serves until ctx is done (nil) or the node goes away
// (appnet.ErrNodeLost) or the TUN device fails (ErrDevice). It removes
// the device and undoes its forwarding and masquerade settings before it
// returns, after every goroutine has stopped. A Server runs once.
func (s *Server) Run(ctx context.Context) error {
	return s.runOnce(func() error { return s.run(ctx) })
}

func (s *Server) run(ctx context.Context) error {
	ls, dropped, err := loadLeases(s.cfg.StateDir, s.pool)
	if err != nil {
		return err
	}
	if len(dropped) > 0 {
		s.log.Warn("leases outside the pool or duplicated forgotten", "pool", s.pool, "leases", dropped)
	}
	s.leaseMu.Lock()
	s.leases = ls
	s.leaseMu.Unlock()

	t, err := s.openTunnel(ctx)
	if err == nil {
		err = s.serve(ctx, t)
	}
	if t != nil {
		if cerr := t.Close(); cerr != nil {
			s.log.Error("cleanup failed", "err", cerr)
			if err == nil {
				err = fmt.Errorf("clean up: %w", cerr)
			}
		}
	}
	return err
}

// openTunnel creates the device and configures it, forwarding and
// masquerade. On failure it returns the tunnel as far as it got (or
// nil), for the caller to close.
func (s *Server) openTunnel(ctx context.Context) (*tunnelSetup, error) {
	nc := s.opts.net
	t, err := openTunnel(s.opts.open, nc, s.cfg.Tun)
	if err != nil {
		return nil, asNeedRoot(err)
	}
	dev := t.dev
	if err := nc.SetLink(ctx, dev.Name(), s.cfg.MTU, netip.PrefixFrom(s.gw, s.pool.Bits())); err != nil {
		return t, fmt.Errorf("configure %s: %w", dev.Name(), err)
	}
	if s.cfg.Forward || s.cfg.Exit {
		old, err := nc.SetForwarding(ctx, true)
		if err != nil {
			return t, fmt.Errorf("enable forwarding: %w", err)
		}
		if !old {
			t.onClose(func(ctx context.Context) error {
				_, err := nc.SetForwarding(ctx, false)
				return err
			})
		}
	}
	if s.cfg.Exit {
		undo, err := nc.Masquerade(ctx, s.pool, dev.Name())
		if err != nil {
			return t, fmt.Errorf("masquerade %s: %w", s.pool, err)
		}
		t.onClose(undo)
	}
	return t, nil
}

// serve registers with the node and forwards packets between the device
// and the clients until ctx is done, the node goes away or the device
// fails; then it stops every goroutine.
func (s *Server) serve(ctx context.Context, t *tunnelSetup) error {
	g, err := approle.Connect(ctx, s.cfg.NodeSocket, "vpn-server", s.cfg.Port, s.baseLog)
	if err != nil {
		return err
	}
	app, dev := g.App(), t.dev
	s.app = app
	g.OnClose(func() { logDropped(s.log, app) })
	// The loops end with g's context, the clients' control streams and
	// the device, which the tunnel's Close closes last (Run reports its
	// errors).
	g.OnClose(func() {
		s.mu.Lock()
		s.stopped = true
		for _, p := range s.byKey {
			p.conn.Close()
		}
		s.mu.Unlock()
		t.Close()
	})
	s.log.Info("serving", "tun", dev.Name(), "addr", netip.PrefixFrom(s.gw, s.pool.Bits()), "mtu", s.cfg.MTU, "offload", offloadState(dev),
		"port", s.cfg.Port, "key", app.LocalKey(), "allow_all", s.cfg.AllowAll, "allowed", len(s.cfg.Allow), "exit", s.cfg.Exit,
		"destinations", s.policy.String(), "leases", s.leases.path)
	if err := s.policy.LocalErr(); err != nil {
		s.log.Warn("the host's own addresses are unknown, so not refused (the pool address still is)", "err", err)
	}
	if s.cfg.StatsFile != "" {
		g.Go(func() {
			statsLoop(g.Context(), s.log, s.cfg.StatsFile, s.cfg.StatsInterval, func() StatsFile {
				return StatsFile{Role: "vpn-server", Time: time.Now().UTC(), Tunnels: s.Stats(), Dropped: s.Dropped()}
			})
		})
	}
	g.Go(func() { s.acceptLoop(g) })
	g.Go(func() { meshToTun(g.Context(), s.log, app, dev, s.fromMesh) })
	g.Go(func() {
		if err := tunToMesh(app, dev, s.toMesh); err != nil {
			g.Fail(fmt.Errorf("%w: %w", ErrDevice, err))
		}
	})
	close(s.ready)

	err = g.Run(ctx)
	switch {
	case err == nil:
		s.log.Info("stopping")
	case errors.Is(err, ErrDevice):
		s.log.Error("tun device failed; stopping", "err", err)
	default:
		s.log.Error("node went away; stopping", "err", err)
	}
	g.Close()
	return err
}

func (s *Server) acceptLoop(g *approle.Group) {
	ctx := g.Context()
	for {
		conn, from, err := g.App().Accept(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, appnet.ErrClosed) {
				s.log.Warn("accept failed", "err", err)
			}
			return
		}
		g.Go(func() { s.serveConn(ctx, conn, from) })
	}
}

// allowed reports whether k may use the VPN.
func (s *Server) allowed(k keys.PublicKey) bool {
	if s.cfg.AllowAll {
		return true
	}
	for _, a := range s.cfg.Allow {
		if a.Equal(k) {
			return true
		}
	}
	return false
}

// refuse tells the client why and logs it.
func (s *Server) refuse(conn net.Conn, from keys.PublicKey, code uint8, reason string) {
	s.log.Warn("client refused", "client", from, "reason", reason)
	conn.SetWriteDeadline(time.Now().Add(time.Second))
	writeMsg(conn, &refuse{Code: u8(code), Msg: reason})
	conn.Close()
}

// serveConn runs the control exchange of one client and then its
// keepalives until the stream dies, is replaced, or the server stops.
func (s *Server) serveConn(ctx context.Context, conn net.Conn, from keys.PublicKey) {
	log := s.log.With("client", from.Short())
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(helloTimeout))
	m, err := readMsg(conn)
	if err != nil {
		log.Info("control stream closed before hello", "err", err)
		conn.Close()
		return
	}
	h, ok := m.(*hello)
	switch {
	case !ok:
		log.Info("control stream closed: first message is not hello", "type", fmt.Sprintf("%T", m))
		conn.Close()
		return
	case h.Version != protoVersion:
		s.refuse(conn, from, refuseVersion, fmt.Sprintf("protocol version %d not supported (want %d)", h.Version, protoVersion))
		return
	case h.Port == 0:
		s.refuse(conn, from, refuseBadHello, "hello without a datagram port")
		return
	case !s.allowed(from):
		s.refuse(conn, from, refuseNotAllowed, "key not in vpn_server.allow")
		return
	}

	p := &peer{key: from, port: uint16(h.Port), conn: conn, gso: h.GSO}
	s.leaseMu.Lock()
	addr, err := s.leases.assign(from, func(a netip.Addr) bool {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return s.byAddr[a] != nil
	})
	if err != nil && !addr.IsValid() {
		s.leaseMu.Unlock()
		s.refuse(conn, from, refusePoolFull, err.Error())
		return
	}
	if err != nil { // assigned, but not saved: serve anyway, say so
		log.Error("address assignment not saved; it may change after a restart", "err", err)
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		s.leaseMu.Unlock()
		conn.Close()
		return
	}
	if old := s.byKey[from]; old != nil {
		log.Info("client reconnected; closing its previous control stream")
		old.conn.Close()
		delete(s.byAddr, old.addr)
	}
	if s.counts[from] == nil {
		if len(s.counts) >= maxKnownClients {
			s.forgetDisconnectedLocked()
		}
		s.counts[from] = new(counters)
	}
	p.addr, p.ctr = addr, s.counts[from]
	s.byKey[from], s.byAddr[addr], s.lastAddr[from] = p, p, addr
	s.mu.Unlock()
	s.leaseMu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.byKey[from] == p {
			delete(s.byKey, from)
			delete(s.byAddr, p.addr)
		}
		s.mu.Unlock()
		conn.Close()
	}()

	err = writeMsg(conn, &assign{
		Version: protoVersion, Addr: netip.PrefixFrom(addr, s.pool.Bits()).String(), Gateway: s.gw.String(),
		MTU: u16(s.cfg.MTU), Keepalive: u32(s.ka / time.Millisecond), GSO: true,
	})
	if err != nil {
		log.Info("control stream closed", "err", err)
		return
	}
	conn.SetDeadline(time.Time{})
	log.Info("client connected", "addr", addr, "port", h.Port, "client_mtu", h.MTU)
	err = controlLoop(ctx, conn, s.ka)
	log.Info("client disconnected", "addr", addr, "reason", err)
}

// controlLoop sends keepalives every ka and reads the peer's until ctx
// is done, the stream fails, or nothing arrives for 3*ka. It returns why.
func controlLoop(ctx context.Context, conn net.Conn, ka time.Duration) error {
	readErr := make(chan error, 1)
	go func() {
		for {
			conn.SetReadDeadline(time.Now().Add(3 * ka))
			m, err := readMsg(conn)
			if err != nil {
				readErr <- err
				return
			}
			if _, ok := m.(*keepalive); !ok {
				readErr <- fmt.Errorf("%w: unexpected %T on an established control stream", ErrMalformed, m)
				return
			}
		}
	}()
	t := time.NewTicker(ka)
	defer t.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		case err = <-readErr:
			conn.Close()
			return err
		case <-t.C:
			conn.SetWriteDeadline(time.Now().Add(3 * ka))
			if err = writeMsg(conn, &keepalive{}); err != nil {
				break loop
			}
		}
	}
	conn.Close()
	<-readErr
	return err
}

// fromMesh picks the counters of a datagram from the mesh: packets from
// unknown clients or ports, and those with a source address other than
// the client's own, are dropped.
func (s *Server) fromMesh(b []byte, from keys.PublicKey, port uint16) *counters {
	s.mu.RLock()
	p := s.byKey[from]
	s.mu.RUnlock()
	if p == nil || p.port != port {
		s.unknownClient.Add(1)
		s.log.Debug("datagram from an unknown client dropped", "from", from.Short(), "port", port)
		return nil
	}
	src, dst, ok := ipv4Addrs(b)
	if !ok || src != p.addr {
		p.ctr.drop(either(ok, dropSpoofed, dropMalformed))
		s.log.Debug("packet dropped: not IPv4 from the client's address", "client", from.Short(), "src", src, "len", len(b))
		return nil
	}
	if err := s.checkDestination(b, dst); err != nil {
		p.ctr.refused.Add(1)
		if ok, n := s.refusedLog.Allow(); ok {
			s.log.Warn("packet dropped: vpn_server.allow_destinations does not open its destination",
				"client", from.Short(), "err", err, "unlogged_since_last", n)
		}
		s.sendProhibited(p, b)
		return nil
	}
	return p.ctr
}

// checkDestination applies the destination policy to a client's packet
// to dst. Another client's address in the pool is not the exit's to
// refuse: that traffic passes as it always did. The server's own pool
// address and the pool's network and broadcast addresses reach the
// host, so the policy decides them.
func (s *Server) checkDestination(b []byte, dst netip.Addr) error {
	if s.pool.Contains(dst) && dst != s.gw && dst != s.pool.Addr() && dst != broadcast(s.pool) {
		return nil
	}
	port, ok := dstPort(b)
	if !ok {
		return fmt.Errorf("%w: %s: a first fragment without ports", exitpolicy.ErrRefused, dst)
	}
	return s.policy.Check(dst, port)
}

// dstPort returns the destination port of a TCP, UDP, UDP-Lite or SCTP
// packet (b a well-formed IPv4 packet), or exitpolicy.NoPort for other
// protocols, later fragments and packets too short to carry ports; false
// for a first fragment (more to follow) too short to hold them.
func dstPort(b []byte) (int, bool) {
	switch b[9] {
	case 6, 17, 132, 136: // TCP, UDP, SCTP, UDP-Lite: ports first
	default:
		return exitpolicy.NoPort, true
	}
	if binary.BigEndian.Uint16(b[6:])&0x1fff != 0 {
		return exitpolicy.NoPort, true
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if total < ihl+4 {
		// A whole packet this short is no segment any host accepts;
		// but the first fragment of a longer one could be followed by
		// fragments that bring ports the check never saw.
		if b[6]&0x20 != 0 { // more fragments
			return 0, false
		}
		return exitpolicy.NoPort, true
	}
	return int(binary.BigEndian.Uint16(b[ihl+2:])), true
}

// sendProhibited answers a refused packet with an ICMP "destination
// unreachable: communication administratively prohibited" (type 3,
// code 13) from the server's pool address, at most one per 10 ms, and
// never to an ICMP message other than an echo request or to a later
// fragment.
func (s *Server) sendProhibited(p *peer, b []byte) {
	if b[9] == 1 && (len(b) < int(b[0]&0x0f)*4+1 || b[int(b[0]&0x0f)*4] != 8) {
		return
	}
	if binary.BigEndian.Uint16(b[6:])&0x1fff != 0 {
		return
	}
	if ok, _ := s.icmpLimit.Allow(); !ok {
		return
	}
	quote := b[:min(len(b), int(b[0]&0x0f)*4+8)]
	pkt := make([]byte, 20+8+len(quote))
	pkt[0] = 0x45
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	pkt[8] = 64
	pkt[9] = 1
	gw, to := s.gw.As4(), p.addr.As4()
	copy(pkt[12:], gw[:])
	copy(pkt[16:], to[:])
	binary.BigEndian.PutUint16(pkt[10:], checksum(pkt[:20]))
	icmp := pkt[20:]
	icmp[0], icmp[1] = 3, 13
	copy(icmp[8:], quote)
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	if err := s.app.SendDatagram(p.key, p.port, pkt); err != nil {
		s.log.Debug("ICMP to the client not sent", "client", p.key.Short(), "err", err)
	}
}

// checksum is the Internet checksum of b (RFC 1071): 0 over a region
// that holds a correct one.
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// toMesh sends the device's packets to the client owning their
// destination.
func (s *Server) toMesh(b []byte) (keys.PublicKey, uint16, *counters, bool) {
	var p *peer
	if _, dst, ok := ipv4Addrs(b); ok {
		s.mu.RLock()
		p = s.byAddr[dst]
		s.mu.RUnlock()
	}
	if p == nil {
		s.noClient.Add(1)
		return keys.PublicKey{}, 0, nil, false
	}
	return p.key, p.port, p.ctr, p.gso
}
