package node

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/keys"
)

// peer is a neighbour: its live links and the rules for frames it sends.
type peer struct {
	key keys.PublicKey

	mu    sync.RWMutex
	links []*link.Conn     // guarded by mu; the newest is used for sending
	rules map[uint32]*rule // guarded by mu; by incoming label
}

// current returns the link to send on, or nil.
func (p *peer) current() *link.Conn {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if len(p.links) == 0 {
		return nil
	}
	return p.links[len(p.links)-1]
}

// rule is one forwarding entry: frames from a peer with a label go to out
// with outLabel, or, for an endpoint, to ep.
type rule struct {
	route    uint64
	out      *peer
	outLabel uint32
	ep       *endpoint
	lastUsed atomic.Int64 // coarse Unix ns
}

// endpoint is a route this node is an end of.
type endpoint struct {
	id        uint64
	remote    keys.PublicKey
	initiator bool
	created   time.Time

	mu       sync.Mutex
	out      *peer            // guarded by mu
	outLabel uint32           // guarded by mu
	inPeer   *peer            // guarded by mu
	inLabel  uint32           // guarded by mu
	hops     []keys.PublicKey // guarded by mu
	downErr  error            // guarded by mu; set when the manager gave up on the route
	sess     atomic.Pointer[remoteSess]
	hs       chan []byte // handshake msg2 for the initiator, cap hsQueue
	hsMu     sync.Mutex  // serialises the responder's handshakes
	hsBusy   atomic.Bool // a responder handshake is queued or running

	lastSent atomic.Int64 // coarse Unix ns of the last frame sent
}

func (ep *endpoint) next() (*peer, uint32) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.out, ep.outLabel
}

func (ep *endpoint) err() error {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.downErr
}

// hsQueue is how many handshake replies wait for the initiator: forged
// replies arriving just before the genuine one do not push it out.
const hsQueue = 4

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, dataFrameHeadroom+64<<10); return &b }}

// dataFrameHeadroom is what a data frame puts in front of its payload as
// a link frame body: the link frame type, then the data header.
const dataFrameHeadroom = 1 + proto.DataHeaderLen

// sendOnRoute sends one data frame of the given kind down the route.
func (n *Node) sendOnRoute(ep *endpoint, kind proto.Kind, payload []byte) error {
	bp := framePool.Get().(*[]byte)
	b := append(append((*bp)[:0], make([]byte, dataFrameHeadroom)...), payload...)
	err := n.sendFramed(ep, kind, b)
	*bp = b[:0]
	framePool.Put(bp)
	return err
}

// sendFramed sends buf[dataFrameHeadroom:] as a data frame of the given
// kind down the route, writing the link frame type and the data header
// into buf[:dataFrameHeadroom].
func (n *Node) sendFramed(ep *endpoint, kind proto.Kind, buf []byte) error {
	out, label := ep.next()
	if out == nil {
		return fmt.Errorf("send on route %d: %w", ep.id, ErrNoRoute)
	}
	lc := out.current()
	if lc == nil {
		n.ctr.noLink.Add(1)
		return fmt.Errorf("send on route %d: no link to %s", ep.id, out.key.Short())
	}
	buf[0] = proto.LinkData
	proto.PutDataHeader(buf[1:], label, kind)
	err := lc.SendFrame(buf)
	ep.lastSent.Store(n.now.Load())
	return err
}

// handleData is the data plane: one lookup for (peer, label), then either a
// label rewrite and send on the next link, or local delivery. body is the
// link frame's body: the type byte (LinkData), then the data frame.
func (n *Node) handleData(from *peer, body []byte) {
	frame := body[1:]
	label, ok := proto.Label(frame)
	if !ok {
		n.ctr.malformed.Add(1)
		n.log.Debug("dropping short data frame", "peer", from.key.Short(), "len", len(frame))
		return
	}
	from.mu.RLock()
	r := from.rules[label]
	from.mu.RUnlock()
	if r == nil {
		n.ctr.unknownLabel.Add(1)
		n.log.Debug("dropping frame for unknown label", "peer", from.key.Short(), "label", label)
		return
	}
	r.lastUsed.Store(n.now.Load())
	if r.ep != nil {
		n.deliver(r.ep, frame)
		return
	}
	lc := r.out.current()
	if lc == nil {
		n.ctr.noLink.Add(1)
		return
	}
	proto.SetLabel(frame, r.outLabel)
	if lc.SendFrame(body) == nil {
		n.ctr.forwarded.Add(1)
	}
}

// installError is an Install the node refuses; code and msg are what the
// manager gets in the InstallAck.
type installError struct {
	code proto.Code
	msg  string
}

func (e *installError) Error() string { return fmt.Sprintf("install: %s: %s", e.code, e.msg) }

func refuseInstall(code proto.Code, format string, args ...any) *installError {
	return &installError{code: code, msg: fmt.Sprintf(format, args...)}
}

// installRules handles an Install from a trusted manager and returns the
// code and message of the InstallAck to send back.
func (n *Node) installRules(in *proto.Install) (proto.Code, string) {
	n.ctr.installs.Add(1)
	if k, bad := n.installNamesNonMember(in); bad {
		n.refusePeer(k, "route install refused")
		return proto.CodeNotMember, fmt.Sprintf("%s is not a member of this mesh", k.Short())
	}
	err := n.install(in)
	if err == nil {
		return proto.CodeOK, ""
	}
	if ie, ok := errors.AsType[*installError](err); ok {
		return ie.code, ie.msg
	}
	return proto.CodeInstallFailed, err.Error() // every refusal is an installError today

}

// installPlan is an Install resolved against the node's peers: the rules to
// add and, where the node is an end of the route, its new path.
type installPlan struct {
	route uint64
	rules []plannedRule
	end   *plannedEnd // nil on a relay
}

// plannedRule is a rule to add to in's rules under label.
type plannedRule struct {
	in    *peer
	label uint32
	r     *rule
}

// plannedEnd is where an endpoint's route runs after the install: frames go
// out to and come in from peer (the neighbour on the route).
type plannedEnd struct {
	ep                *endpoint
	peer              *peer
	inLabel, outLabel uint32
	hops              []keys.PublicKey
}

// install applies in all or nothing: plan it against the peers, check
// every incoming label is free, then commit.
func (n *Node) install(in *proto.Install) error {
	for _, r := range in.Rules {
		if r.InLabel == 0 || r.OutLabel == 0 {
			return refuseInstall(proto.CodeBadRequest, "label 0 is reserved")
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	plan, err := n.planInstallLocked(in)
	if err != nil {
		return err
	}
	if err := plan.checkLabels(); err != nil {
		return err
	}
	n.commitInstallLocked(plan)
	return nil
}

// planInstallLocked resolves in's peers and endpoint; it changes nothing.
func (n *Node) planInstallLocked(in *proto.Install) (*installPlan, error) {
	now := n.now.Load()
	plan := &installPlan{route: in.Route}
	for _, r := range in.Rules {
		inP, outP := n.peers[r.InPeer.PublicKey()], n.peers[r.OutPeer.PublicKey()]
		if inP == nil || outP == nil || outP.current() == nil {
			return nil, refuseInstall(proto.CodeNoLink, "no link to %s or %s", r.InPeer.PublicKey().Short(), r.OutPeer.PublicKey().Short())
		}
		nr := &rule{route: in.Route, out: outP, outLabel: r.OutLabel}
		nr.lastUsed.Store(now)
		plan.rules = append(plan.rules, plannedRule{inP, r.InLabel, nr})
	}
	e := in.End
	if e == nil {
		return plan, nil
	}
	if e.InLabel == 0 || e.OutLabel == 0 {
		return nil, refuseInstall(proto.CodeBadRequest, "label 0 is reserved")
	}
	p := n.peers[e.Peer.PublicKey()]
	if p == nil || p.current() == nil {
		return nil, refuseInstall(proto.CodeNoLink, "no link to %s", e.Peer.PublicKey().Short())
	}
	ep := n.endpoints[in.Route]
	if ep == nil {
		ep = &endpoint{id: in.Route, remote: e.Remote.PublicKey(), initiator: e.Initiator, created: time.Now(), hs: make(chan []byte, hsQueue)}
	} else if ep.remote != e.Remote.PublicKey() || ep.initiator != e.Initiator {
		return nil, refuseInstall(proto.CodeBadRequest, "route %d exists with another remote", in.Route)
	}
	nr := &rule{route: in.Route, ep: ep}
	nr.lastUsed.Store(now)
	plan.rules = append(plan.rules, plannedRule{p, e.InLabel, nr})
	hops := make([]keys.PublicKey, len(e.Hops))
	for i, h := range e.Hops {
		hops[i] = h.PublicKey()
	}
	plan.end = &plannedEnd{ep: ep, peer: p, inLabel: e.InLabel, outLabel: e.OutLabel, hops: hops}
	return plan, nil
}

// checkLabels refuses the plan if an incoming label it needs belongs to
// another route.
func (plan *installPlan) checkLabels() error {
	for _, pl := range plan.rules {
		pl.in.mu.RLock()
		old := pl.in.rules[pl.label]
		pl.in.mu.RUnlock()
		if old != nil && old.route != plan.route {
			return refuseInstall(proto.CodeLabelInUse, "label %d from %s is in use", pl.label, pl.in.key.Short())
		}
	}
	return nil
}

// commitInstallLocked adds the planned rules and moves the endpoint (and
// its session) to the new path.
func (n *Node) commitInstallLocked(plan *installPlan) {
	for _, pl := range plan.rules {
		pl.in.mu.Lock()
		pl.in.rules[pl.label] = pl.r
		pl.in.mu.Unlock()
	}
	end := plan.end
	if end == nil {
		return
	}
	ep := end.ep
	ep.mu.Lock()
	repair := ep.out != nil
	ep.out, ep.outLabel, ep.inPeer, ep.inLabel, ep.hops = end.peer, end.outLabel, end.peer, end.inLabel, end.hops
	ep.downErr = nil
	ep.mu.Unlock()
	ep.lastSent.Store(0) // send a keepalive soon on the new path
	n.endpoints[plan.route] = ep
	if rs := ep.sess.Load(); repair && rs != nil {
		n.log.Info("route moved to a new path", "route", plan.route, "remote", ep.remote.Short(), "hops", len(end.hops)-1)
		rs.s.SetPath(routePath{n, ep})
	}
}

// routeDown handles a RouteDown from a manager: the route is gone for good.
func (n *Node) routeDown(d *proto.RouteDown) {
	n.dropRouteRules(d.Route) // as a relay of the route
	n.mu.Lock()
	ep := n.endpoints[d.Route]
	n.mu.Unlock()
	if ep == nil {
		return
	}
	rs := ep.sess.Load()
	ep.mu.Lock()
	ep.downErr = fmt.Errorf("%w: route %d to %s broke and no other path exists (%s: %s)", ErrNoRoute, d.Route, ep.remote.Short(), d.Code, d.Msg)
	ep.mu.Unlock()
	n.log.Info("route down", "route", d.Route, "remote", ep.remote.Short(), "code", d.Code)
	if rs != nil {
		n.async(func() { rs.s.Close() }) // Close may wait on a busy link; not on the manager's reader
	} else {
		n.removeEndpoint(ep)
	}
}

// removeEndpoint forgets ep and its incoming rule, and tells the managers.
func (n *Node) removeEndpoint(ep *endpoint) {
	n.mu.Lock()
	if n.endpoints[ep.id] == ep {
		delete(n.endpoints, ep.id)
	}
	n.mu.Unlock()
	ep.mu.Lock()
	inP, inL := ep.inPeer, ep.inLabel
	ep.mu.Unlock()
	if inP != nil {
		inP.mu.Lock()
		if r := inP.rules[inL]; r != nil && r.ep == ep {
			delete(inP.rules, inL)
		}
		inP.mu.Unlock()
		n.forgetIfIdle(inP)
	}
	for _, m := range n.mgrs {
		m.sendIfUp(&proto.RouteClosed{Route: ep.id})
	}
}

// janitor advances the coarse clock, expires idle rules, sends route
// keepalives, and drops endpoints that never got a session.
func (n *Node) janitor() {
	tick := min(n.cfg.RouteKeepalive/4, time.Second)
	tick = max(tick, 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-n.life.Done():
			return
		case now := <-t.C:
			n.now.Store(now.UnixNano())
			n.expireRules(now)
			n.keepalives(now)
		}
	}
}

func (n *Node) expireRules(now time.Time) {
	cutoff := now.Add(-n.cfg.RuleIdle).UnixNano()
	ps := n.peerList()
	var emptied []*peer
	for _, p := range ps {
		p.mu.Lock()
		for label, r := range p.rules {
			// An endpoint's rule lives as long as its session, which has
			// its own idle timeout and keepalives: a far end that is slow
			// to send (a loaded machine, a repair that reaches it late)
			// must not leave a live session without its way in.
			if r.ep != nil && r.ep.sess.Load() != nil {
				continue
			}
			if r.lastUsed.Load() < cutoff {
				delete(p.rules, label)
				n.ctr.rulesExpired.Add(1)
				n.log.Debug("rule expired", "route", r.route, "peer", p.key.Short(), "label", label)
			}
		}
		if len(p.rules) == 0 && len(p.links) == 0 {
			emptied = append(emptied, p)
		}
		p.mu.Unlock()
	}
	for _, p := range emptied {
		n.forgetIfIdle(p) // takes n.mu, which is taken before p.mu
	}
}

func (n *Node) keepalives(now time.Time) {
	due := now.Add(-n.cfg.RouteKeepalive).UnixNano()
	stale := now.Add(-2 * n.cfg.RequestTimeout)
	var send, drop []*endpoint
	n.mu.Lock()
	for _, ep := range n.endpoints {
		switch {
		case ep.sess.Load() == nil && ep.created.Before(stale):
			drop = append(drop, ep)
		case ep.lastSent.Load() < due:
			send = append(send, ep)
		}
	}
	n.mu.Unlock()
	for _, ep := range send {
		n.sendOnRoute(ep, proto.KindKeepalive, nil)
	}
	for _, ep := range drop {
		n.removeEndpoint(ep)
	}
}

// RuleCount returns the number of forwarding rules (relay and endpoint).
func (n *Node) ruleCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, p := range n.peers {
		p.mu.RLock()
		c += len(p.rules)
		p.mu.RUnlock()
	}
	return c
}
