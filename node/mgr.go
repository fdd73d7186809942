package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/keys"
)

// mgrConn is the node's link to one configured manager.
type mgrConn struct {
	n    *Node
	peer Peer

	mu      sync.Mutex
	lc      *link.Conn                    // guarded by mu; nil unless registered
	pending map[uint64]chan proto.Message // guarded by mu
	reqID   uint64                        // guarded by mu
	closed  bool                          // guarded by mu
	members mgrMembers                    // guarded by mu
}

// run keeps the node registered with this manager.
func (m *mgrConn) run() {
	n := m.n
	log := n.log.With("manager", m.peer.PublicKey.Short(), "addr", m.peer.Addr)
	n.keepLinked(log, "manager link refused (wrong key?)", "manager unreachable",
		func() (*link.Conn, error) {
			lc, err := n.dialLink(m.peer)
			if err != nil {
				return nil, err
			}
			if err := m.register(lc); err != nil {
				lc.Close()
				if errors.Is(err, ErrNotMember) {
					n.ctr.managerRefused.Add(1)
					log.Warn("manager refused this node", "err", err)
				}
				return nil, err
			}
			return lc, nil
		},
		func(lc *link.Conn) {
			log.Info("registered with manager")
			m.serve(lc)
			log.Info("manager link down", "err", lc.Err())
		})
}

// hello is the node's current registration.
func (n *Node) hello() *proto.Hello {
	hello := &proto.Hello{Version: proto.Version, Addrs: n.cfg.AdvertiseAddrs, Apps: n.apps(),
		Links: n.linkStates(), Routes: n.routeStates(), Join: n.cfg.Join, Name: n.cfg.Name}
	if n.cfg.HideApps {
		hello.Apps, hello.AppsHidden = nil, true
	}
	for len(hello.Routes) > 0 { // keep Hello within one control message
		if _, err := proto.Encode(nil, hello); !errors.Is(err, proto.ErrTooLarge) {
			break
		}
		hello.Routes = hello.Routes[:len(hello.Routes)/2]
	}
	return hello
}

// announce sends the current registration to every manager again (the
// apps changed).
func (n *Node) announce() {
	n.async(func() {
		h := n.hello()
		for _, m := range n.mgrs {
			m.sendIfUp(h)
		}
	})
}

// register sends Hello and waits for Welcome.
func (m *mgrConn) register(lc *link.Conn) error {
	n := m.n
	if err := send(lc, n.hello()); err != nil {
		return err
	}
	timer := time.AfterFunc(n.cfg.RequestTimeout, func() { lc.Close() })
	defer timer.Stop()
	typ, payload, err := lc.Recv()
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if typ != proto.LinkControl {
		return fmt.Errorf("register: unexpected frame type %d from manager", typ)
	}
	msg, err := proto.Decode(payload)
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	w, ok := msg.(*proto.Welcome)
	if !ok {
		return fmt.Errorf("register: manager answered %s, not welcome", msg.Type())
	}
	if w.Code == proto.CodeNotMember || w.Code == proto.CodeBadInvite {
		m.refusedBy(w)
		return fmt.Errorf("register: %w; the manager says: %s", ErrNotMember, w.Msg)
	}
	if w.Code != proto.CodeOK {
		return fmt.Errorf("register: manager refused: %s (%s)", w.Code, w.Msg)
	}
	if !timer.Stop() {
		return fmt.Errorf("register: %w", ErrTimeout)
	}
	m.welcomed(w)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.lc = lc
	n.kickReport() // links that changed while we registered
	n.signalManagerUp()
	return nil
}

// signalManagerUp wakes requests waiting for a manager.
func (n *Node) signalManagerUp() {
	n.mu.Lock()
	close(n.mgrUp)
	n.mgrUp = make(chan struct{})
	n.mu.Unlock()
}

// serve reads the manager link until it dies.
func (m *mgrConn) serve(lc *link.Conn) {
	n := m.n
	stop := context.AfterFunc(n.life, func() { lc.Close() })
	defer stop()
	defer func() {
		lc.Close()
		m.mu.Lock()
		m.lc = nil
		for id, ch := range m.pending {
			close(ch)
			delete(m.pending, id)
		}
		m.mu.Unlock()
	}()
	for {
		typ, payload, err := lc.Recv()
		if err != nil {
			return
		}
		if typ != proto.LinkControl {
			n.ctr.badControl.Add(1)
			n.log.Warn("dropping manager link: unexpected frame type", "type", typ)
			return
		}
		msg, err := proto.Decode(payload)
		if err != nil {
			n.ctr.badControl.Add(1)
			n.log.Warn("dropping manager link: bad message", "err", err)
			return
		}
		switch msg := msg.(type) {
		case *proto.Install:
			code, text := n.installRules(msg)
			if code != proto.CodeOK {
				n.log.Info("route install refused", "route", msg.Route, "code", code, "msg", text)
			}
			send(lc, &proto.InstallAck{Req: msg.Req, Code: code, Msg: text})
		case *proto.RouteDown:
			n.routeDown(msg)
		case *proto.RouteReply:
			m.answer(msg.Req, msg)
		case *proto.PathReply:
			m.answer(msg.Req, msg)
		case *proto.DirectoryReply:
			m.answer(msg.Req, msg)
		case *proto.Members:
			m.handleMembers(msg)
		case *proto.Welcome:
		default:
			n.ctr.badControl.Add(1)
			n.log.Warn("ignoring unexpected message from manager", "type", msg.Type())
		}
	}
}

func (m *mgrConn) answer(req uint64, msg proto.Message) {
	m.mu.Lock()
	ch := m.pending[req]
	delete(m.pending, req)
	m.mu.Unlock()
	if ch != nil {
		ch <- msg // cap 1
	}
}

func (m *mgrConn) close() {
	m.mu.Lock()
	m.closed = true
	lc := m.lc
	m.mu.Unlock()
	if lc != nil {
		lc.Close()
	}
}

func (m *mgrConn) up() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lc != nil
}

func (m *mgrConn) sendIfUp(msg proto.Message) {
	m.mu.Lock()
	lc := m.lc
	m.mu.Unlock()
	if lc != nil {
		send(lc, msg)
	}
}

var (
	errManagerDown  = errors.New("manager link went down")
	errManagerNotUp = errors.New("manager not registered")
)

// request sends a request built by mk (given a request ID) and waits for
// the reply.
func (m *mgrConn) request(ctx context.Context, mk func(req uint64) proto.Message) (proto.Message, error) {
	m.mu.Lock()
	lc := m.lc
	if lc == nil {
		m.mu.Unlock()
		return nil, errManagerNotUp
	}
	m.reqID++
	id := m.reqID
	ch := make(chan proto.Message, 1)
	m.pending[id] = ch
	m.mu.Unlock()
	cleanup := func() {
		m.mu.Lock()
		delete(m.pending, id)
		m.mu.Unlock()
	}
	if err := send(lc, mk(id)); err != nil {
		cleanup()
		return nil, err
	}
	select {
	case msg, ok := <-ch:
		if !ok {
			return nil, errManagerDown
		}
		return msg, nil
	case <-ctx.Done():
		cleanup()
		return nil, ctx.Err()
	}
}

// ask sends a request to the first manager that answers, in config order.
// If none is registered yet (the node just started, or its managers are
// reconnecting), it waits up to RequestTimeout for one.
//
// A manager link that goes down between the wait and the request (it
// was up a moment ago) sends the request back to waiting within the same
// bound, rather than failing at once: nothing was sent, so nothing is
// asked twice.
func (n *Node) ask(ctx context.Context, mk func(req uint64) proto.Message) (proto.Message, error) {
	wait := time.NewTimer(n.cfg.RequestTimeout)
	defer wait.Stop()
	for {
		if err := n.waitManager(ctx, wait.C); err != nil {
			return nil, err
		}
		var errs []error
		for _, m := range n.mgrs {
			if !m.up() {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
			msg, err := m.request(rctx, mk)
			cancel()
			if err == nil {
				return msg, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, errManagerNotUp) {
				continue // went down before the request left: not tried
			}
			errs = append(errs, fmt.Errorf("manager %s: %w", m.peer.PublicKey.Short(), err))
		}
		if len(errs) > 0 {
			return nil, fmt.Errorf("%w: %w", ErrNoManager, errors.Join(errs...))
		}
	}
}

func send(lc *link.Conn, msg proto.Message) error {
	b, err := proto.Encode(nil, msg)
	if err != nil {
		return err
	}
	if err := lc.Send(proto.LinkControl, b); err != nil {
		return fmt.Errorf("send %s: %w", msg.Type(), err)
	}
	return nil
}

// routeStates are the routes this node is an endpoint of, for Hello.
func (n *Node) routeStates() []proto.RouteState {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []proto.RouteState
	for _, ep := range n.endpoints {
		if ep.sess.Load() == nil {
			continue
		}
		ep.mu.Lock()
		hops := make([]proto.Key, len(ep.hops))
		for i, h := range ep.hops {
			hops[i] = proto.Key(h)
		}
		ep.mu.Unlock()
		out = append(out, proto.RouteState{Route: ep.id, Remote: proto.Key(ep.remote), Initiator: ep.initiator, Hops: hops})
	}
	return out
}

// apps are the ports this node listens on, for Hello.
func (n *Node) apps() []proto.App {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []proto.App
	for port, l := range n.listeners {
		out = append(out, proto.App{Name: l.name, Port: port})
	}
	return out
}

// waitManager waits until a manager is registered, or expired fires.
func (n *Node) waitManager(ctx context.Context, expired <-chan time.Time) error {
	for {
		n.mu.Lock()
		ch := n.mgrUp
		n.mu.Unlock()
		for _, m := range n.mgrs {
			if m.up() {
				return nil
			}
		}
		select {
		case <-ch:
		case <-expired:
			return ErrNoManager
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNoManager, ctx.Err())
		case <-n.life.Done():
			return ErrClosed
		}
	}
}

// electionWait is how long a route request waits out a manager cluster
// without a leader (an election takes about a second on a LAN) before it
// fails with ErrNoQuorum.
const electionWait = 5 * time.Second

// askLeader sends a route request to the manager that installs routes.
// With a single manager that is ask. A follower of a manager cluster
// answers CodeNotLeader with the leader's key, and the node asks that
// manager (it links to every one); a member without a leader answers
// CodeNoQuorum, and the node asks again, backing off, for up to
// electionWait: an app sees one slower dial during an election, and an
// error only when the cluster has lost its majority. The last answer is
// returned; the caller maps a leftover redirect to ErrNoQuorum.
func (n *Node) askLeader(ctx context.Context, mk func(req uint64) proto.Message) (proto.Message, error) {
	deadline := time.NewTimer(min(electionWait, n.cfg.RequestTimeout))
	defer deadline.Stop()
	pause := 50 * time.Millisecond
	redirects := 0
	for {
		var msg proto.Message
		var err error
		m := n.leader.Load()
		if m != nil && m.up() {
			rctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
			msg, err = m.request(rctx, mk)
			cancel()
			if err != nil && ctx.Err() == nil {
				n.leader.CompareAndSwap(m, nil) // gone: ask around
				continue
			}
		} else {
			m = nil
			msg, err = n.ask(ctx, mk)
		}
		if err != nil {
			return nil, err
		}
		reply, ok := msg.(*proto.RouteReply)
		if !ok || (reply.Code != proto.CodeNotLeader && reply.Code != proto.CodeNoQuorum) {
			return msg, nil
		}
		if reply.Code == proto.CodeNotLeader && reply.Leader != nil && redirects < len(n.mgrs) {
			if lm := n.mgrByKey(reply.Leader.PublicKey()); lm != nil && lm != m && lm.up() {
				redirects++
				n.leader.Store(lm)
				continue
			}
		}
		n.leader.Store(nil)
		redirects = 0
		select {
		case <-deadline.C:
			return msg, nil
		case <-ctx.Done():
			// The caller's deadline came first (an app's dial, ping's
			// 5 s): its answer is still "no leader", not a timeout.
			return msg, nil
		case <-time.After(pause):
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

// mgrByKey is the configured manager with key k, or nil.
func (n *Node) mgrByKey(k keys.PublicKey) *mgrConn {
	for _, m := range n.mgrs {
		if m.peer.PublicKey == k {
			return m
		}
	}
	return nil
}
