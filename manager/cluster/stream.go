package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/ratelimit"
	"github.com/skywire-mesh/skywire/keys"
)

// Raft runs over links (internal/mesh/link): every connection between two
// members is the secure handshake with the members' manager keys, then
// encrypted frames. The dialer knows the key the address must answer
// with; the listener accepts only keys of the cluster's members and logs
// every other one. The first frame of a connection says what it is for.
const (
	frameData = link.MinUserType // a chunk of the stream

	purposeRaft    = 'R' // raft's transport
	purposeStatus  = 'S' // one status request (see Cluster.memberStatus)
	purposeForward = 'F' // one write forwarded to the leader (forward.go)

	// maxRaftHandshakes caps the connections in their handshake on the
	// raft port, in all and per source address.
	maxRaftHandshakes          = 32
	maxRaftHandshakesPerSource = 8
)

// ErrNotMember: a link from or to a key that is not a cluster member.
var ErrNotMember = errors.New("not a member of the manager cluster")

// streamLayer is raft's StreamLayer over links.
type streamLayer struct {
	ln      net.Listener
	linkCfg link.Config
	// keyOf maps a member's raft address to the key it must have;
	// isMember says whether a key belongs to a member.
	keyOf    func(addr string) (keys.PublicKey, bool)
	isMember func(keys.PublicKey) bool
	status   func(net.Conn) // serves one status connection
	forward  func(net.Conn, keys.PublicKey)
	dialer   func(ctx context.Context, addr string) (net.Conn, error)
	log      *slog.Logger
	gate     *ratelimit.Gate

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	conns  chan net.Conn

	mu       sync.Mutex
	refusals int                      // guarded by mu
	nextLog  time.Time                // guarded by mu
	open     map[*streamConn]struct{} // guarded by mu; closed by Close
	closed   bool                     // guarded by mu
}

func newStreamLayer(ln net.Listener, linkCfg link.Config, keyOf func(string) (keys.PublicKey, bool),
	isMember func(keys.PublicKey) bool, status func(net.Conn), forward func(net.Conn, keys.PublicKey), log *slog.Logger) *streamLayer {
	s := &streamLayer{ln: ln, linkCfg: linkCfg, keyOf: keyOf, isMember: isMember, status: status, forward: forward, log: log,
		gate: ratelimit.NewGate(maxRaftHandshakes, maxRaftHandshakesPerSource), conns: make(chan net.Conn),
		open: make(map[*streamConn]struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Go(s.acceptLoop)
	return s
}

func (s *streamLayer) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Warn("raft accept failed", "err", err)
				select { // back off (out of file descriptors, say)
				case <-time.After(100 * time.Millisecond):
					continue
				case <-s.ctx.Done():
				}
			}
			return
		}
		done, refused := s.gate.Enter(c.RemoteAddr())
		if refused != ratelimit.Admitted {
			s.refused("raft connection refused: too many in their handshake", "addr", c.RemoteAddr())
			c.Close()
			continue
		}
		s.wg.Go(func() { s.serve(c, done) })
	}
}

// refused logs a refusal at most once a second.
func (s *streamLayer) refused(msg string, args ...any) {
	now := time.Now()
	s.mu.Lock()
	s.refusals++
	if now.Before(s.nextLog) {
		s.mu.Unlock()
		return
	}
	s.nextLog = now.Add(time.Second)
	n := s.refusals
	s.mu.Unlock()
	s.log.Warn(msg, append(args, "refusals", n)...)
}

// serve runs the handshake of one accepted connection and hands it to
// raft or to the status handler.
func (s *streamLayer) serve(c net.Conn, handshook func()) {
	lc, err := link.Server(s.ctx, c, s.linkCfg, func(k keys.PublicKey) error {
		if !s.isMember(k) {
			return fmt.Errorf("key %s: %w", k.Short(), ErrNotMember)
		}
		return nil
	})
	handshook()
	if err != nil {
		if errors.Is(err, ErrNotMember) || errors.Is(err, link.ErrRefused) {
			s.refused("raft link refused: the key is not a cluster member", "addr", c.RemoteAddr(), "err", err)
		} else if s.ctx.Err() == nil {
			s.log.Info("raft link handshake failed", "addr", c.RemoteAddr(), "err", err)
		}
		return
	}
	sc, err := s.track(lc, c)
	if err != nil {
		return
	}
	var purpose [1]byte
	if _, err := sc.Read(purpose[:]); err != nil {
		sc.Close()
		return
	}
	switch purpose[0] {
	case purposeRaft:
		select {
		case s.conns <- sc:
		case <-s.ctx.Done():
			sc.Close()
		}
	case purposeStatus:
		s.status(sc)
		s.untrack(sc)
		sc.lc.Close() // with linger: the answer must arrive
	case purposeForward:
		if s.forward == nil {
			sc.Close()
			return
		}
		s.forward(sc, lc.Remote())
		s.untrack(sc)
		sc.lc.Close()
	default:
		s.log.Warn("raft link dropped: unknown purpose", "peer", lc.Remote().Short(), "purpose", purpose[0])
		sc.Close()
	}
}

// Accept implements net.Listener for raft.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.ctx.Done():
		return nil, net.ErrClosed
	}
}

// track wraps lc so that Close closes it (raft does not close the
// connections it accepted: their readers end when the link does).
func (s *streamLayer) track(lc *link.Conn, raw net.Conn) (*streamConn, error) {
	sc := &streamConn{lc: lc, raw: raw, layer: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		lc.CloseNow()
		return nil, net.ErrClosed
	}
	s.open[sc] = struct{}{}
	return sc, nil
}

func (s *streamLayer) untrack(sc *streamConn) {
	s.mu.Lock()
	delete(s.open, sc)
	s.mu.Unlock()
}

// Close stops accepting, closes every connection and waits for the
// handshakes in progress.
func (s *streamLayer) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.wg.Wait()
	s.mu.Lock()
	s.closed = true
	open := s.open
	s.open = nil
	s.mu.Unlock()
	for sc := range open {
		sc.lc.CloseNow()
	}
	return err
}

func (s *streamLayer) Addr() net.Addr { return s.ln.Addr() }

// Dial implements raft.StreamLayer: a link to the member at address,
// which must authenticate as that member's key.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.dial(string(address), purposeRaft, timeout)
}

func (s *streamLayer) dial(addr string, purpose byte, timeout time.Duration) (net.Conn, error) {
	key, ok := s.keyOf(addr)
	if !ok {
		return nil, fmt.Errorf("dial raft %s: no member has that raft_addr: %w", addr, ErrNotMember)
	}
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	dial := s.dialer
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	c, err := dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("dial raft %s: %w", addr, err)
	}
	lc, err := link.Client(ctx, c, s.linkCfg, key)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("dial raft %s (%s): %w", addr, key.Short(), err)
	}
	sc, err := s.track(lc, c)
	if err != nil {
		return nil, err
	}
	if _, err := sc.Write([]byte{purpose}); err != nil {
		sc.Close()
		return nil, err
	}
	return sc, nil
}

// streamConn is a byte stream over a link's frames. Deadlines are not
// needed: a member that stops answering is found by the link's
// keepalive (DeadAfter), which fails Read and Write.
type streamConn struct {
	lc    *link.Conn
	raw   net.Conn
	layer *streamLayer
	buf   []byte // unread rest of the current frame (only Read uses it)
}

func (c *streamConn) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		typ, payload, err := c.lc.Recv()
		if err != nil {
			return 0, err
		}
		if typ != frameData {
			return 0, fmt.Errorf("raft link: unexpected frame type %d", typ)
		}
		c.buf = payload
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func (c *streamConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), link.DefaultMaxFrame)]
		if err := c.lc.Send(frameData, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

func (c *streamConn) Close() error {
	c.layer.untrack(c)
	return c.lc.CloseNow()
}

func (c *streamConn) LocalAddr() net.Addr              { return c.raw.LocalAddr() }
func (c *streamConn) RemoteAddr() net.Addr             { return c.raw.RemoteAddr() }
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// Remote is the member key the link authenticated.
func (c *streamConn) Remote() keys.PublicKey { return c.lc.Remote() }
