// Package manager is skywire's node manager. Nodes connect to it over
// authenticated links (internal/link), register (their key is the link's
// authenticated key, plus reachable addresses and the apps they offer) and
// report their links with measured round-trip times. The manager keeps the
// graph of the mesh (manager/graph), answers route requests by installing
// label-switching rules on every hop of the lowest-latency path in
// parallel, repairs routes when a link dies, and serves the directory.
//
// The protocol is described in docs/protocol.md; messages are in
// internal/proto.
//
// # Links in the graph
//
// A link is in the graph while both of its ends are registered and both
// report it; the RTT is the latest either end reported. A link that one end
// stops reporting is down at once, and every route that crossed it is
// repaired: a new path is computed and installed on every hop, and both
// endpoints are told (an Install with an Endpoint). If no path exists the
// endpoints get a RouteDown. A node whose link to the manager drops is taken
// out of the graph but its routes are left alone: the data plane does not
// depend on the manager, and a node that is really gone is reported by its
// neighbours.
//
// # Labels
//
// The manager picks every label: for each link of a path one random
// non-zero label per direction. The receiving hop keys its rules by (peer,
// label), so a label only has to be unique among the labels one peer sends
// to it; a hop that already uses a label refuses the Install
// (CodeLabelInUse) and the manager retries the whole route with fresh
// labels. Choosing labels centrally lets the manager install every hop in
// one parallel round trip.
//
// # Trust
//
// A registered node is not trusted beyond what it is: an install-ack
// counts only from the hop the install went to (pending installs are keyed
// by random request ID and bound to the hop's key, checked against the
// link's authenticated key); a route re-reported after a restart is the
// manager's only once both endpoints report the same ID and hops, and only
// an endpoint closes a route. What a peer can make the manager hold is
// capped (Config: routes per node, route requests per second, connections
// before hello, repair workers); refusals are counted in Stats and logged
// at most once a second per kind.
package manager

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
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
	"github.com/skywire-mesh/skywire/manager/cluster"
	"github.com/skywire-mesh/skywire/manager/graph"
)

// Errors.
var (
	// ErrClosed: the manager is not running.
	ErrClosed = errors.New("manager closed")
	// ErrInstall: a hop did not confirm a route's rules.
	ErrInstall = errors.New("route install failed")
)

const (
	helloTimeout    = 5 * time.Second
	installAttempts = 3
	// verifyDelay is how long after a restart the manager waits for nodes
	// to re-register before it repairs re-reported routes whose links it
	// still does not know.
	verifyDelay = 15 * time.Second
	janitorTick = time.Second
)

// NodeInfo is a registered node in the directory.
type NodeInfo struct {
	Key keys.PublicKey
	// Name is the name the node claims in its hello ("" for none); two
	// nodes may claim one name.
	Name  string `json:",omitempty"`
	Addrs []string
	Apps  []proto.App
	// AppsHidden: the node keeps its app list private.
	AppsHidden bool
	Links      []LinkInfo
	Since      time.Time
}

// LinkInfo is one link a node reported.
type LinkInfo struct {
	Peer keys.PublicKey
	RTT  time.Duration
	Up   bool // both ends report it (it is in the graph)
}

// RouteInfo is a route the manager maintains.
type RouteInfo struct {
	ID       uint64
	Src, Dst keys.PublicKey
	Hops     []keys.PublicKey
	Latency  time.Duration
	Repairs  int
}

// Stats are the manager's counters.
type Stats struct {
	Registrations  uint64
	BadMessages    uint64 // links dropped for malformed or unexpected messages
	RouteRequests  uint64
	RoutesFailed   uint64 // requests answered with an error
	Repairs        uint64 // routes moved to a new path
	RoutesLost     uint64 // routes that could not be repaired
	InstallsFailed uint64 // install rounds that did not complete

	ForgedAcks        uint64 // install acks from a node the install did not go to (ignored)
	RoutesRefused     uint64 // reported routes not imported: over max_routes_per_node
	RequestsRefused   uint64 // route requests and path queries refused: rate or route cap
	HandshakesRefused uint64 // connections closed: over max_handshakes or max_handshakes_per_source
	AcceptErrors      uint64 // failed accepts (e.g. out of file descriptors), retried
	Membership        MembershipStats
}

// Manager is a running node manager. Create it with New and run it with Run.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	ln      net.Listener
	linkCfg link.Config

	mu      sync.Mutex
	nodes   map[keys.PublicKey]*nodeState // guarded by mu
	g       *graph.Graph                  // guarded by mu
	routes  map[uint64]*route             // guarded by mu
	pending map[uint64]*pendingAck        // guarded by mu; by request ID
	running bool                          // guarded by mu
	// claims are routes one endpoint reported in a hello, held until the
	// other endpoint reports the same ID and hops.
	claims map[claimKey]*claim // guarded by mu
	// owned counts, per node, the routes it initiated plus its claims
	// (the cap max_routes_per_node applies to it).
	owned map[keys.PublicKey]int // guarded by mu
	// repairQ are the routes waiting for a repair worker (each at most
	// once: repairQueued); repairWorkers are running.
	repairQ       []uint64        // guarded by mu
	repairQueued  map[uint64]bool // guarded by mu
	repairWorkers int             // guarded by mu

	// handshakes admits connections that have not sent their hello.
	handshakes *ratelimit.Gate
	// verifyDelay is verifyDelay; tests shorten it.
	verifyDelay time.Duration
	mem         *members
	// cl is this manager's raft member (nil: a single manager); replQ
	// feeds the replicator.
	cl    *cluster.Cluster
	replQ chan *cluster.Command
	memQ  chan *cluster.Command // replicated membership changes to announce
	// pruneAt, on a new leader, is when registrations in the log of
	// nodes not linked to it are deleted (guarded by mu; zero: none due).
	pruneAt time.Time

	wg      sync.WaitGroup
	life    context.Context // cancelled when Run begins to shut down
	endLife context.CancelFunc

	registrations, badMessages, routeRequests, routesFailed atomic.Uint64
	repairs, routesLost, installsFailed                     atomic.Uint64
	forgedAcks, routesRefused, requestsRefused              atomic.Uint64
	handshakesRefused, acceptErrors                         atomic.Uint64

	// Refusals a peer can cause are logged at most once a second each.
	logForged, logRoutes, logRequests, logHandshakes, logAccept, logRepl logLimit
}

// pendingAck is an install waiting for its hop's acknowledgement. Only an
// ack on a link authenticated as hop counts.
type pendingAck struct {
	hop keys.PublicKey
	ch  chan *proto.InstallAck
}

type nodeState struct {
	key   keys.PublicKey
	conn  *link.Conn
	name  string // claimed in hello
	addrs []string
	apps  []proto.App
	// appsHidden: the node keeps its app list private.
	appsHidden bool
	links      map[keys.PublicKey]time.Duration
	since      time.Time
	// requests is the node's route request bucket; only the node's
	// serveConn goroutine uses it.
	requests ratelimit.Bucket

	memMu    sync.Mutex // orders the full member set before changes
	memReady bool       // guarded by memMu; the full set was sent
}

// claimKey identifies a reported route: its ID and its hops (as bytes),
// so a conflicting report of the same ID is a different claim and cannot
// replace the genuine one.
type claimKey struct {
	id   uint64
	hops string
}

// claim is a route one endpoint (reporter) reported after a restart.
type claim struct {
	hops     []keys.PublicKey
	reporter keys.PublicKey
	since    time.Time
}

type route struct {
	id        uint64
	src, dst  keys.PublicKey
	path      graph.Path
	maxHops   int
	repairing bool
	again     bool
	verifyAt  time.Time // zero: path known good
	repairs   int
}

// New validates cfg and binds the listener; Run serves it. log may be nil.
func New(cfg Config, log *slog.Logger) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new manager: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mem, err := newMembers(cfg)
	if err != nil {
		return nil, fmt.Errorf("new manager: %w", err)
	}
	ln := cfg.Listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", cfg.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("new manager: listen: %w", err)
		}
	}
	m := &Manager{
		cfg:     cfg,
		log:     log,
		ln:      ln,
		linkCfg: link.Config{Local: cfg.Identity, Logger: log, KeepaliveInterval: cfg.LinkKeepalive, DeadAfter: cfg.LinkDeadAfter},
		nodes:   make(map[keys.PublicKey]*nodeState),
		g:       graph.New(),
		routes:  make(map[uint64]*route),
		pending: make(map[uint64]*pendingAck),
		claims:  make(map[claimKey]*claim),
		owned:   make(map[keys.PublicKey]int),

		repairQueued: make(map[uint64]bool),
		handshakes:   ratelimit.NewGate(cfg.MaxHandshakes, cfg.MaxHandshakesPerSource),
		verifyDelay:  verifyDelay,
		mem:          mem,
	}
	m.life, m.endLife = context.WithCancel(context.Background())
	if cfg.Cluster != nil {
		m.replQ = make(chan *cluster.Command, replicateQueue)
		m.memQ = make(chan *cluster.Command, replicateQueue)
		m.cl, err = cluster.Open(*cfg.Cluster, m.linkCfg, log, cluster.Hooks{Leader: m.onLeader, Applied: m.onApplied})
		if err != nil {
			if cfg.Listener == nil {
				ln.Close()
			}
			return nil, fmt.Errorf("new manager: %w", err)
		}
		mem.cl = m.cl
	}
	return m, nil
}

// Addr is the address nodes connect to.
func (m *Manager) Addr() net.Addr { return m.ln.Addr() }

// PublicKey is the manager's identity.
func (m *Manager) PublicKey() keys.PublicKey { return m.cfg.Identity.Public }

// Run serves nodes until ctx is done, then closes every link and returns
// after all of the manager's goroutines have exited. A Manager runs once.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return fmt.Errorf("run manager: already ran: %w", ErrClosed)
	}
	m.running = true
	m.mu.Unlock()
	m.log.Info("manager listening", "addr", m.ln.Addr(), "key", m.cfg.Identity.Public)

	// Shutting down ends m.life first and only then the context the
	// links watch: a link that closes because the manager stops must find
	// its life over, or its deregistration would reach the cluster's log
	// (replicate drops commands once life has ended).
	outer := ctx
	ctx, cancel := context.WithCancel(context.WithoutCancel(outer))
	defer cancel()
	m.wg.Go(func() { m.acceptLoop(ctx) })
	m.wg.Go(func() { m.janitor(ctx) })
	if m.cl != nil {
		m.wg.Go(m.replicator)
		m.wg.Go(m.membershipWorker)
		m.wg.Go(m.importMembers)
	}

	<-outer.Done()
	m.endLife()
	cancel()
	m.ln.Close()
	// Each serveConn closes its link when ctx is done (links linger until
	// their node has read the close, so they close at once, not in turn).
	m.wg.Wait()
	if m.cl != nil {
		if err := m.cl.Close(); err != nil {
			m.log.Warn("manager cluster close", "err", err)
		}
	}
	m.log.Info("manager stopped")
	return nil
}

// acceptLoop accepts nodes until ctx is done. A failed accept (out of file
// descriptors, say) is retried with backoff; a connection beyond
// max_handshakes is closed at once.
func (m *Manager) acceptLoop(ctx context.Context) {
	err := acceptloop.Serve(ctx, m.ln, func(c net.Conn) {
		helloed, refused := m.handshakes.Enter(c.RemoteAddr())
		switch refused {
		case ratelimit.Full:
			m.logHandshakes.warn(m.log, "connection refused: too many connections in their handshake",
				"addr", c.RemoteAddr(), "max_handshakes", m.cfg.MaxHandshakes)
		case ratelimit.SourceFull:
			m.logHandshakes.warn(m.log, "connection refused: too many connections from its source in their handshake",
				"addr", c.RemoteAddr(), "max_handshakes_per_source", m.cfg.MaxHandshakesPerSource)
		}
		if refused != ratelimit.Admitted {
			m.handshakesRefused.Add(1)
			c.Close()
			return
		}
		m.wg.Go(func() { defer helloed(); m.serveConn(ctx, c, helloed) })
	}, func(err error, retryIn time.Duration) {
		m.acceptErrors.Add(1)
		m.logAccept.warn(m.log, "manager accept failed; retrying", "err", err, "retry_in", retryIn)
	})
	if err != nil {
		m.log.Error("manager accept failed; no new nodes can connect", "err", err)
	}
}

// serveConn runs one node's link: handshake, hello, then messages. It
// calls helloed once the node has sent its first message.
func (m *Manager) serveConn(ctx context.Context, c net.Conn, helloed func()) {
	lc, err := link.Server(ctx, c, m.linkCfg, nil)
	if err != nil {
		m.log.Warn("node link refused", "addr", c.RemoteAddr(), "err", err)
		return
	}
	defer lc.Close()
	// Close the link if the manager stops while we wait in Recv.
	stop := context.AfterFunc(ctx, func() { lc.Close() })
	defer stop()
	log := m.log.With("node", lc.Remote().Short())

	helloTimer := time.AfterFunc(helloTimeout, func() { lc.Close() })
	msg, err := m.recv(lc)
	helloTimer.Stop()
	helloed()
	if err != nil {
		log.Warn("node link dropped before hello", "err", err)
		return
	}
	hello, ok := msg.(*proto.Hello)
	if !ok {
		m.badMessages.Add(1)
		log.Warn("node link dropped: first message is not hello", "type", msg.Type())
		return
	}
	if hello.Version != proto.Version {
		m.send(lc, &proto.Welcome{Version: proto.Version, Code: proto.CodeVersion,
			Msg: fmt.Sprintf("manager speaks version %d", proto.Version)})
		log.Warn("node refused: unsupported protocol version", "version", hello.Version)
		return
	}
	if !m.admitNode(lc, c.RemoteAddr(), hello, log) {
		return
	}
	ns := m.register(lc, hello)
	defer m.deregister(ns)
	m.welcome(ns)
	log.Info("node registered", "name", hello.Name, "addrs", hello.Addrs, "links", len(hello.Links), "routes", len(hello.Routes))

	for {
		msg, err := m.recv(lc)
		if err != nil {
			if !errors.Is(err, link.ErrClosed) {
				log.Info("node link down", "err", err)
			}
			return
		}
		if err := m.handle(ctx, ns, msg); err != nil {
			m.badMessages.Add(1)
			log.Warn("node link dropped", "err", err)
			return
		}
	}
}

// recv returns the next control message; anything that is not one is an
// error that drops the link.
func (m *Manager) recv(lc *link.Conn) (proto.Message, error) {
	typ, payload, err := lc.Recv()
	if err != nil {
		return nil, err
	}
	if typ != proto.LinkControl {
		m.badMessages.Add(1)
		return nil, fmt.Errorf("read from node: unexpected link frame type %d", typ)
	}
	msg, err := proto.Decode(payload)
	if err != nil {
		m.badMessages.Add(1)
		return nil, fmt.Errorf("read from node: %w", err)
	}
	return msg, nil
}

func (m *Manager) send(lc *link.Conn, msg proto.Message) error {
	b, err := proto.Encode(nil, msg)
	if err != nil {
		return err
	}
	if err := lc.Send(proto.LinkControl, b); err != nil {
		return fmt.Errorf("send %s to %s: %w", msg.Type(), lc.Remote().Short(), err)
	}
	return nil
}

// handle processes one message from a registered node. An error drops the
// node's link.
func (m *Manager) handle(ctx context.Context, ns *nodeState, msg proto.Message) error {
	switch msg := msg.(type) {
	case *proto.Links:
		m.mu.Lock()
		if m.nodes[ns.key] != ns {
			m.mu.Unlock()
			return nil
		}
		down := m.applyLinksLocked(ns, msg.Links)
		m.mu.Unlock()
		m.linksDown(down)
	case *proto.Hello: // an update: new addresses, apps, links or routes
		if msg.Version != proto.Version {
			return fmt.Errorf("hello update with version %d", msg.Version)
		}
		m.mu.Lock()
		if m.nodes[ns.key] != ns {
			m.mu.Unlock()
			return nil
		}
		ns.addrs, ns.apps, ns.appsHidden, ns.name = msg.Addrs, msg.Apps, msg.AppsHidden, msg.Name
		down := m.applyLinksLocked(ns, msg.Links)
		refused := m.importRoutesLocked(ns.key, msg.Routes)
		m.replicate(nodeCommand(ns))
		m.mu.Unlock()
		m.refusedRoutes(ns.key, refused)
		m.linksDown(down)
	case *proto.RouteRequest:
		m.routeRequests.Add(1)
		if err := m.admitRequest(ns, true); err != nil {
			m.send(ns.conn, &proto.RouteReply{Req: msg.Req, Code: proto.CodeBadRequest, Msg: err.Error()})
			return nil
		}
		if reply := m.leaderCheck(msg.Req); reply != nil {
			m.send(ns.conn, reply)
			return nil
		}
		m.wg.Go(func() { m.serveRouteRequest(ctx, ns, msg) })
	case *proto.InstallAck:
		m.mu.Lock()
		p := m.pending[msg.Req]
		m.mu.Unlock()
		switch {
		case p == nil: // late: the install already timed out or failed
		case p.hop != ns.key:
			// Only the hop the install went to may answer it: the link's
			// authenticated key decides, nothing in the message.
			m.forgedAcks.Add(1)
			m.logForged.warn(m.log, "install ack from a node the install did not go to; ignored",
				"node", ns.key.Short(), "hop", p.hop.Short())
		default:
			select {
			case p.ch <- msg:
			default:
			}
		}
	case *proto.RouteClosed:
		var other *nodeState
		m.mu.Lock()
		if r := m.routes[msg.Route]; r != nil && (r.src == ns.key || r.dst == ns.key) {
			m.delRouteLocked(msg.Route)
			m.replicate(&cluster.Command{Op: cluster.OpRouteDel, ID: msg.Route})
			if r.src == ns.key {
				other = m.nodes[r.dst]
			} else {
				other = m.nodes[r.src]
			}
		}
		m.mu.Unlock()
		// Tell the other endpoint: the closing node's own goodbye travels
		// on the route, which a node that is stopping may have cut already
		// (it closes its links), and without this the other end's session
		// would wait for its idle timeout before a dial learns the remote
		// is gone.
		if other != nil {
			m.send(other.conn, &proto.RouteDown{Route: msg.Route, Code: proto.CodeRemoteGone, Msg: "the other endpoint closed the route"})
		}
	case *proto.PathQuery:
		reply := &proto.PathReply{Req: msg.Req}
		if err := m.admitRequest(ns, false); err != nil {
			reply.Code, reply.Msg = proto.CodeBadRequest, err.Error()
			m.send(ns.conn, reply)
			return nil
		}
		path, err := m.shortest(ns.key, msg.Dst.PublicKey(), int(msg.MaxHops))
		if err != nil {
			reply.Code, reply.Msg = codeOf(err), err.Error()
		} else {
			reply.Hops, reply.Per = wirePath(path)
		}
		m.send(ns.conn, reply)
	case *proto.DirectoryQuery:
		reply := m.directoryPage(msg)
		reply.Stale = m.isFollower()
		m.send(ns.conn, reply)
	default:
		return fmt.Errorf("unexpected %s message from a node", msg.Type())
	}
	return nil
}

func (m *Manager) register(lc *link.Conn, h *proto.Hello) *nodeState {
	key := lc.Remote()
	ns := &nodeState{key: key, conn: lc, name: h.Name, addrs: h.Addrs, apps: h.Apps, appsHidden: h.AppsHidden,
		links: map[keys.PublicKey]time.Duration{}, since: time.Now(),
		requests: ratelimit.Bucket{Rate: m.cfg.RouteRequestRate, Burst: float64(m.cfg.RouteRequestBurst)}}
	m.registrations.Add(1)
	m.mu.Lock()
	old := m.nodes[key]
	m.nodes[key] = ns
	m.g.AddNode(key)
	m.applyLinksLocked(ns, h.Links)
	refused := m.importRoutesLocked(key, h.Routes)
	m.replicate(nodeCommand(ns))
	m.mu.Unlock()
	m.refusedRoutes(key, refused)
	if old != nil {
		old.conn.CloseNow() // replaced: no linger before the new link's welcome
	}
	return ns
}

// importRoutesLocked records routes a node reports it is an endpoint of
// (after a manager restart). A report is only a claim until the route's
// other endpoint reports the same ID and hops; then the route is the
// manager's, to be verified once the mesh has re-registered. A claim
// that contradicts a route the manager has, or another claim, changes
// nothing. It returns how many reports were refused: over the reporter's
// max_routes_per_node.
func (m *Manager) importRoutesLocked(key keys.PublicKey, routes []proto.RouteState) (refused int) {
	if m.isFollower() {
		return 0 // the leader holds the routes (and has them from the log)
	}
	now := time.Now()
	for _, rs := range routes {
		if _, ok := m.routes[rs.Route]; ok || len(rs.Hops) < 2 {
			continue
		}
		hops := make([]keys.PublicKey, len(rs.Hops))
		for i, k := range rs.Hops {
			hops[i] = k.PublicKey()
		}
		src, dst := hops[0], hops[len(hops)-1]
		if src == dst || (rs.Initiator && src != key) || (!rs.Initiator && dst != key) {
			continue // not a route this node is the claimed endpoint of
		}
		ck := claimKey{id: rs.Route, hops: hopsKey(hops)}
		c := m.claims[ck]
		switch {
		case c == nil:
			if m.owned[key] >= m.cfg.MaxRoutesPerNode {
				refused++
				continue
			}
			m.claims[ck] = &claim{hops: hops, reporter: key, since: now}
			m.owned[key]++
		case c.reporter == key: // said again
		default: // the other endpoint agrees: the route is real
			m.delClaimLocked(ck)
			if m.owned[src] >= m.cfg.MaxRoutesPerNode {
				refused++
				continue
			}
			r := &route{id: rs.Route, src: src, dst: dst,
				path:    graph.Path{Hops: hops, Per: make([]time.Duration, len(hops)-1)},
				maxHops: m.cfg.HopLimit, verifyAt: c.since.Add(m.verifyDelay)}
			m.addRouteLocked(r)
			if m.cl != nil {
				m.replicate(&cluster.Command{Op: cluster.OpRoutePut, Route: &cluster.Route{ID: r.id, Hops: rs.Hops, MaxHops: r.maxHops}})
			}
		}
	}
	return refused
}

func (m *Manager) refusedRoutes(key keys.PublicKey, refused int) {
	if refused == 0 {
		return
	}
	m.routesRefused.Add(uint64(refused))
	m.logRoutes.warn(m.log, "route import refused: node has too many routes", "node", key.Short(),
		"refused", refused, "max_routes_per_node", m.cfg.MaxRoutesPerNode)
}

func hopsKey(hops []keys.PublicKey) string {
	b := make([]byte, 0, len(hops)*len(keys.PublicKey{}))
	for _, h := range hops {
		b = append(b, h[:]...)
	}
	return string(b)
}

// addRouteLocked adds r; it counts against its initiator's
// max_routes_per_node (so nobody can use up another node's share).
func (m *Manager) addRouteLocked(r *route) {
	m.routes[r.id] = r
	m.owned[r.src]++
}

func (m *Manager) delRouteLocked(id uint64) {
	if r := m.routes[id]; r != nil {
		delete(m.routes, id)
		m.disownLocked(r.src)
	}
}

func (m *Manager) delClaimLocked(ck claimKey) {
	if c := m.claims[ck]; c != nil {
		delete(m.claims, ck)
		m.disownLocked(c.reporter)
	}
}

func (m *Manager) disownLocked(key keys.PublicKey) {
	if m.owned[key]--; m.owned[key] <= 0 {
		delete(m.owned, key)
	}
}

// admitRequest applies the node's route request rate and, for a route
// request, its route cap. It runs on the node's serveConn goroutine.
func (m *Manager) admitRequest(ns *nodeState, route bool) error {
	var err error
	if !ns.requests.Allow(time.Now()) {
		err = fmt.Errorf("rate limited: more than %g requests per second (burst %d)", m.cfg.RouteRequestRate, m.cfg.RouteRequestBurst)
	} else if route {
		m.mu.Lock()
		n := m.owned[ns.key]
		m.mu.Unlock()
		if n >= m.cfg.MaxRoutesPerNode {
			err = fmt.Errorf("too many routes: %d (close some first)", n)
		}
	}
	if err != nil {
		m.requestsRefused.Add(1)
		m.logRequests.warn(m.log, "route request refused", "node", ns.key.Short(), "err", err)
	}
	return err
}

func (m *Manager) deregister(ns *nodeState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.nodes[ns.key] != ns {
		return // replaced by a newer link
	}
	delete(m.nodes, ns.key)
	m.g.RemoveNode(ns.key)
	m.replicate(&cluster.Command{Op: cluster.OpNodeDel, Key: proto.Key(ns.key)})
	// Forget routes none of whose endpoints is registered any more, and
	// the node's claims (it reports them again when it is back).
	for id, r := range m.routes {
		if m.nodes[r.src] == nil && m.nodes[r.dst] == nil {
			m.delRouteLocked(id)
			m.replicate(&cluster.Command{Op: cluster.OpRouteDel, ID: id})
		}
	}
	for ck, c := range m.claims {
		if c.reporter == ns.key {
			m.delClaimLocked(ck)
		}
	}
	m.log.Info("node deregistered", "node", ns.key.Short())
}

// applyLinksLocked replaces ns's reported links and updates the graph. It
// returns the links that went down.
func (m *Manager) applyLinksLocked(ns *nodeState, links []proto.LinkState) (down [][2]keys.PublicKey) {
	set := make(map[keys.PublicKey]time.Duration, len(links))
	for _, l := range links {
		p := l.Peer.PublicKey()
		if p == ns.key {
			continue
		}
		set[p] = min(max(l.RTT, 0), graph.MaxRTT)
	}
	for p := range ns.links {
		if _, ok := set[p]; !ok {
			m.g.RemoveLink(ns.key, p)
			down = append(down, [2]keys.PublicKey{ns.key, p})
		}
	}
	ns.links = set
	for p, rtt := range set {
		if o := m.nodes[p]; o != nil {
			if _, ok := o.links[ns.key]; ok {
				m.g.SetLink(ns.key, p, rtt)
			}
		}
	}
	return down
}

// linksDown repairs the routes that crossed any of the links.
func (m *Manager) linksDown(down [][2]keys.PublicKey) {
	if len(down) == 0 {
		return
	}
	var ids []uint64
	m.mu.Lock()
	for id, r := range m.routes {
		for _, l := range down {
			if r.path.UsesLink(l[0], l[1]) {
				ids = append(ids, id)
				break
			}
		}
	}
	m.mu.Unlock()
	for _, l := range down {
		m.log.Info("link down", "a", l[0].Short(), "b", l[1].Short(), "routes", len(ids))
	}
	m.scheduleRepair(ids...)
}

// scheduleRepair queues routes for repair. At most repair_workers routes
// are repaired at once, whatever the number of routes a peer made the
// manager hold; a route is queued at most once.
func (m *Manager) scheduleRepair(ids ...uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.life.Err() != nil {
		return
	}
	for _, id := range ids {
		if !m.repairQueued[id] {
			m.repairQueued[id] = true
			m.repairQ = append(m.repairQ, id)
		}
	}
	for m.repairWorkers < min(m.cfg.RepairWorkers, len(m.repairQ)) {
		m.repairWorkers++
		m.wg.Go(m.repairWorker)
	}
}

// repairWorker repairs queued routes until the queue is empty or the
// manager stops.
func (m *Manager) repairWorker() {
	for {
		m.mu.Lock()
		if len(m.repairQ) == 0 || m.life.Err() != nil {
			m.repairWorkers--
			if m.life.Err() != nil {
				m.repairQ, m.repairQueued = nil, map[uint64]bool{}
			}
			m.mu.Unlock()
			return
		}
		id := m.repairQ[0]
		m.repairQ = m.repairQ[1:]
		if len(m.repairQ) == 0 {
			m.repairQ = nil // let the backing array go
		}
		delete(m.repairQueued, id)
		m.mu.Unlock()
		m.repair(id)
	}
}

// janitor repairs re-reported routes whose links never came back.
func (m *Manager) janitor(ctx context.Context) {
	t := time.NewTicker(janitorTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			var ids []uint64
			var unconfirmed []*nodeState
			var gone []uint64
			m.mu.Lock()
			m.pruneDirectoryLocked(now)
			for id, r := range m.routes {
				if r.verifyAt.IsZero() || now.Before(r.verifyAt) {
					continue
				}
				switch m.pathStateLocked(r.path) {
				case pathUp:
					r.verifyAt = time.Time{}
				case pathDown:
					r.verifyAt = time.Time{}
					ids = append(ids, id)
				case pathUnknown:
					// A node on it has not registered here (yet): look
					// again at the next tick.
				}
			}
			// A claim the other endpoint did not confirm in time: the
			// route is gone for the reporter — and only for it.
			for ck, c := range m.claims {
				if now.Sub(c.since) < m.verifyDelay {
					continue
				}
				m.delClaimLocked(ck)
				if r := m.routes[ck.id]; r != nil && (r.src == c.reporter || r.dst == c.reporter) {
					continue // an endpoint of the real route; never tear that down
				}
				if ns := m.nodes[c.reporter]; ns != nil {
					unconfirmed, gone = append(unconfirmed, ns), append(gone, ck.id)
				}
			}
			m.mu.Unlock()
			m.scheduleRepair(ids...)
			for i, ns := range unconfirmed {
				m.send(ns.conn, &proto.RouteDown{Route: gone[i], Code: proto.CodeRemoteGone,
					Msg: "the route's other endpoint did not report it"})
			}
		}
	}
}

// pathState is what the manager knows of a route's path.
type pathState int

const (
	pathUp      pathState = iota // every link is in the graph
	pathDown                     // a registered node does not report a link of it
	pathUnknown                  // not all up, but only for want of a node's report
)

// pathStateLocked tells whether p is up, known down, or unknown. A link
// is in the graph only once both its ends have registered and reported
// it, so a missing link is down only when a registered end does not
// report it; a link whose ends that are registered report it is waiting
// for the other end's registration. A manager that has just started to
// lead (it may have been restarted) sees nodes come back one by one, at
// their reconnect backoff: until the relay of a working route is back,
// the route is not known to be down and must not be torn down.
func (m *Manager) pathStateLocked(p graph.Path) pathState {
	st := pathUp
	for i := 0; i+1 < len(p.Hops); i++ {
		a, b := p.Hops[i], p.Hops[i+1]
		if _, ok := m.g.Link(a, b); ok {
			continue
		}
		na, nb := m.nodes[a], m.nodes[b]
		if na != nil && !reports(na, b) || nb != nil && !reports(nb, a) {
			return pathDown
		}
		st = pathUnknown
	}
	return st
}

func reports(ns *nodeState, peer keys.PublicKey) bool {
	_, ok := ns.links[peer]
	return ok
}

func (m *Manager) pathUpLocked(p graph.Path) bool {
	for i := 0; i+1 < len(p.Hops); i++ {
		if _, ok := m.g.Link(p.Hops[i], p.Hops[i+1]); !ok {
			return false
		}
	}
	return true
}

func (m *Manager) shortest(src, dst keys.PublicKey, maxHops int) (graph.Path, error) {
	if maxHops <= 0 || maxHops > m.cfg.HopLimit {
		maxHops = m.cfg.HopLimit
	}
	if src == dst {
		return graph.Path{}, fmt.Errorf("route from %s to itself: %w", src.Short(), errSelf)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.g.ShortestPath(src, dst, maxHops)
	if err != nil {
		return graph.Path{}, fmt.Errorf("route %s -> %s (at most %d hops): %w", src.Short(), dst.Short(), maxHops, err)
	}
	return p, nil
}

var errSelf = errors.New("route to self")

func codeOf(err error) proto.Code {
	switch {
	case err == nil:
		return proto.CodeOK
	case errors.Is(err, graph.ErrNoPath):
		return proto.CodeNoPath
	case errors.Is(err, graph.ErrUnknownNode):
		return proto.CodeUnknownNode
	case errors.Is(err, errSelf):
		return proto.CodeBadRequest
	default:
		return proto.CodeInstallFailed
	}
}

func wirePath(p graph.Path) ([]proto.Key, []time.Duration) {
	hops := make([]proto.Key, len(p.Hops))
	for i, h := range p.Hops {
		hops[i] = proto.Key(h)
	}
	return hops, slices.Clone(p.Per)
}

func (m *Manager) serveRouteRequest(ctx context.Context, ns *nodeState, req *proto.RouteRequest) {
	reply := &proto.RouteReply{Req: req.Req}
	maxHops := int(req.MaxHops)
	id := newRouteID()
	var path graph.Path
	var err error
	// A hop that fails to confirm (it just lost a link, say) gets the route
	// computed again without waiting for its link report.
	for attempt := 0; attempt < installAttempts; attempt++ {
		path, err = m.shortest(ns.key, req.Dst.PublicKey(), maxHops)
		if err != nil {
			break
		}
		if err = m.install(ctx, id, path); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		m.routesFailed.Add(1)
		reply.Code, reply.Msg = codeOf(err), err.Error()
		m.log.Info("route request failed", "src", ns.key.Short(), "dst", req.Dst.PublicKey().Short(), "err", err)
		m.send(ns.conn, reply)
		return
	}
	if maxHops <= 0 || maxHops > m.cfg.HopLimit {
		maxHops = m.cfg.HopLimit
	}
	// A cluster's leader answers only once the route is committed: an
	// acknowledged route survives the loss of the leader. One that cannot
	// be committed (leadership lost, no quorum) fails; its rules expire
	// unused on the hops.
	if err := m.commitRoute(id, path, maxHops); err != nil {
		m.routesFailed.Add(1)
		reply.Code, reply.Leader = clusterErrCode(err)
		reply.Msg = err.Error()
		m.log.Info("route request failed: not committed", "src", ns.key.Short(), "dst", req.Dst.PublicKey().Short(), "err", err)
		m.send(ns.conn, reply)
		return
	}
	r := &route{id: id, src: path.Hops[0], dst: path.Hops[len(path.Hops)-1], path: path, maxHops: maxHops}
	m.mu.Lock()
	m.addRouteLocked(r)
	up := m.pathUpLocked(path)
	m.mu.Unlock()
	reply.Route = id
	reply.Hops, reply.Per = wirePath(path)
	m.log.Info("route installed", "id", id, "src", r.src.Short(), "dst", r.dst.Short(), "links", path.Links(), "latency", path.Latency)
	m.send(ns.conn, reply)
	if !up { // a link died while we installed
		m.scheduleRepair(id)
	}
}

// repair moves route id to a new path, or tells its endpoints it is gone.
func (m *Manager) repair(id uint64) {
	m.mu.Lock()
	r := m.routes[id]
	if r == nil {
		m.mu.Unlock()
		return
	}
	if r.repairing {
		r.again = true
		m.mu.Unlock()
		return
	}
	r.repairing = true
	m.mu.Unlock()

	ctx := m.life
	var err error
	for attempt := 0; attempt < installAttempts; attempt++ {
		var path graph.Path
		path, err = m.shortest(r.src, r.dst, r.maxHops)
		if err == nil {
			err = m.install(ctx, id, path)
		}
		if err == nil {
			if cerr := m.commitRoute(id, path, r.maxHops); cerr != nil {
				// Not the leader any more: the new one repairs it.
				m.log.Info("route repair not committed", "id", id, "err", cerr)
				m.mu.Lock()
				r.repairing = false
				m.mu.Unlock()
				return
			}
		}
		m.mu.Lock()
		if m.routes[id] != r { // closed meanwhile
			m.mu.Unlock()
			return
		}
		if err == nil {
			r.path = path
			r.repairs++
			if r.again && !m.pathUpLocked(path) {
				r.again = false
				m.mu.Unlock()
				continue
			}
			r.again, r.repairing = false, false
			m.mu.Unlock()
			m.repairs.Add(1)
			m.log.Info("route repaired", "id", id, "src", r.src.Short(), "dst", r.dst.Short(), "links", path.Links(), "latency", path.Latency)
			return
		}
		m.mu.Unlock()
		if errors.Is(err, graph.ErrNoPath) || errors.Is(err, graph.ErrUnknownNode) || errors.Is(err, ErrClosed) {
			break
		}
	}
	if m.life.Err() != nil {
		return // shutting down: the routes may well keep working
	}
	m.mu.Lock()
	if m.routes[id] == r {
		m.delRouteLocked(id)
		m.replicate(&cluster.Command{Op: cluster.OpRouteDel, ID: id})
	}
	src, dst := m.nodes[r.src], m.nodes[r.dst]
	m.mu.Unlock()
	m.routesLost.Add(1)
	m.log.Info("route lost", "id", id, "src", r.src.Short(), "dst", r.dst.Short(), "err", err)
	down := &proto.RouteDown{Route: id, Code: codeOf(err), Msg: err.Error()}
	if errors.Is(err, graph.ErrUnknownNode) {
		down.Code = proto.CodeRemoteGone
	}
	for _, ns := range []*nodeState{src, dst} {
		if ns != nil {
			m.send(ns.conn, down)
		}
	}
}

func newRouteID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1 // never 0
}

func newLabel() uint32 {
	var b [4]byte
	for {
		rand.Read(b[:])
		if l := binary.BigEndian.Uint32(b[:]); l != 0 {
			return l
		}
	}
}

// install puts route id on every hop of path in parallel and waits for
// every hop to confirm. It retries with fresh labels if a hop reports a
// label clash.
func (m *Manager) install(ctx context.Context, id uint64, path graph.Path) error {
	var err error
	for attempt := 0; attempt < installAttempts; attempt++ {
		var clash bool
		clash, err = m.installOnce(ctx, id, path)
		if err == nil || !clash {
			break
		}
	}
	if err != nil {
		m.installsFailed.Add(1)
	}
	return err
}

func (m *Manager) installOnce(ctx context.Context, id uint64, path graph.Path) (clash bool, err error) {
	hops := path.Hops
	n := len(hops)
	if n < 2 {
		return false, fmt.Errorf("install route %d: path of %d hops: %w", id, n, ErrInstall)
	}
	fwd, rev := make([]uint32, n-1), make([]uint32, n-1)
	for i := range fwd {
		fwd[i], rev[i] = newLabel(), newLabel()
	}
	wireHops, _ := wirePath(path)
	msgs := make([]*proto.Install, n)
	for i := range hops {
		in := &proto.Install{Route: id} // Req is drawn below
		switch i {
		case 0:
			in.End = &proto.Endpoint{Remote: proto.Key(hops[n-1]), Peer: proto.Key(hops[1]),
				InLabel: rev[0], OutLabel: fwd[0], Initiator: true, Hops: wireHops}
		case n - 1:
			in.End = &proto.Endpoint{Remote: proto.Key(hops[0]), Peer: proto.Key(hops[n-2]),
				InLabel: fwd[n-2], OutLabel: rev[n-2], Hops: wireHops}
		default:
			in.Rules = []proto.Rule{
				{InPeer: proto.Key(hops[i-1]), InLabel: fwd[i-1], OutPeer: proto.Key(hops[i+1]), OutLabel: fwd[i]},
				{InPeer: proto.Key(hops[i+1]), InLabel: rev[i], OutPeer: proto.Key(hops[i-1]), OutLabel: rev[i-1]},
			}
		}
		msgs[i] = in
	}
	chans := make([]chan *proto.InstallAck, n)
	conns := make([]*link.Conn, n)
	m.mu.Lock()
	for i, h := range hops {
		ns := m.nodes[h]
		if ns == nil {
			m.mu.Unlock()
			m.unpend(msgs[:i])
			return false, fmt.Errorf("install route %d: hop %s is not registered: %w", id, h.Short(), ErrInstall)
		}
		conns[i] = ns.conn
		chans[i] = make(chan *proto.InstallAck, 1)
		msgs[i].Req = m.newReqIDLocked()
		m.pending[msgs[i].Req] = &pendingAck{hop: h, ch: chans[i]}
	}
	m.mu.Unlock()
	defer m.unpend(msgs)

	for i := range hops {
		if err := m.send(conns[i], msgs[i]); err != nil {
			return false, fmt.Errorf("install route %d: %w: %w", id, ErrInstall, err)
		}
	}
	timer := time.NewTimer(m.cfg.InstallTimeout)
	defer timer.Stop()
	for i := range hops {
		select {
		case ack := <-chans[i]:
			if ack.Code != proto.CodeOK {
				return ack.Code == proto.CodeLabelInUse, fmt.Errorf("install route %d: hop %s: %s (%s): %w", id, hops[i].Short(), ack.Code, ack.Msg, ErrInstall)
			}
		case <-conns[i].Done():
			return false, fmt.Errorf("install route %d: hop %s went away: %w", id, hops[i].Short(), ErrInstall)
		case <-timer.C:
			return false, fmt.Errorf("install route %d: hop %s did not confirm within %v: %w", id, hops[i].Short(), m.cfg.InstallTimeout, ErrInstall)
		case <-ctx.Done():
			return false, fmt.Errorf("install route %d: %w", id, ErrClosed)
		}
	}
	return false, nil
}

// newReqIDLocked draws a request ID nobody can predict (so an ack cannot
// be prepared for an install not yet seen) that no pending install uses.
func (m *Manager) newReqIDLocked() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if q := binary.BigEndian.Uint64(b[:]); q != 0 && m.pending[q] == nil {
			return q
		}
	}
}

func (m *Manager) unpend(msgs []*proto.Install) {
	m.mu.Lock()
	for _, in := range msgs {
		delete(m.pending, in.Req)
	}
	m.mu.Unlock()
}

func (m *Manager) directoryPage(q *proto.DirectoryQuery) *proto.DirectoryReply {
	limit := int(q.Limit)
	if limit <= 0 || limit > proto.MaxPage {
		limit = proto.MaxPage
	}
	all := m.Nodes()
	reply := &proto.DirectoryReply{Req: q.Req, Total: uint32(len(all))}
	start := min(int(q.Offset), len(all))
	for _, n := range all[start:min(start+limit, len(all))] {
		e := proto.NodeEntry{Key: proto.Key(n.Key), Name: n.Name, Addrs: n.Addrs, Apps: n.Apps, AppsHidden: n.AppsHidden, Since: n.Since.UnixNano()}
		for _, l := range n.Links {
			e.Links = append(e.Links, proto.LinkState{Peer: proto.Key(l.Peer), RTT: l.RTT})
		}
		reply.Nodes = append(reply.Nodes, e)
	}
	// Keep the page within one control message.
	for len(reply.Nodes) > 0 {
		if b, err := proto.Encode(nil, reply); err == nil && len(b) <= proto.MaxControl {
			break
		}
		reply.Nodes = reply.Nodes[:len(reply.Nodes)/2]
	}
	return reply
}

// Nodes returns the directory: every registered node, sorted by key.
func (m *Manager) Nodes() []NodeInfo {
	m.mu.Lock()
	out := make([]NodeInfo, 0, len(m.nodes))
	for _, ns := range m.nodes {
		ni := NodeInfo{Key: ns.key, Name: ns.name, Addrs: slices.Clone(ns.addrs), Apps: slices.Clone(ns.apps), AppsHidden: ns.appsHidden, Since: ns.since}
		for p, rtt := range ns.links {
			_, up := m.g.Link(ns.key, p)
			ni.Links = append(ni.Links, LinkInfo{Peer: p, RTT: rtt, Up: up})
		}
		slices.SortFunc(ni.Links, func(a, b LinkInfo) int { return cmpKey(a.Peer, b.Peer) })
		out = append(out, ni)
	}
	if m.cl != nil {
		// Registrations in the log whose node is not linked to this
		// member (yet): listed without links.
		for _, cn := range m.cl.Nodes() {
			if k := cn.Key.PublicKey(); m.nodes[k] == nil {
				out = append(out, NodeInfo{Key: k, Addrs: cn.Addrs, Apps: cn.Apps, AppsHidden: cn.AppsHidden, Since: time.Unix(0, cn.Since)})
			}
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b NodeInfo) int { return cmpKey(a.Key, b.Key) })
	return out
}

func cmpKey(a, b keys.PublicKey) int {
	for i := range a {
		if c := cmp.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// Routes returns the routes the manager maintains.
func (m *Manager) Routes() []RouteInfo {
	if m.isFollower() {
		var out []RouteInfo
		for _, cr := range m.cl.Routes() {
			ri := RouteInfo{ID: cr.ID, Hops: make([]keys.PublicKey, len(cr.Hops))}
			for i, h := range cr.Hops {
				ri.Hops[i] = h.PublicKey()
			}
			ri.Src, ri.Dst = ri.Hops[0], ri.Hops[len(ri.Hops)-1]
			out = append(out, ri)
		}
		return out
	}
	m.mu.Lock()
	out := make([]RouteInfo, 0, len(m.routes))
	for _, r := range m.routes {
		out = append(out, RouteInfo{ID: r.id, Src: r.src, Dst: r.dst, Hops: slices.Clone(r.path.Hops),
			Latency: r.path.Latency, Repairs: r.repairs})
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b RouteInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Path returns the path the manager would choose from src to dst now.
func (m *Manager) Path(src, dst keys.PublicKey, maxHops int) (graph.Path, error) {
	return m.shortest(src, dst, maxHops)
}

// Stats returns the manager's counters.
func (m *Manager) Stats() Stats {
	return Stats{
		Registrations: m.registrations.Load(), BadMessages: m.badMessages.Load(),
		RouteRequests: m.routeRequests.Load(), RoutesFailed: m.routesFailed.Load(),
		Repairs: m.repairs.Load(), RoutesLost: m.routesLost.Load(), InstallsFailed: m.installsFailed.Load(),
		ForgedAcks: m.forgedAcks.Load(), RoutesRefused: m.routesRefused.Load(), RequestsRefused: m.requestsRefused.Load(),
		HandshakesRefused: m.handshakesRefused.Load(), AcceptErrors: m.acceptErrors.Load(),
		Membership: m.mem.stats(time.Now()),
	}
}

// logLimit logs a warning at most once a second and says how many it
// left out, so a flood cannot flood the log too.
type logLimit struct {
	mu      sync.Mutex
	next    time.Time // guarded by mu
	skipped int       // guarded by mu
}

func (l *logLimit) warn(log *slog.Logger, msg string, args ...any) {
	now := time.Now()
	l.mu.Lock()
	if now.Before(l.next) {
		l.skipped++
		l.mu.Unlock()
		return
	}
	skipped := l.skipped
	l.next, l.skipped = now.Add(time.Second), 0
	l.mu.Unlock()
	if skipped > 0 {
		args = append(args, "suppressed", skipped)
	}
	log.Warn(msg, args...)
}
