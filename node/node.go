// Package node is a skywire mesh node: it keeps encrypted links to its
// peers, registers with node managers and reports its links, forwards route
// traffic for others by label switching, and carries end-to-end sessions
// (internal/session) for local apps, which use the Go API on *Node: Listen
// and Dial for streams, ListenPacket for datagrams, Ping and RouteTo.
//
// # Data plane
//
// A route is a chain of rules, one pair per relay: a data frame that
// arrives from peer P with label L leaves towards peer Q with label L'
// (internal/proto's 5-byte header; the relay rewrites the label and nothing
// else). Rules are installed only by a trusted manager (Config.Managers) and
// expire after Config.RuleIdle without traffic; endpoints send keepalives.
// The forwarding path does one map lookup per frame and no allocation.
// Session packets are sealed end to end and, like every frame, encrypted
// again by each link, so a packet looks different on every hop
// (docs/protocol.md). Forwarding never involves the manager, so routes keep
// working while it restarts.
//
// # Sessions
//
// A node keeps one session per remote node, over a route: the endpoints run
// the secure handshake ("skywire-session-v1") over the route and then seal
// every session packet with windowed counter nonces, so relays only see
// ciphertext. Streams start with a 2-byte destination port; datagrams with
// destination and source ports. When the manager moves a route to a new
// path, the session resends what was unacknowledged (session.SetPath).
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skywire-mesh/skywire/internal/acceptloop"
	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/internal/ratelimit"
	"github.com/skywire-mesh/skywire/keys"
)

// Errors.
var (
	// ErrNoRoute: no route to the remote node (no path within the hop
	// limit, the remote is not registered, or an established route broke
	// and could not be repaired).
	ErrNoRoute = errors.New("no route")
	// ErrNoManager: no configured manager is reachable.
	ErrNoManager = errors.New("no manager reachable")
	// ErrNoQuorum: the node's managers are a cluster without a leader
	// (fewer than a majority of them are up) for longer than an election
	// takes.
	ErrNoQuorum = errors.New("manager cluster has no quorum")
	// ErrClosed: the node, listener or connection is closed.
	ErrClosed = errors.New("node closed")
	// ErrPortInUse: Listen or ListenPacket on a port already in use.
	ErrPortInUse = errors.New("port in use")
	// ErrHandshake: the end-to-end handshake with the remote node failed.
	ErrHandshake = errors.New("session handshake failed")
	// ErrTimeout: a request or handshake timed out.
	ErrTimeout = errors.New("timed out")
	// ErrRefused: the remote node has no listener on the dialled port (or
	// refused the stream: too many open in the session).
	ErrRefused = errors.New("stream refused: nothing listens on that port")
)

// unmeasuredRTT is reported for a link before its first keepalive echo.
const unmeasuredRTT = 10 * time.Millisecond

// Node is a mesh node. Create it with New, run it with Run.
type Node struct {
	cfg     Config
	log     *slog.Logger
	linkCfg link.Config
	ln      net.Listener

	life    context.Context // cancelled when Run shuts down
	endLife context.CancelFunc
	wg      sync.WaitGroup
	running atomic.Bool

	now atomic.Int64 // coarse clock (Unix ns) for rule idle times, set by the janitor

	mu        sync.Mutex
	peers     map[keys.PublicKey]*peer       // guarded by mu
	endpoints map[uint64]*endpoint           // guarded by mu; by route ID
	sessions  map[keys.PublicKey]*remoteSess // guarded by mu; the session used to dial each remote
	listeners map[uint16]*Listener           // guarded by mu
	pconns    map[uint16]*packetConn         // guarded by mu
	pings     map[uint64]chan struct{}       // guarded by mu
	dialing   map[keys.PublicKey]*dialWait   // guarded by mu
	stopping  bool                           // guarded by mu
	mgrUp     chan struct{}                  // guarded by mu; closed and replaced when a manager registers
	mgrs      []*mgrConn                     // fixed after New
	// leader is the manager that last installed a route for us (of a
	// manager cluster, its leader): route requests go to it first.
	leader atomic.Pointer[mgrConn]

	reportKick chan struct{} // cap 1: links changed, report now

	sessPerRemote map[keys.PublicKey]int // guarded by mu; live sessions (both roles) with each remote
	hsBudget      budget                 // responder handshakes in progress
	pongBudget    budget                 // pongs being sent
	linkHS        *ratelimit.Gate        // incoming connections in their link handshake

	ctr  counters
	logs logs
}

type counters struct {
	forwarded, delivered, unknownLabel, malformed, noLink atomic.Uint64
	untrusted, badControl, linksRefused, handshakesFailed atomic.Uint64
	rulesExpired, installs                                atomic.Uint64

	badReplies, badHandshakes, hsDropped, sessRefused, streamsRefused atomic.Uint64
	pingsDropped, peersRefused, linkHSRefused, acceptErrors           atomic.Uint64
	notMember, managerRefused                                         atomic.Uint64
}

// New validates cfg and binds the listener (if any); Run starts the node.
// log may be nil.
func New(cfg Config, log *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new node: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln := cfg.Listener
	if ln == nil && cfg.ListenAddr != "" {
		var err error
		ln, err = net.Listen("tcp", cfg.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("new node: listen: %w", err)
		}
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	if len(cfg.AdvertiseAddrs) == 0 && ln != nil {
		cfg.AdvertiseAddrs = []string{ln.Addr().String()}
	}
	n := &Node{
		cfg:        cfg,
		log:        log,
		linkCfg:    link.Config{Local: cfg.Identity, Logger: log, KeepaliveInterval: cfg.LinkKeepalive, DeadAfter: cfg.LinkDeadAfter},
		ln:         ln,
		peers:      make(map[keys.PublicKey]*peer),
		endpoints:  make(map[uint64]*endpoint),
		sessions:   make(map[keys.PublicKey]*remoteSess),
		listeners:  make(map[uint16]*Listener),
		pconns:     make(map[uint16]*packetConn),
		pings:      make(map[uint64]chan struct{}),
		dialing:    make(map[keys.PublicKey]*dialWait),
		mgrUp:      make(chan struct{}),
		reportKick: make(chan struct{}, 1),

		sessPerRemote: make(map[keys.PublicKey]int),
		hsBudget:      budget{max: int64(cfg.MaxPendingHandshakes)},
		pongBudget:    budget{max: int64(cfg.MaxPendingPongs)},
		linkHS:        ratelimit.NewGate(cfg.MaxLinkHandshakes, cfg.MaxLinkHandshakesPerSource),
	}
	for _, m := range cfg.Managers {
		n.mgrs = append(n.mgrs, &mgrConn{n: n, peer: m, pending: make(map[uint64]chan proto.Message)})
	}
	n.life, n.endLife = context.WithCancel(context.Background())
	n.now.Store(time.Now().UnixNano())
	return n, nil
}

// PublicKey is the node's identity and mesh address.
func (n *Node) PublicKey() keys.PublicKey { return n.cfg.Identity.Public }

// Addr is the address peers link to, or nil if the node does not listen.
func (n *Node) Addr() net.Addr {
	if n.ln == nil {
		return nil
	}
	return n.ln.Addr()
}

// Run runs the node until ctx is done, then closes every link, session and
// listener and returns after all of the node's goroutines have exited. A
// Node runs once.
func (n *Node) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return fmt.Errorf("run node: already ran: %w", ErrClosed)
	}
	n.log.Info("node starting", "key", n.PublicKey(), "listen", n.Addr(), "peers", len(n.cfg.Peers), "managers", len(n.cfg.Managers))
	if n.ln != nil {
		n.wg.Go(n.acceptLoop)
	}
	for _, p := range n.cfg.Peers {
		n.wg.Go(func() { n.peerLoop(p) })
	}
	for _, m := range n.mgrs {
		n.wg.Go(m.run)
	}
	n.wg.Go(n.janitor)
	n.wg.Go(n.reportLoop)

	select {
	case <-ctx.Done():
	case <-n.life.Done():
	}
	n.shutdown()
	n.wg.Wait()
	n.log.Info("node stopped")
	return nil
}

// Close stops a running node like cancelling Run's context (Run returns
// once everything has stopped). On a node that never ran it releases the
// listener New bound, and Run will refuse to start.
func (n *Node) Close() error {
	n.endLife()
	if n.running.CompareAndSwap(false, true) && n.ln != nil {
		return n.ln.Close()
	}
	return nil
}

func (n *Node) shutdown() {
	n.endLife()
	if n.ln != nil {
		n.ln.Close()
	}
	n.mu.Lock()
	n.stopping = true
	var conns []*link.Conn
	for _, p := range n.peers {
		p.mu.RLock()
		conns = append(conns, p.links...)
		p.mu.RUnlock()
	}
	var sess []*remoteSess
	for _, ep := range n.endpoints {
		if rs := ep.sess.Load(); rs != nil {
			sess = append(sess, rs)
		}
	}
	ls := make([]*Listener, 0, len(n.listeners))
	for _, l := range n.listeners {
		ls = append(ls, l)
	}
	pcs := make([]*packetConn, 0, len(n.pconns))
	for _, pc := range n.pconns {
		pcs = append(pcs, pc)
	}
	n.mu.Unlock()
	// Close sessions (telling their peers) while the links still work,
	// but do not let a stuck link hold up the shutdown.
	var closing sync.WaitGroup
	for _, rs := range sess {
		closing.Go(func() { rs.s.Close() })
	}
	waitTimeout(&closing, 500*time.Millisecond)
	// Links linger until their peers have read the close (link.Config
	// CloseLinger): close them all at once. A WaitGroup of their own:
	// after a timeout above, waitTimeout's goroutine may still be in
	// closing.Wait, and adding to closing then panics ("WaitGroup is
	// reused before previous Wait has returned").
	var linksClosing sync.WaitGroup
	for _, c := range conns {
		linksClosing.Go(func() { c.Close() })
	}
	linksClosing.Wait()
	for _, m := range n.mgrs {
		m.close()
	}
	for _, l := range ls {
		l.Close()
	}
	for _, pc := range pcs {
		pc.Close()
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// sleep waits d or until the node stops; it reports whether to go on.
func (n *Node) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.life.Done():
		return false
	}
}

// backoff doubles d within the configured bounds, with jitter.
func (n *Node) backoff(d time.Duration) time.Duration {
	d *= 2
	d = max(d, n.cfg.ReconnectMin)
	d = min(d, n.cfg.ReconnectMax)
	return d/2 + rand.N(d/2+1)
}

// peerLoop keeps a link to a configured peer, reconnecting with backoff.
func (n *Node) peerLoop(p Peer) {
	log := n.log.With("peer", p.PublicKey.Short(), "addr", p.Addr)
	refusing := false // warned that p is not a member
	n.keepLinked(log, "link to peer refused (wrong key, or we are not a member of its mesh?)", "link to peer failed",
		func() (*link.Conn, error) {
			if !n.peerAllowed(p.PublicKey) {
				n.refuseConfiguredPeer(log, p.PublicKey, &refusing)
				return nil, errPeerNotMember
			}
			refusing = false
			return n.dialLink(p)
		},
		func(lc *link.Conn) {
			log.Info("link up", "dir", "out")
			n.serveLink(lc)
		})
}

// keepLinked runs until the node stops: connect makes a link, serve uses
// it until it dies, and the next attempt waits a backoff between
// ReconnectMin and ReconnectMax (from the start again after a link that
// lived longer than ReconnectMax). A failure is logged at debug level as
// failedMsg, and a refused handshake (wrong key?) is counted and warned
// about as refusedMsg.
func (n *Node) keepLinked(log *slog.Logger, refusedMsg, failedMsg string, connect func() (*link.Conn, error), serve func(*link.Conn)) {
	var delay time.Duration
	for n.life.Err() == nil {
		lc, err := connect()
		if err != nil {
			if n.life.Err() != nil {
				return
			}
			if errors.Is(err, link.ErrHandshake) || errors.Is(err, link.ErrRefused) {
				n.ctr.linksRefused.Add(1)
				log.Warn(refusedMsg, "err", err)
			}
		} else {
			start := time.Now()
			serve(lc)
			if time.Since(start) > n.cfg.ReconnectMax {
				delay = 0
			}
		}
		delay = n.backoff(delay)
		if err != nil {
			log.Debug(failedMsg, "err", err, "retry_in", delay)
		}
		if !n.sleep(delay) {
			return
		}
	}
}

func (n *Node) dialLink(p Peer) (*link.Conn, error) {
	ctx, cancel := context.WithTimeout(n.life, n.cfg.RequestTimeout)
	defer cancel()
	conn, err := n.cfg.Dial(ctx, p.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", p.Addr, err)
	}
	return link.Client(ctx, conn, n.linkCfg, p.PublicKey)
}

// acceptLoop accepts incoming links until the node stops. Accept errors
// are retried with backoff (5 ms doubling to 1 s, as net/http's
// Server.Serve: a listener out of file descriptors fails every Accept
// until connections are closed), so a burst of connections that exhausts
// the file descriptors does not stop the node from accepting once it is
// gone. At most MaxLinkHandshakes connections are in their link handshake
// at once; more are closed at once.
func (n *Node) acceptLoop() {
	err := acceptloop.Serve(n.life, n.ln, n.serveIncoming, func(err error, retryIn time.Duration) {
		n.ctr.acceptErrors.Add(1)
		n.logs.acceptErr.log(n.log, slog.LevelWarn, "accept failed; retrying", "err", err, "retry_in", retryIn)
	})
	if err != nil {
		n.log.Error("listener closed; no more incoming links", "err", err)
	}
}

// serveIncoming runs the link handshake of an accepted connection, if the
// handshake budget allows, and serves the link.
func (n *Node) serveIncoming(c net.Conn) {
	leave, refused := n.linkHS.Enter(c.RemoteAddr())
	switch refused {
	case ratelimit.Full:
		n.logs.linkHSRefused.log(n.log, slog.LevelWarn, "closing incoming connection: too many link handshakes in progress",
			"addr", c.RemoteAddr(), "max_link_handshakes", n.cfg.MaxLinkHandshakes)
	case ratelimit.SourceFull:
		n.logs.linkHSRefused.log(n.log, slog.LevelWarn, "closing incoming connection: too many link handshakes in progress from its source",
			"addr", c.RemoteAddr(), "max_link_handshakes_per_source", n.cfg.MaxLinkHandshakesPerSource)
	}
	if refused != ratelimit.Admitted {
		c.Close()
		n.ctr.linkHSRefused.Add(1)
		return
	}
	n.wg.Go(func() {
		lc, err := link.Server(n.life, c, n.linkCfg, n.acceptPeer)
		leave()
		if err != nil {
			n.ctr.linksRefused.Add(1)
			n.log.Info("incoming link refused", "addr", c.RemoteAddr(), "err", err)
			return
		}
		n.log.Info("link up", "peer", lc.Remote().Short(), "dir", "in")
		n.serveLink(lc)
	})
}

// acceptPeer admits any node but ourselves and our managers, if it is a
// member (AcceptPeers).
func (n *Node) acceptPeer(k keys.PublicKey) error {
	if k == n.PublicKey() {
		return errors.New("peer claims this node's own key")
	}
	for _, m := range n.cfg.Managers {
		if m.PublicKey == k {
			return errors.New("managers do not link as peers")
		}
	}
	if !n.peerAllowed(k) {
		n.refusePeer(k, "incoming link refused")
		return errPeerNotMember
	}
	return nil
}

// serveLink registers lc with its peer, reads it until it dies, then
// unregisters it.
func (n *Node) serveLink(lc *link.Conn) {
	p := n.addLink(lc)
	if p == nil {
		lc.Close()
		return
	}
	defer n.removeLink(p, lc)
	if !n.peerAllowed(lc.Remote()) { // evicted while the link came up
		n.refusePeer(lc.Remote(), "dropping new link")
		return
	}
	stop := context.AfterFunc(n.life, func() { lc.Close() })
	defer stop()
	hook := n.cfg.FrameHook
	key := lc.Remote()
	for {
		body, err := lc.RecvFrame()
		if err != nil {
			if n.life.Err() == nil {
				n.log.Info("link down", "peer", key.Short(), "err", err)
			}
			return
		}
		typ, payload := body[0], body[1:]
		if hook != nil {
			hook(key, typ, payload)
		}
		switch typ {
		case proto.LinkData:
			n.handleData(p, body)
		case proto.LinkControl:
			n.handlePeerControl(p, payload)
		default:
			n.ctr.malformed.Add(1)
			n.log.Warn("dropping link: unknown frame type", "peer", key.Short(), "type", typ)
			return
		}
	}
}

// handlePeerControl handles a control message from a peer node. Nodes
// send none. Install and RouteDown are taken only from a configured
// manager (mgr.go reads them from the manager link): from a peer, even
// one registered with the manager, they are dropped and counted as
// untrusted.
func (n *Node) handlePeerControl(p *peer, payload []byte) {
	msg, err := proto.Decode(payload)
	if err != nil {
		n.ctr.badControl.Add(1)
		n.logs.badControl.log(n.log, slog.LevelWarn, "dropping malformed control message from peer", "peer", p.key.Short(), "err", err)
		return
	}
	switch msg.(type) {
	case *proto.Install, *proto.RouteDown:
		n.ctr.untrusted.Add(1)
		n.logs.untrusted.log(n.log, slog.LevelWarn, "dropping route control from an untrusted node", "peer", p.key.Short(), "type", msg.Type())
		return
	}
	n.ctr.badControl.Add(1)
	n.logs.badControl.log(n.log, slog.LevelWarn, "dropping unexpected control message from peer", "peer", p.key.Short(), "type", msg.Type())
}

// addLink registers lc with its peer's entry, creating the entry, and
// returns it; it returns nil (and counts and logs the refusal) if that
// would exceed max_peers (configured peers are always admitted) or
// max_links_per_peer.
func (n *Node) addLink(lc *link.Conn) *peer {
	k := lc.Remote()
	n.mu.Lock()
	p := n.peers[k]
	if p == nil {
		if len(n.peers) >= n.cfg.MaxPeers && !n.configuredPeer(k) {
			n.mu.Unlock()
			n.refuseOverCap(k, "max_peers reached", "max_peers", n.cfg.MaxPeers)
			return nil
		}
		p = &peer{key: k, rules: make(map[uint32]*rule)}
		n.peers[k] = p
	}
	p.mu.Lock()
	full := len(p.links) >= n.cfg.MaxLinksPerPeer
	if !full {
		p.links = append(p.links, lc)
	}
	p.mu.Unlock()
	n.mu.Unlock()
	if full {
		n.refuseOverCap(k, "max_links_per_peer reached", "max_links_per_peer", n.cfg.MaxLinksPerPeer)
		return nil
	}
	n.kickReport()
	return p
}

func (n *Node) configuredPeer(k keys.PublicKey) bool {
	for _, p := range n.cfg.Peers {
		if p.PublicKey == k {
			return true
		}
	}
	return false
}

func (n *Node) refuseOverCap(k keys.PublicKey, why string, capKey string, capVal int) {
	n.ctr.peersRefused.Add(1)
	n.logs.peerRefused.log(n.log, slog.LevelWarn, "link closed: "+why, "peer", k.Short(), capKey, capVal)
}

// removeLink unregisters lc. A peer entry left with no link and no rule
// is forgotten: keys that linked once must not pile up. (Rules from other
// peers that lead to it keep the old entry and fail with NoLink until
// the manager replaces them.)
func (n *Node) removeLink(p *peer, lc *link.Conn) {
	lc.Close()
	n.mu.Lock()
	p.mu.Lock()
	p.links = slices.DeleteFunc(p.links, func(c *link.Conn) bool { return c == lc })
	n.forgetIfIdleLocked(p)
	p.mu.Unlock()
	n.mu.Unlock()
	n.kickReport()
}

// forgetIfIdle forgets p if it has neither links nor rules.
func (n *Node) forgetIfIdle(p *peer) {
	n.mu.Lock()
	p.mu.Lock()
	n.forgetIfIdleLocked(p)
	p.mu.Unlock()
	n.mu.Unlock()
}

// forgetIfIdleLocked is forgetIfIdle with n.mu and p.mu held.
func (n *Node) forgetIfIdleLocked(p *peer) {
	if len(p.links) == 0 && len(p.rules) == 0 && n.peers[p.key] == p {
		delete(n.peers, p.key)
	}
}

func (n *Node) kickReport() {
	select {
	case n.reportKick <- struct{}{}:
	default:
	}
}

// peerList is a snapshot of the node's peers, to walk without holding n.mu.
func (n *Node) peerList() []*peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Collect(maps.Values(n.peers))
}

// linkStates is the snapshot of links reported to managers.
func (n *Node) linkStates() []proto.LinkState {
	ps := n.peerList()
	var out []proto.LinkState
	for _, p := range ps {
		lc := p.current()
		if lc == nil {
			continue
		}
		rtt := lc.RTT()
		if rtt == 0 {
			rtt = unmeasuredRTT
		}
		if n.cfg.ReportRTT != nil {
			rtt = n.cfg.ReportRTT(p.key, rtt)
		}
		out = append(out, proto.LinkState{Peer: proto.Key(p.key), RTT: rtt})
	}
	slices.SortFunc(out, func(a, b proto.LinkState) int { return compareKeys(a.Peer.PublicKey(), b.Peer.PublicKey()) })
	return out
}

func compareKeys(a, b keys.PublicKey) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// reportLoop sends the link snapshot to every registered manager when the
// set of links changes and every LinkReportInterval.
func (n *Node) reportLoop() {
	t := time.NewTicker(n.cfg.LinkReportInterval)
	defer t.Stop()
	var last []proto.LinkState
	for {
		force := false
		select {
		case <-n.life.Done():
			return
		case <-n.reportKick:
			force = true
		case <-t.C:
		}
		links := n.linkStates()
		if !force && slices.Equal(links, last) {
			continue
		}
		last = links
		for _, m := range n.mgrs {
			m.sendIfUp(&proto.Links{Links: links})
		}
	}
}
