package socks

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/apps/internal/approle"
	"github.com/skywire-mesh/skywire/apps/internal/exitpolicy"
	"github.com/skywire-mesh/skywire/internal/acceptloop"
	"github.com/skywire-mesh/skywire/keys"
)

// udpQueue is the number of datagrams an association queues towards its
// targets; more are dropped.
const udpQueue = 64

// DialFunc dials a target for the server (net.Dialer.DialContext's shape).
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// ServerOption configures NewServer.
type ServerOption func(*Server)

// WithDialer replaces the server's target dialer (default: a
// net.Dialer that checks the destination policy again on the address it
// connects to). The server gives it IP addresses only, each one checked
// against the destination policy. Tests use it to provoke dial errors.
func WithDialer(d DialFunc) ServerOption { return func(s *Server) { s.dial = d } }

// LookupFunc resolves a target's name to its addresses
// (net.Resolver.LookupNetIP's shape, network "ip").
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// WithLookup replaces the server's resolver (default: ServerConfig.Resolver
// if set, else the system's, by net.DefaultResolver). Tests use it so as
// not to ask the machine's DNS.
func WithLookup(l LookupFunc) ServerOption { return func(s *Server) { s.lookup = l } }

func systemLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// ResolverLookup returns a LookupFunc that asks the DNS server at addr
// ("IP:PORT"), over UDP and TCP as the Go resolver does, instead of the
// servers in /etc/resolv.conf (whose options, and /etc/hosts, still
// apply).
func ResolverLookup(addr string) LookupFunc {
	r := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	return func(ctx context.Context, host string) ([]netip.Addr, error) {
		return r.LookupNetIP(ctx, "ip", host)
	}
}

// Server is socks-server: it accepts mesh streams from allowed client
// nodes, dials their targets and relays.
type Server struct {
	cfg    ServerConfig
	log    *slog.Logger
	dial   DialFunc
	lookup LookupFunc
	policy *exitpolicy.Policy // which destinations clients may reach
	allow  map[keys.PublicKey]bool
	g      *approle.Group
	app    *appnet.Client  // g.App()
	ctx    context.Context // g.Context(): done when the server stops

	conns tracker

	refusedConns     atomic.Uint64 // CONNECTs refused by the destination policy
	refusedDatagrams atomic.Uint64 // UDP datagrams dropped by the destination policy
	refusedLog       exitpolicy.LogLimiter

	assocMu   sync.Mutex
	assocs    map[uint32]*serverAssoc // guarded by assocMu
	nextAssoc uint32                  // guarded by assocMu
}

// NewServer validates cfg and registers socks-server with the node.
// The server serves once Run is called; Close releases it.
func NewServer(ctx context.Context, cfg ServerConfig, log *slog.Logger, opts ...ServerOption) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, allow: map[keys.PublicKey]bool{}, assocs: map[uint32]*serverAssoc{}}
	s.conns.perPeer = true
	for _, k := range cfg.Allow {
		s.allow[k] = true
	}
	policy, err := exitpolicy.Parse("socks_server", cfg.AllowDestinations, cfg.DenyDestinations)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s.policy, s.lookup = policy, systemLookup
	if cfg.Resolver != "" {
		s.lookup = ResolverLookup(cfg.Resolver)
	}
	// Belt and braces: the dialer checks the address it connects to,
	// whatever the server checked before.
	d := &net.Dialer{Control: policy.Control}
	s.dial = d.DialContext
	for _, o := range opts {
		o(s)
	}
	var seed [4]byte
	rand.Read(seed[:])
	s.nextAssoc = binary.BigEndian.Uint32(seed[:])
	g, err := approle.Connect(ctx, cfg.NodeSocket, ServerAppName, cfg.Port, log)
	if err != nil {
		return nil, fmt.Errorf("socks: %w", err)
	}
	s.g, s.app, s.ctx = g, g.App(), g.Context()
	g.OnClose(s.conns.closeAll)
	return s, nil
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	st := s.conns.stats()
	st.Refused, st.RefusedDatagrams = s.refusedConns.Load(), s.refusedDatagrams.Load()
	return st
}

// logRefused logs a destination the policy refused, at most once a
// second (with how many went unlogged), so a client cannot flood the log.
func (s *Server) logRefused(log *slog.Logger, msg string, err error) {
	if ok, n := s.refusedLog.Allow(); ok {
		log.Warn(msg, "err", err, "unlogged_since_last", n)
	}
}

// Run serves until ctx is done (nil) or the node goes away
// (appnet.ErrNodeLost); it closes the server before returning.
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()
	s.g.Go(s.acceptLoop)
	s.g.Go(s.datagramLoop)
	s.log.Info("socks-server running", "key", s.app.LocalKey(), "port", s.cfg.Port, "allow_all", s.cfg.AllowAll, "allowed", len(s.allow),
		"destinations", s.policy.String(), "resolver", cmp.Or(s.cfg.Resolver, "system"))
	if err := s.policy.LocalErr(); err != nil {
		s.log.Warn("the host's own addresses are unknown, so not refused", "err", err)
	}
	if err := s.g.Run(ctx); err != nil {
		return fmt.Errorf("socks: %w", err)
	}
	return nil
}

// Close unregisters from the node, closes every connection and waits for
// the server's goroutines.
func (s *Server) Close() error { return s.g.Close() }

func (s *Server) acceptLoop() {
	type stream struct {
		conn net.Conn
		from keys.PublicKey
	}
	acceptloop.Loop[stream]{
		Accept: func() (stream, error) {
			conn, from, err := s.app.Accept(s.ctx)
			return stream{conn, from}, err
		},
		Serve: func(st stream) bool {
			tc := s.conns.add(st.from.String(), st.conn)
			if tc == nil {
				return false
			}
			s.g.Go(func() { s.serveStream(st.conn, st.from, tc) })
			return true
		},
		Fatal: func(err error) bool { return s.ctx.Err() != nil || errors.Is(err, appnet.ErrClosed) },
		// The node refused the accept (limits, file descriptors): back off
		// rather than spin.
		Failed: func(err error, d time.Duration) { s.log.Warn("accept stream", "err", err, "retry_in", d) },
	}.Run(s.ctx)
}

func (s *Server) allowed(k keys.PublicKey) bool { return s.cfg.AllowAll || s.allow[k] }

// serveStream handles one stream from a client node: header, checks,
// target dial, reply, relay.
func (s *Server) serveStream(conn net.Conn, from keys.PublicKey, tc *trackedConn) {
	failed := true
	defer func() { s.conns.done(tc, failed) }()
	log := s.log.With("conn", tc.id, "client", from.Short())
	conn.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	ver, req, err := readStreamHeader(conn)
	if err != nil {
		log.Info("closing stream: bad header", "err", err)
		return
	}
	kind := "connect"
	if req.Cmd == cmdUDPAssociate {
		kind = "udp"
	}
	tc.setTarget(kind, req.Dst.String())
	log = log.With("target", req.Dst.String())
	// Dialing takes up to DialTimeout; the reply must still be written
	// after that.
	conn.SetDeadline(time.Now().Add(s.cfg.DialTimeout + s.cfg.HandshakeTimeout))
	reply := func(rep Reply, assoc uint32, bnd addr) bool {
		s.conns.replied(rep)
		if _, err := conn.Write(appendStreamReply(nil, ver, rep, assoc, bnd)); err != nil {
			log.Debug("write stream reply", "err", err)
			return false
		}
		return true
	}
	if !s.allowed(from) {
		log.Warn("refusing client: key not in socks_server.allow")
		reply(ReplyNotAllowed, 0, addr{})
		return
	}
	if req.Cmd == cmdUDPAssociate {
		failed = !s.serveAssoc(conn, from, tc, log, reply)
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	target, err := s.dialTarget(ctx, req.Dst)
	cancel()
	if err != nil {
		rep := replyFor(err)
		if rep == ReplyNotAllowed {
			s.refusedConns.Add(1)
			s.logRefused(log, "refusing destination: socks_server.allow_destinations does not open it", err)
		} else {
			log.Info("dial target failed", "reply", rep, "err", err)
		}
		reply(rep, 0, addr{})
		return
	}
	if !tc.attach(target) {
		return
	}
	if !reply(ReplySucceeded, 0, boundAddr(target.LocalAddr())) {
		return
	}
	conn.SetDeadline(time.Time{})
	failed = false
	log.Debug("relaying")
	if err := relay(conn, target, &tc.up, &tc.down); err != nil {
		log.Debug("relay ended", "err", err, "up", tc.up.Load(), "down", tc.down.Load())
	}
}

// dialTarget resolves dst (once), checks every address against the
// destination policy and dials the allowed ones in turn, by address, so
// that no second lookup can lead elsewhere. It returns an error wrapping
// exitpolicy.ErrRefused when the policy refuses every address, else the
// first dial error.
func (s *Server) dialTarget(ctx context.Context, dst addr) (net.Conn, error) {
	ips := []netip.Addr{dst.IP}
	if dst.Name != "" {
		var err error
		if ips, err = s.lookup(ctx, dst.Name); err != nil {
			return nil, err
		}
		if len(ips) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: dst.Name, IsNotFound: true}
		}
	}
	var firstErr error
	for _, ip := range ips {
		ip = ip.Unmap()
		if err := s.policy.Check(ip, int(dst.Port)); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		c, err := s.dial(ctx, "tcp", netip.AddrPortFrom(ip, dst.Port).String())
		if err == nil {
			return c, nil
		}
		if firstErr == nil || errors.Is(firstErr, exitpolicy.ErrRefused) {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// boundAddr is a socket's local address as a SOCKS address (the zero
// addr if it is not an IP address and port).
func boundAddr(a net.Addr) addr {
	if a == nil {
		return addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return addr{}
	}
	return addr{IP: ap.Addr().Unmap().WithZone(""), Port: ap.Port()}
}

// replyFor maps a target dial error to a SOCKS reply. Name resolution
// failures and timeouts are "host unreachable".
func replyFor(err error) Reply {
	var dnsErr *net.DNSError
	var addrErr *net.AddrError
	var ne net.Error
	switch {
	case errors.Is(err, exitpolicy.ErrRefused):
		return ReplyNotAllowed
	case errors.As(err, &dnsErr), errors.As(err, &addrErr):
		return ReplyHostUnreachable
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReplyConnRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return ReplyNetUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.EHOSTDOWN):
		return ReplyHostUnreachable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return ReplyHostUnreachable
	}
	return ReplyGeneralFailure
}

// serverAssoc is one UDP association: a UDP socket on the server that
// sends the client's datagrams to their targets and returns the answers.
type serverAssoc struct {
	id    uint32
	owner keys.PublicKey
	port  atomic.Uint32 // the client's mesh port, learned from its first datagram; 0 until then
	udp   *net.UDPConn
	tc    *trackedConn
	queue chan []byte // datagrams from the client: UDP header + data
	done  chan struct{}

	peersMu sync.Mutex
	peers   map[netip.AddrPort]bool // guarded by peersMu; targets the client has sent to
}

// maxAssocPeers bounds the targets an association remembers; beyond, it
// forgets them all and relearns from the client's next datagrams.
const maxAssocPeers = 1024

func (a *serverAssoc) addPeer(p netip.AddrPort) {
	a.peersMu.Lock()
	defer a.peersMu.Unlock()
	if !a.peers[p] && len(a.peers) >= maxAssocPeers {
		clear(a.peers)
	}
	a.peers[p] = true
}

func (a *serverAssoc) isPeer(p netip.AddrPort) bool {
	a.peersMu.Lock()
	defer a.peersMu.Unlock()
	return a.peers[p]
}

// serveAssoc runs a UDP association for the life of its stream. It
// returns false if the association could not be set up.
func (s *Server) serveAssoc(conn net.Conn, from keys.PublicKey, tc *trackedConn, log *slog.Logger, reply func(Reply, uint32, addr) bool) bool {
	udp, err := net.ListenUDP("udp", nil)
	if err != nil {
		log.Warn("UDP associate: listen", "err", err)
		reply(ReplyGeneralFailure, 0, addr{})
		return false
	}
	if !tc.attach(udp) {
		return false
	}
	a := &serverAssoc{
		owner: from, udp: udp, tc: tc,
		queue: make(chan []byte, udpQueue), done: make(chan struct{}),
		peers: map[netip.AddrPort]bool{},
	}
	s.assocMu.Lock()
	for {
		s.nextAssoc++
		if s.nextAssoc != 0 && s.assocs[s.nextAssoc] == nil {
			break
		}
	}
	a.id = s.nextAssoc
	s.assocs[a.id] = a
	s.assocMu.Unlock()
	defer func() {
		s.assocMu.Lock()
		delete(s.assocs, a.id)
		s.assocMu.Unlock()
	}()
	if !reply(ReplySucceeded, a.id, boundAddr(udp.LocalAddr())) {
		return true
	}
	conn.SetDeadline(time.Time{})
	log = log.With("assoc", a.id)
	log.Debug("UDP association open", "local", udp.LocalAddr())
	var wg sync.WaitGroup
	wg.Go(func() { s.assocToClient(a, log) })
	wg.Go(func() { s.assocToTargets(a, log) })
	// The association lives as long as its stream: wait for EOF.
	io.Copy(io.Discard, conn)
	close(a.done)
	tc.close()
	wg.Wait()
	log.Debug("UDP association closed", "up", tc.up.Load(), "down", tc.down.Load())
	return true
}

// assocToClient reads answers from targets and sends them to the client
// node as datagrams: association ID, SOCKS UDP header, data.
func (s *Server) assocToClient(a *serverAssoc, log *slog.Logger) {
	buf := make([]byte, appnet.MaxDatagram)
	var out []byte
	for {
		n, src, err := a.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		port := uint16(a.port.Load())
		if port == 0 || !a.isPeer(src) {
			log.Debug("dropping UDP datagram from a host the client did not send to", "src", src)
			continue
		}
		out = binary.BigEndian.AppendUint32(out[:0], a.id)
		out, _ = appendUDPHeader(out, addr{IP: src.Addr(), Port: src.Port()})
		out = append(out, buf[:n]...)
		if len(out) > appnet.MaxDatagram {
			log.Debug("UDP answer too large for a datagram", "bytes", n)
			continue
		}
		if err := s.app.SendDatagram(a.owner, port, out); err != nil {
			log.Debug("send datagram to client", "err", err)
			continue
		}
		a.tc.down.Add(uint64(n))
	}
}

// assocToTargets sends the client's queued datagrams to their targets,
// resolving names (with a small cache). Datagrams to a destination the
// policy refuses are dropped and counted.
func (s *Server) assocToTargets(a *serverAssoc, log *slog.Logger) {
	resolved := map[string]netip.AddrPort{}
	for {
		var b []byte
		select {
		case b = <-a.queue:
		case <-a.done:
			return
		}
		frag, dst, data, err := parseUDPHeader(b)
		if err != nil || frag != 0 {
			log.Debug("dropping client datagram", "err", err, "frag", frag)
			continue
		}
		var to netip.AddrPort
		if dst.Name == "" {
			to = netip.AddrPortFrom(dst.IP, dst.Port)
		} else if ap, ok := resolved[dst.String()]; ok {
			to = ap
		} else {
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
			ips, err := s.lookup(ctx, dst.Name)
			cancel()
			if err != nil || len(ips) == 0 {
				log.Debug("dropping client datagram: resolve", "name", dst.Name, "err", err)
				continue
			}
			// Send to an address the policy allows, if the name has one;
			// otherwise the check below refuses the one picked.
			var ok []netip.Addr
			for _, ip := range ips {
				if s.policy.Check(ip, int(dst.Port)) == nil {
					ok = append(ok, ip)
				}
			}
			if len(ok) > 0 {
				ips = ok
			}
			to = netip.AddrPortFrom(preferIPv4(ips), dst.Port)
			if len(resolved) > 256 {
				clear(resolved)
			}
			resolved[dst.String()] = to
		}
		to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
		if err := s.policy.Check(to.Addr(), int(to.Port())); err != nil {
			s.refusedDatagrams.Add(1)
			s.logRefused(log, "dropping client datagram: socks_server.allow_destinations does not open its destination", err)
			continue
		}
		a.addPeer(to)
		if _, err := a.udp.WriteToUDPAddrPort(data, to); err != nil {
			log.Debug("send to UDP target", "to", to, "err", err)
			continue
		}
		a.tc.up.Add(uint64(len(data)))
	}
}

// preferIPv4 picks the first IPv4 address of ips, else the first one.
func preferIPv4(ips []netip.Addr) netip.Addr {
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			return ip.Unmap()
		}
	}
	return ips[0]
}

// datagramLoop dispatches the datagrams of client nodes to their
// associations.
func (s *Server) datagramLoop() {
	for {
		b, from, port, err := s.app.ReadDatagram(s.ctx)
		if err != nil {
			return
		}
		if len(b) < 4 {
			s.log.Debug("dropping short datagram", "from", from.Short())
			continue
		}
		id := binary.BigEndian.Uint32(b)
		s.assocMu.Lock()
		a := s.assocs[id]
		s.assocMu.Unlock()
		if a == nil || a.owner != from {
			s.log.Debug("dropping datagram for an unknown association", "from", from.Short(), "assoc", id)
			continue
		}
		a.port.Store(uint32(port))
		select {
		case a.queue <- b[4:]:
		default:
			s.log.Debug("UDP association queue full: datagram dropped", "assoc", id)
		}
	}
}
