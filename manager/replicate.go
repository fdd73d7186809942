package manager

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager/cluster"
	"github.com/skywire-mesh/skywire/manager/graph"
)

// A manager with [manager] cluster is one member of a raft cluster
// (manager/cluster). What it replicates, and what it rebuilds:
//
//   - Routes and their hops go through the log: the leader installs a
//     route on its hops, then commits it, and only then answers the
//     node; a repair commits the new hops, a close or a loss deletes it.
//     A member that becomes leader takes every committed route over and
//     verifies its links against the nodes' reports within
//     link_dead_after, repairing those that broke in the meantime.
//   - Registrations (key, addresses, apps) go through the log, so that
//     the directory survives the loss of a member. Links and RTTs are
//     soft state: every node is linked to every manager and reports them
//     to each, and they change too often to be worth a log entry.
//   - Membership (joined and removed keys, invitations) goes through
//     the log (members.go): the state machine decides a join, and every
//     manager announces a join and evicts a removed key as it applies
//     the entry. A follower forwards these writes to the leader.
//
// Only the leader computes and installs routes; a follower answers a
// route request with CodeNotLeader and the leader's key, or CodeNoQuorum
// when it knows of no leader. Followers answer directory and path queries
// from their own state (a directory reply says it may be stale).

// replicateQueue bounds the registrations and deletions waiting to be
// committed; beyond it they are dropped (and logged): a node re-sends its
// registration with every hello, and a route that outlives its deletion
// is dropped when its endpoints no longer report it.
const replicateQueue = 4096

// clusterErrCode maps a cluster error to the reply code a node acts on.
func clusterErrCode(err error) (proto.Code, *proto.Key) {
	var nle *cluster.NotLeaderError
	if errors.As(err, &nle) && !nle.Key.IsZero() {
		k := proto.Key(nle.Key)
		return proto.CodeNotLeader, &k
	}
	return proto.CodeNoQuorum, nil
}

// leaderCheck returns nil when this manager may install routes (a single
// manager, or the cluster's leader), or the reply to send instead.
func (m *Manager) leaderCheck(req uint64) *proto.RouteReply {
	if m.cl == nil {
		return nil
	}
	err := m.cl.Leader()
	if err == nil {
		return nil
	}
	code, leader := clusterErrCode(err)
	return &proto.RouteReply{Req: req, Code: code, Msg: err.Error(), Leader: leader}
}

// isFollower: a cluster member that does not lead.
func (m *Manager) isFollower() bool { return m.cl != nil && !m.cl.IsLeader() }

// commitRoute replicates r's current path (leader only); nil without a
// cluster.
func (m *Manager) commitRoute(id uint64, p graph.Path, maxHops int) error {
	if m.cl == nil {
		return nil
	}
	r := &cluster.Route{ID: id, MaxHops: maxHops, Hops: make([]proto.Key, len(p.Hops))}
	for i, h := range p.Hops {
		r.Hops[i] = proto.Key(h)
	}
	return m.cl.Apply(&cluster.Command{Op: cluster.OpRoutePut, Route: r})
}

// replicate queues cmd for the log (in order, by one goroutine); only the
// leader's commands are kept.
func (m *Manager) replicate(cmd *cluster.Command) {
	// A manager shutting down deregisters its nodes as their links close
	// and forgets their routes: that is not news for the log (the next
	// leader must take those routes over).
	if m.cl == nil || !m.cl.IsLeader() || m.life.Err() != nil {
		return
	}
	select {
	case m.replQ <- cmd:
	default:
		m.logRepl.warn(m.log, "cluster replication queue full; entry dropped", "op", cmd.Op)
	}
}

// replicator commits queued commands until the manager stops.
func (m *Manager) replicator() {
	for {
		select {
		case cmd := <-m.replQ:
			if m.life.Err() != nil {
				return
			}
			if err := m.cl.Apply(cmd); err != nil && m.life.Err() == nil {
				m.logRepl.warn(m.log, "cluster replication failed", "op", cmd.Op, "err", err)
			}
		case <-m.life.Done():
			return
		}
	}
}

func nodeCommand(ns *nodeState) *cluster.Command {
	return &cluster.Command{Op: cluster.OpNodePut, Node: &cluster.Node{Key: proto.Key(ns.key),
		Addrs: slices.Clone(ns.addrs), Apps: slices.Clone(ns.apps), AppsHidden: ns.appsHidden, Since: ns.since.UnixNano()}}
}

// onLeader follows this member's leadership: a new leader takes over
// every committed route (verified against the live graph once links have
// had time to be reported dead); a member that stops leading forgets
// them, its repairs and claims (the new leader has them).
func (m *Manager) onLeader(leads bool) {
	if leads {
		// Raft tells a new leader before its state machine has applied
		// every entry the old one committed: wait for them, or the route
		// table taken over would miss the last routes.
		if err := m.cl.Barrier(); err != nil {
			m.log.Warn("new leader could not apply the log; not taking over routes", "err", err)
			leads = false
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id := range m.routes {
		m.delRouteLocked(id)
	}
	for ck := range m.claims {
		m.delClaimLocked(ck)
	}
	m.repairQ, m.repairQueued = nil, map[uint64]bool{}
	m.pruneAt = time.Time{}
	if !leads {
		return
	}
	verifyAt := time.Now().Add(m.cfg.LinkDeadAfter)
	// Nodes lost while there was no leader deregistered from nobody who
	// could commit it: once they have had time to link, the registrations
	// of nodes not linked to this leader leave the directory.
	m.pruneAt = verifyAt
	n := 0
	for _, cr := range m.cl.Routes() {
		hops := make([]keys.PublicKey, len(cr.Hops))
		for i, h := range cr.Hops {
			hops[i] = h.PublicKey()
		}
		m.addRouteLocked(&route{id: cr.ID, src: hops[0], dst: hops[len(hops)-1],
			path:    graph.Path{Hops: hops, Per: make([]time.Duration, len(hops)-1)},
			maxHops: cmp0(cr.MaxHops, m.cfg.HopLimit), verifyAt: verifyAt})
		n++
	}
	// Registrations this member holds that the log lacks (nodes that
	// registered during the election, or only with this member).
	for _, ns := range m.nodes {
		if _, ok := m.cl.Node(ns.key); !ok {
			select {
			case m.replQ <- nodeCommand(ns):
			default:
			}
		}
	}
	m.log.Info("leading the manager cluster: took over the committed routes", "routes", n)
}

// importMembers brings into the log the members that joined or were
// removed at this manager before it was in a cluster (its members file;
// it is not written in a cluster, so only what came before): once a
// leader is known, each is submitted (a follower forwards it), a no-op
// for keys the log has. Any member may hold such a file.
func (m *Manager) importMembers() {
	m.mem.mu.Lock()
	var cmds []*cluster.Command
	for k, jm := range m.mem.joined {
		cmds = append(cmds, &cluster.Command{Op: cluster.OpMemberImport, Member: &cluster.Member{Key: proto.Key(k), Since: jm.Since.UnixNano(), Invite: jm.Invite}})
	}
	for k, at := range m.mem.removed {
		cmds = append(cmds, &cluster.Command{Op: cluster.OpMemberImport, Removed: true, Member: &cluster.Member{Key: proto.Key(k), Since: at.UnixNano()}})
	}
	m.mem.mu.Unlock()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for len(cmds) > 0 {
		c := cmds[0]
		joined, removed := m.cl.MemberOf(c.Member.Key.PublicKey())
		err := error(nil)
		if !joined && !removed {
			err = m.cl.Submit(c)
		}
		if err == nil {
			cmds = cmds[1:]
			continue
		}
		m.logRepl.warn(m.log, "members file entry not imported into the cluster yet; retrying", "key", c.Member.Key.PublicKey(), "err", err)
		select {
		case <-t.C:
		case <-m.life.Done():
			return
		}
	}
}

// pruneDirectoryLocked deletes, once pruneAt has passed, the replicated
// registrations of nodes not linked to this leader (a node that comes
// back registers again).
func (m *Manager) pruneDirectoryLocked(now time.Time) {
	if m.pruneAt.IsZero() || now.Before(m.pruneAt) || m.cl == nil {
		return
	}
	m.pruneAt = time.Time{}
	for _, cn := range m.cl.Nodes() {
		if k := cn.Key.PublicKey(); m.nodes[k] == nil {
			m.replicate(&cluster.Command{Op: cluster.OpNodeDel, Key: cn.Key})
			m.log.Info("node not linked to the new leader: dropped from the directory", "node", k.Short())
		}
	}
}

func cmp0(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// ClusterNodes returns the registrations in the replicated log (nil
// without a cluster).
func (m *Manager) ClusterNodes() []cluster.Node {
	if m.cl == nil {
		return nil
	}
	return m.cl.Nodes()
}

// ErrNoCluster: a cluster operation on a manager without [manager] cluster.
var ErrNoCluster = errors.New("this manager is not in a cluster (no [manager] cluster)")

// ClusterStatus is the cluster as this member sees it, with every
// member's log index.
func (m *Manager) ClusterStatus(ctx context.Context) (cluster.Status, error) {
	if m.cl == nil {
		return cluster.Status{}, ErrNoCluster
	}
	return m.cl.Status(ctx)
}

// ClusterAdd adds a member (a follower forwards it to the leader).
func (m *Manager) ClusterAdd(id, raftAddr string, key keys.PublicKey) error {
	if m.cl == nil {
		return ErrNoCluster
	}
	return m.cl.Add(id, raftAddr, key)
}

// ClusterRemove removes a member (a follower forwards it to the leader).
func (m *Manager) ClusterRemove(id string) error {
	if m.cl == nil {
		return ErrNoCluster
	}
	return m.cl.Remove(id)
}

// IsLeader says whether this manager installs routes now: a single
// manager always, a cluster member while it leads.
func (m *Manager) IsLeader() bool { return m.cl == nil || m.cl.IsLeader() }
