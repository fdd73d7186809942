package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/internal/inbox"
	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/internal/mesh/secure"
	"github.com/skywire-mesh/skywire/internal/mesh/session"
	"github.com/skywire-mesh/skywire/keys"
)

// SessionPrologue separates the end-to-end handshake from link handshakes.
const SessionPrologue = "skywire-session-v1"

// Stream and datagram headers (docs/protocol.md).
const (
	streamHeaderLen   = 2 // destination port
	datagramHeaderLen = 4 // destination port, source port
	// streamAccepted is the one byte the accepting node answers a stream
	// header with when a listener took the stream; a refused stream is
	// closed before it, so its dialler reads end-of-stream instead.
	streamAccepted = 0x01
)

// Addr is a mesh address: a node's public key and a port. It is the
// app API's address type, so an address means the same to a Go program
// on the node and to an app on its socket.
type Addr = appnet.Addr

// remoteSess is an end-to-end session with one remote node over one route.
type remoteSess struct {
	remote keys.PublicKey
	ep     *endpoint
	s      *session.Session
	msg1   []byte // responder: the msg1 it answered, to answer a retransmission
	msg2   []byte
	// suite and version are the handshake's: the session's AEAD.
	suite   secure.Suite
	version byte
}

func (rs *remoteSess) alive() bool {
	select {
	case <-rs.s.Done():
		return false
	default:
		return rs.s.Err() == nil
	}
}

// routePath is a session.Path over an endpoint's current route.
type routePath struct {
	n  *Node
	ep *endpoint
}

func (p routePath) SendPacket(b []byte) error { return p.n.sendOnRoute(p.ep, proto.KindSession, b) }

// Headroom is room for the link frame's type byte and the data header:
// routePath is a session.HeadroomPath.
func (routePath) Headroom() int { return dataFrameHeadroom }

func (p routePath) SendPacketHeadroom(buf []byte) error {
	return p.n.sendFramed(p.ep, proto.KindSession, buf)
}

func (n *Node) sessionConfig(remote keys.PublicKey) session.Config {
	return session.Config{Logger: n.log, IdleTimeout: n.cfg.SessionIdle, MaxStreams: n.cfg.MaxStreamsPerSession,
		// Datagrams may fill a whole link frame (the VPN carries TCP
		// super-packets of up to 64 KiB as one datagram); streams keep
		// the default MTU.
		DatagramMTU: link.DefaultMaxFrame - proto.DataHeaderLen,
		StreamRefused: func() {
			n.ctr.streamsRefused.Add(1)
			n.logs.streamRefused.log(n.log, slog.LevelInfo, "stream refused: too many open in the session",
				"remote", remote.Short(), "max_streams_per_session", n.cfg.MaxStreamsPerSession)
		},
		OnDatagram: func(b []byte) { n.dispatchDatagram(remote, b) }}
}

type dialWait struct {
	done chan struct{}
	err  error
}

// liveSession returns the established session with remote, or nil: the
// fast path of a datagram, which needs no context.
func (n *Node) liveSession(remote keys.PublicKey) *remoteSess {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping {
		return nil
	}
	if rs := n.sessions[remote]; rs != nil && rs.alive() {
		return rs
	}
	return nil
}

// session returns the live session with remote, establishing one if needed.
func (n *Node) session(ctx context.Context, remote keys.PublicKey) (*remoteSess, error) {
	if remote == n.PublicKey() {
		return nil, fmt.Errorf("session with %s: %w: that is this node", remote.Short(), ErrNoRoute)
	}
	for {
		n.mu.Lock()
		if n.stopping {
			n.mu.Unlock()
			return nil, ErrClosed
		}
		if rs := n.sessions[remote]; rs != nil && rs.alive() {
			n.mu.Unlock()
			return rs, nil
		}
		if w := n.dialing[remote]; w != nil {
			n.mu.Unlock()
			select {
			case <-w.done:
				if w.err != nil {
					return nil, w.err
				}
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("session with %s: %w", remote.Short(), ctx.Err())
			}
		}
		w := &dialWait{done: make(chan struct{})}
		n.dialing[remote] = w
		n.mu.Unlock()
		rs, err := n.establish(ctx, remote)
		n.mu.Lock()
		delete(n.dialing, remote)
		if err == nil {
			n.sessions[remote] = rs
		}
		n.mu.Unlock()
		w.err = err
		close(w.done)
		return rs, err
	}
}

// establish asks a manager for a route to remote and runs the handshake
// over it.
func (n *Node) establish(ctx context.Context, remote keys.PublicKey) (*remoteSess, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	ep, err := n.requestRoute(ctx, remote)
	if err != nil {
		return nil, err
	}
	rs, err := n.initiate(ctx, ep)
	if err != nil {
		n.removeEndpoint(ep)
		return nil, err
	}
	return rs, nil
}

func (n *Node) requestRoute(ctx context.Context, remote keys.PublicKey) (*endpoint, error) {
	msg, err := n.askLeader(ctx, func(req uint64) proto.Message {
		return &proto.RouteRequest{Req: req, Dst: proto.Key(remote), MaxHops: uint8(n.cfg.HopLimit)}
	})
	if err != nil {
		return nil, fmt.Errorf("route to %s: %w", remote.Short(), err)
	}
	reply, ok := msg.(*proto.RouteReply)
	if !ok {
		return nil, fmt.Errorf("route to %s: manager answered %s", remote.Short(), msg.Type())
	}
	switch reply.Code {
	case proto.CodeOK:
	case proto.CodeNoPath, proto.CodeUnknownNode, proto.CodeBadRequest:
		return nil, fmt.Errorf("route to %s: %w: %s", remote.Short(), ErrNoRoute, reply.Msg)
	case proto.CodeNoQuorum, proto.CodeNotLeader:
		// The manager's message usually says "no quorum" itself: once.
		if rest, ok := strings.CutPrefix(reply.Msg, ErrNoQuorum.Error()); ok {
			return nil, fmt.Errorf("route to %s: %w%s", remote.Short(), ErrNoQuorum, rest)
		}
		return nil, fmt.Errorf("route to %s: %w: %s", remote.Short(), ErrNoQuorum, reply.Msg)
	default:
		return nil, fmt.Errorf("route to %s: manager: %s: %s", remote.Short(), reply.Code, reply.Msg)
	}
	n.mu.Lock()
	ep := n.endpoints[reply.Route]
	n.mu.Unlock()
	if ep == nil || !ep.initiator || ep.remote != remote {
		return nil, fmt.Errorf("route to %s: manager answered route %d it did not install here", remote.Short(), reply.Route)
	}
	return ep, nil
}

// sessionHandshake is the session handshake this node offers: version 2
// for packets, with the suites this CPU does best (AES-256-GCM where it
// has AES instructions, docs/crypto.md); a node with LegacySessions speaks
// version 1 only. A responder with it answers version 1 in kind.
func (n *Node) sessionHandshake() secure.Config {
	c := secure.Config{Local: n.cfg.Identity, Prologue: SessionPrologue}
	if !n.cfg.LegacySessions {
		c.Suites, c.Packets = secure.DefaultSuites(), true
	}
	return c
}

// initiate runs the initiator's side of the handshake over ep.
//
// It sends a version 2 msg1 first. A node of an older release does not
// answer version 2 (it speaks version 1 only and drops what it cannot
// read), so every second retransmission is a version 1 msg1 (made when
// first needed): such a peer gets its session one retransmission
// interval (200 ms) later, with ChaCha20-Poly1305. Whichever reply
// authenticates first wins; a node of this release answers the first
// msg1 it reads and ignores the other (see respond).
func (n *Node) initiate(ctx context.Context, ep *endpoint) (*remoteSess, error) {
	cfg := n.sessionHandshake()
	msg1, st, err := secure.Initiate(cfg, ep.remote)
	if err != nil {
		return nil, fmt.Errorf("session with %s: %w", ep.remote.Short(), err)
	}
	var msg1v1 []byte
	var stV1 *secure.Initiator
	discard := func() {
		st.Discard()
		if stV1 != nil {
			stV1.Discard()
		}
	}
	retry := 200 * time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	forged, sent := 0, 0
	for {
		select {
		case <-t.C:
			m := msg1
			if cfg.Suites != nil && sent%2 == 1 {
				if stV1 == nil {
					v1 := cfg
					v1.Suites, v1.Packets = nil, false
					if msg1v1, stV1, err = secure.Initiate(v1, ep.remote); err != nil {
						st.Discard()
						return nil, fmt.Errorf("session with %s: %w", ep.remote.Short(), err)
					}
				}
				m = msg1v1
			}
			sent++
			n.sendOnRoute(ep, proto.KindHandshake1, m)
			t.Reset(retry)
			retry = min(retry*2, 2*time.Second)
			continue
		case <-ctx.Done():
			discard()
			n.ctr.handshakesFailed.Add(1)
			return nil, fmt.Errorf("session with %s: %w: no authentic handshake reply (%d that did not authenticate): %w",
				ep.remote.Short(), ErrTimeout, forged, ctx.Err())
		case msg2 := <-ep.hs:
			// A reply says its version; it goes to the Initiator of that
			// version (which checks it again).
			fin := st
			if stV1 != nil && len(msg2) > 0 && msg2[0] == secure.Version1 {
				fin = stV1
			}
			sec, err := fin.Finish(msg2)
			switch {
			case err == nil:
				discard()
				return n.startSession(ep, sec, true, nil, nil)
			case errors.Is(err, secure.ErrRefused):
				// Authenticated: only the remote can say no.
				discard()
				n.ctr.handshakesFailed.Add(1)
				return nil, fmt.Errorf("session with %s: %w: %w", ep.remote.Short(), ErrHandshake, err)
			}
			// Anyone on the path can send a reply that does not
			// authenticate; Finish left the state as it was, so wait for
			// the genuine one (docs/crypto.md, "Lossy transports").
			forged++
			n.ctr.badReplies.Add(1)
			n.logs.badReply.log(n.log, slog.LevelDebug, "dropping a session handshake reply that does not authenticate",
				"route", ep.id, "remote", ep.remote.Short(), "err", err)
		}
	}
}

// startSession creates the session over ep and its goroutines.
func (n *Node) startSession(ep *endpoint, sec *secure.Session, initiator bool, msg1, msg2 []byte) (*remoteSess, error) {
	s, err := session.New(n.sessionConfig(ep.remote), routePath{n, ep}, sec.PacketCipher(), initiator)
	if err != nil {
		return nil, fmt.Errorf("session with %s: %w", ep.remote.Short(), err)
	}
	rs := &remoteSess{remote: ep.remote, ep: ep, s: s, msg1: msg1, msg2: msg2, suite: sec.Suite, version: sec.Version}
	n.mu.Lock()
	if n.stopping || ep.sess.Load() != nil {
		n.mu.Unlock()
		s.Close()
		return nil, fmt.Errorf("session with %s: %w", ep.remote.Short(), ErrClosed)
	}
	if n.sessPerRemote[ep.remote] >= n.cfg.MaxSessionsPerRemote {
		n.mu.Unlock()
		s.Close()
		n.refuseSession(ep)
		return nil, fmt.Errorf("session with %s: %w: max_sessions_per_remote = %d reached", ep.remote.Short(), errTooManySessions, n.cfg.MaxSessionsPerRemote)
	}
	n.sessPerRemote[ep.remote]++
	ep.sess.Store(rs)
	if !initiator {
		if cur := n.sessions[ep.remote]; cur == nil || !cur.alive() {
			n.sessions[ep.remote] = rs
		}
	}
	n.wg.Go(func() { n.acceptStreams(rs) })
	n.wg.Go(func() { n.watchSession(rs) })
	n.mu.Unlock()
	n.log.Info("session up", "remote", ep.remote.Short(), "route", ep.id, "initiator", initiator, "cipher", sec.Suite.String(), "handshake_version", sec.Version)
	return rs, nil
}

// watchSession cleans up after a session ends.
func (n *Node) watchSession(rs *remoteSess) {
	select {
	case <-rs.s.Done():
	case <-n.life.Done():
		rs.s.Close()
	}
	n.mu.Lock()
	if n.sessions[rs.remote] == rs {
		delete(n.sessions, rs.remote)
	}
	if n.sessPerRemote[rs.remote]--; n.sessPerRemote[rs.remote] <= 0 {
		delete(n.sessPerRemote, rs.remote)
	}
	n.mu.Unlock()
	n.removeEndpoint(rs.ep)
	n.log.Info("session down", "remote", rs.remote.Short(), "route", rs.ep.id, "err", rs.s.Err())
}

// deliver handles a data frame addressed to this node as a route endpoint.
// It runs on a link's read goroutine and must not block.
func (n *Node) deliver(ep *endpoint, frame []byte) {
	_, kind, payload, err := proto.ParseData(frame)
	if err != nil {
		n.ctr.malformed.Add(1)
		n.log.Debug("dropping data frame", "route", ep.id, "err", err)
		return
	}
	n.ctr.delivered.Add(1)
	switch kind {
	case proto.KindSession:
		if rs := ep.sess.Load(); rs != nil {
			rs.s.HandlePacket(payload)
		}
	case proto.KindHandshake1:
		if ep.initiator {
			n.ctr.malformed.Add(1)
			return
		}
		// One handshake per route at a time, and max_pending_handshakes
		// in all: a flood of msg1 costs at most that many goroutines and
		// DH computations. A genuine initiator retransmits.
		if !ep.hsBusy.CompareAndSwap(false, true) {
			n.dropHandshake(ep, "one in progress for the route")
			return
		}
		if !n.hsBudget.take() {
			ep.hsBusy.Store(false)
			n.dropHandshake(ep, "max_pending_handshakes reached")
			return
		}
		msg1 := bytes.Clone(payload)
		if !n.async(func() {
			defer ep.hsBusy.Store(false)
			defer n.hsBudget.give()
			n.respond(ep, msg1)
		}) {
			n.hsBudget.give()
			ep.hsBusy.Store(false)
		}
	case proto.KindHandshake2:
		if !ep.initiator {
			n.ctr.malformed.Add(1)
			return
		}
		select {
		case ep.hs <- bytes.Clone(payload):
		default:
		}
	case proto.KindKeepalive:
	case proto.KindPing:
		if len(payload) != 8 {
			n.ctr.malformed.Add(1)
			return
		}
		// The pong may wait for a link that is not being read; at most
		// max_pending_pongs wait at once, the rest are dropped.
		if !n.pongBudget.take() {
			n.ctr.pingsDropped.Add(1)
			n.logs.pingDropped.log(n.log, slog.LevelInfo, "route ping dropped: too many pongs pending",
				"route", ep.id, "remote", ep.remote.Short(), "max_pending_pongs", n.cfg.MaxPendingPongs)
			return
		}
		id := [8]byte(payload)
		if !n.async(func() {
			defer n.pongBudget.give()
			n.sendOnRoute(ep, proto.KindPong, id[:])
		}) {
			n.pongBudget.give()
		}
	case proto.KindPong:
		if len(payload) != 8 {
			n.ctr.malformed.Add(1)
			return
		}
		id := binary.BigEndian.Uint64(payload)
		n.mu.Lock()
		ch := n.pings[id]
		delete(n.pings, id)
		n.mu.Unlock()
		if ch != nil {
			close(ch)
		}
	}
}

// dropHandshake counts and logs a msg1 not answered for want of budget.
func (n *Node) dropHandshake(ep *endpoint, why string) {
	n.ctr.hsDropped.Add(1)
	n.logs.hsDropped.log(n.log, slog.LevelDebug, "session handshake dropped", "route", ep.id, "remote", ep.remote.Short(), "why", why)
}

// refuseSession counts and logs a session over max_sessions_per_remote.
func (n *Node) refuseSession(ep *endpoint) {
	n.ctr.sessRefused.Add(1)
	n.logs.sessRefused.log(n.log, slog.LevelWarn, "session refused: too many with this remote",
		"route", ep.id, "remote", ep.remote.Short(), "max_sessions_per_remote", n.cfg.MaxSessionsPerRemote)
}

var errTooManySessions = errors.New("too many sessions with the remote")

// async runs fn in a goroutine the node waits for, unless it is stopping.
// Work that may be started from a goroutine the node does not own (an
// app closing a Listener, a session callback) goes through it: once
// shutdown has begun, Run may be in wg.Wait, and new work must not start.
// (startSession does the same check itself, under the lock it holds.)
// It reports whether fn will run.
func (n *Node) async(fn func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping {
		return false
	}
	n.wg.Go(fn)
	return true
}

var errWrongRemote = errors.New("handshake from another key than the route's remote")

// respond runs the responder's side of the handshake for ep.
func (n *Node) respond(ep *endpoint, msg1 []byte) {
	ep.hsMu.Lock()
	defer ep.hsMu.Unlock()
	if rs := ep.sess.Load(); rs != nil {
		if bytes.Equal(rs.msg1, msg1) { // our msg2 was lost
			n.sendOnRoute(ep, proto.KindHandshake2, rs.msg2)
		}
		return
	}
	n.mu.Lock()
	full := n.sessPerRemote[ep.remote] >= n.cfg.MaxSessionsPerRemote
	n.mu.Unlock()
	if full { // spare the DH; startSession checks again under the lock
		n.refuseSession(ep)
		return
	}
	cfg := n.sessionHandshake()
	cfg.Accept = func(k keys.PublicKey) error {
		if k != ep.remote {
			return fmt.Errorf("%w: %s, route is for %s", errWrongRemote, k.Short(), ep.remote.Short())
		}
		return nil
	}
	msg2, sec, err := secure.Respond(cfg, msg1)
	if msg2 != nil {
		n.sendOnRoute(ep, proto.KindHandshake2, msg2)
	}
	if err != nil {
		// Anyone on the path can send a msg1 that does not authenticate.
		n.ctr.badHandshakes.Add(1)
		n.ctr.handshakesFailed.Add(1)
		n.logs.badMsg1.log(n.log, slog.LevelWarn, "session handshake refused", "route", ep.id, "remote", ep.remote.Short(), "err", err)
		return
	}
	if _, err := n.startSession(ep, sec, false, msg1, msg2); err != nil {
		n.log.Debug("session not started", "err", err)
	}
}

// acceptStreams reads each new stream's port header and hands it to the
// listener on that port.
func (n *Node) acceptStreams(rs *remoteSess) {
	for {
		st, err := rs.s.AcceptStream(n.life)
		if err != nil {
			return
		}
		n.async(func() { n.routeStream(rs, st) })
	}
}

func (n *Node) routeStream(rs *remoteSess, st *session.Stream) {
	st.SetReadDeadline(time.Now().Add(n.cfg.RequestTimeout))
	var h [streamHeaderLen]byte
	if _, err := io.ReadFull(st, h[:]); err != nil {
		n.log.Debug("stream without header", "remote", rs.remote.Short(), "err", err)
		st.Close()
		return
	}
	st.SetReadDeadline(time.Time{})
	port := binary.BigEndian.Uint16(h[:])
	n.mu.Lock()
	l := n.listeners[port]
	n.mu.Unlock()
	if l == nil {
		n.log.Debug("stream to a closed port", "remote", rs.remote.Short(), "port", port)
		st.Close()
		return
	}
	// Accepted before the listener's Accept returns, as a TCP backlog
	// answers a SYN; written before the app can write, so it comes first.
	if _, err := st.Write([]byte{streamAccepted}); err != nil {
		st.Close()
		return
	}
	c := &Conn{Stream: st, rs: rs, local: Addr{Key: n.PublicKey(), Port: port}, remote: Addr{Key: rs.remote, Port: 0}}
	if l.in.Put(n.life, accepted{c, rs.remote}) != nil {
		st.Close()
	}
}

// dispatchDatagram hands a datagram from remote to the port it is for,
// on the goroutine that received it (the session's OnDatagram): b is
// valid only until it returns. Datagrams for a port nobody listens on, or
// whose reader is too slow, are dropped (datagrams are unreliable).
func (n *Node) dispatchDatagram(remote keys.PublicKey, b []byte) {
	if len(b) < datagramHeaderLen {
		n.ctr.malformed.Add(1)
		return
	}
	dst, src := binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])
	n.mu.Lock()
	pc := n.pconns[dst]
	n.mu.Unlock()
	if pc != nil {
		pc.deliver(Addr{Key: remote, Port: src}, b[datagramHeaderLen:])
	}
}

// Conn is a stream to a remote node's port. It is a net.Conn; CloseWrite
// half-closes it. When the route breaks for good, Read and Write return an
// error wrapping ErrNoRoute.
type Conn struct {
	*session.Stream
	rs            *remoteSess
	local, remote Addr
}

// LocalAddr is this node's key and the port (0 on the dialing side).
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the remote node's key and port (0 on the accepting side).
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// Remote is the remote node's key.
func (c *Conn) Remote() keys.PublicKey { return c.remote.Key }

func (c *Conn) Read(p []byte) (int, error) {
	k, err := c.Stream.Read(p)
	return k, c.mapErr(err)
}

func (c *Conn) Write(p []byte) (int, error) {
	k, err := c.Stream.Write(p)
	return k, c.mapErr(err)
}

func (c *Conn) mapErr(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if e := c.rs.ep.err(); e != nil {
		return fmt.Errorf("%w (%w)", e, err)
	}
	return err
}

// Dial opens a stream to port on the remote node, establishing a route and
// a session first if there is none, and returns once the remote node has
// handed the stream to the listener on port. Errors wrap ErrNoRoute,
// ErrNoManager, ErrHandshake, ErrTimeout or ErrRefused (nothing listens on
// port).
func (n *Node) Dial(ctx context.Context, remote keys.PublicKey, port uint16) (net.Conn, error) {
	for attempt := 0; ; attempt++ {
		rs, err := n.session(ctx, remote)
		if err != nil {
			return nil, fmt.Errorf("dial %s:%d: %w", remote.Short(), port, err)
		}
		st, err := rs.s.OpenStream(ctx)
		if err != nil {
			if attempt == 0 && !rs.alive() && ctx.Err() == nil {
				continue // the session died just now: make a new one
			}
			return nil, fmt.Errorf("dial %s:%d: %w", remote.Short(), port, err)
		}
		var h [streamHeaderLen]byte
		binary.BigEndian.PutUint16(h[:], port)
		if _, err := st.Write(h[:]); err != nil {
			st.Close()
			if errors.Is(err, session.ErrStreamReset) {
				// The remote reset the new stream before the header was
				// out (over its max_streams_per_session, say): a refusal,
				// as a reset after the header is (awaitAccepted).
				err = ErrRefused
			}
			return nil, fmt.Errorf("dial %s:%d: %w", remote.Short(), port, err)
		}
		if err := awaitAccepted(ctx, st, n.cfg.RequestTimeout); err != nil {
			st.Close()
			return nil, fmt.Errorf("dial %s:%d: %w", remote.Short(), port, err)
		}
		return &Conn{Stream: st, rs: rs, local: Addr{Key: n.PublicKey(), Port: 0}, remote: Addr{Key: remote, Port: port}}, nil
	}
}

// awaitAccepted reads the remote node's answer to a stream header: the
// accepted byte, or end-of-stream (or a reset) when it refused the stream.
// A remote that does not answer within limit (request_timeout) cannot hold
// the dialler longer than that, whatever ctx allows.
func awaitAccepted(ctx context.Context, st *session.Stream, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { st.SetReadDeadline(time.Unix(1, 0)) })
	var b [1]byte
	_, err := io.ReadFull(st, b[:])
	if !stop() && err == nil {
		// ctx ended as the answer came: the deadline may be set behind us.
		err = ctx.Err()
	}
	switch {
	case err == nil && b[0] == streamAccepted:
		return nil
	case err == nil:
		return fmt.Errorf("%w: the remote node answered the stream header with %#x", session.ErrProtocol, b[0])
	case ctx.Err() != nil:
		return fmt.Errorf("%w: waiting for the remote node to accept the stream: %w", ErrTimeout, ctx.Err())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, session.ErrStreamReset):
		return ErrRefused
	}
	return err
}

type accepted struct {
	conn   net.Conn
	remote keys.PublicKey
}

// Listener accepts streams to one port.
type Listener struct {
	n    *Node
	port uint16
	name string
	in   *inbox.Inbox[accepted]
}

// Listen accepts streams to port from any node.
func (n *Node) Listen(port uint16) (*Listener, error) { return n.ListenApp("", port) }

// ListenApp is Listen with an app name, which managers list in the
// directory.
func (n *Node) ListenApp(name string, port uint16) (*Listener, error) {
	n.mu.Lock()
	if n.stopping {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	if n.listeners[port] != nil {
		n.mu.Unlock()
		return nil, fmt.Errorf("listen on port %d: %w", port, ErrPortInUse)
	}
	l := &Listener{n: n, port: port, name: name, in: inbox.New[accepted](0)}
	n.listeners[port] = l
	n.mu.Unlock()
	n.announce()
	return l, nil
}

// Accept waits for the next stream and returns it with the remote key.
func (l *Listener) Accept(ctx context.Context) (net.Conn, keys.PublicKey, error) {
	a, err := l.in.Get(ctx)
	if errors.Is(err, net.ErrClosed) {
		err = ErrClosed
	}
	if err != nil {
		return nil, keys.PublicKey{}, fmt.Errorf("accept on port %d: %w", l.port, err)
	}
	return a.conn, a.remote, nil
}

// Addr is the listener's mesh address.
func (l *Listener) Addr() Addr { return Addr{Key: l.n.PublicKey(), Port: l.port} }

// Close stops listening; streams not yet accepted are reset.
func (l *Listener) Close() error {
	l.in.Close(func() {
		inbox.Unlist(&l.n.mu, l.n.listeners, l.port, l)
		l.n.announce()
	})
	return nil
}

// Ping measures the round trip to remote over the route (establishing a
// session first if there is none; that time is not counted).
func (n *Node) Ping(ctx context.Context, remote keys.PublicKey) (time.Duration, error) {
	rs, err := n.session(ctx, remote)
	if err != nil {
		return 0, fmt.Errorf("ping %s: %w", remote.Short(), err)
	}
	id := rand.Uint64()
	ch := make(chan struct{})
	n.mu.Lock()
	n.pings[id] = ch
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.pings, id)
		n.mu.Unlock()
	}()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	start := time.Now()
	if err := n.sendOnRoute(rs.ep, proto.KindPing, b[:]); err != nil {
		return 0, fmt.Errorf("ping %s: %w", remote.Short(), err)
	}
	t := time.NewTimer(n.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case <-ch:
		return time.Since(start), nil
	case <-t.C:
		return 0, fmt.Errorf("ping %s: %w", remote.Short(), ErrTimeout)
	case <-ctx.Done():
		return 0, fmt.Errorf("ping %s: %w", remote.Short(), ctx.Err())
	}
}

// CloseSession ends the session with remote (its streams fail, the route
// is released). The next Dial establishes a new route and session.
func (n *Node) CloseSession(remote keys.PublicKey) error {
	n.mu.Lock()
	rs := n.sessions[remote]
	n.mu.Unlock()
	if rs == nil {
		return fmt.Errorf("close session with %s: %w", remote.Short(), ErrClosed)
	}
	return rs.s.Close()
}
