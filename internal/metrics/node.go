package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skywire-mesh/skywire/node"
)

var (
	gauge   = prometheus.GaugeValue
	counter = prometheus.CounterValue
)

// counterOf is one counter of a role's counters S, exported as a
// Prometheus counter (with labels, for families such as dropped frames by
// reason).
type counterOf[S any] struct {
	m      metric
	labels []string
	get    func(S) uint64
}

type nodeCounter = counterOf[node.Counters]

var (
	nodeInfo      = newMetric("node", "info", "The node's identity (value 1).", gauge, "key")
	nodeLinks     = newMetric("node", "links", "Peers with at least one live link.", gauge)
	nodeRules     = newMetric("node", "rules", "Forwarding rules installed (routes this node relays or ends).", gauge)
	nodeEndpoints = newMetric("node", "route_endpoints", "Routes that start or end at this node.", gauge)
	nodeSessions  = newMetric("node", "sessions", "Live end-to-end sessions.", gauge)
	nodeManager   = newMetric("node", "manager_registered", "Whether the node is registered with the manager (1) or not (0).", gauge, "manager")
	nodeMembers   = newMetric("node", "members_known", "Members of the mesh the node knows of (largest set any manager sent).", gauge)

	linkRTT      = newMetric("node", "link_rtt_seconds", "Smoothed round-trip time of the link in use to a peer.", gauge, "peer")
	linkConns    = newMetric("node", "link_connections", "Live link connections to a peer (both ends may have dialled).", gauge, "peer")
	linkBytes    = newMetric("node", "link_bytes_total", "Wire bytes of frames on the link in use to a peer.", counter, "peer", "direction")
	linkFrames   = newMetric("node", "link_frames_total", "Frames on the link in use to a peer, keepalives included.", counter, "peer", "direction")
	linkRejected = newMetric("node", "link_frames_rejected_total", "Frames that closed the link in use to a peer as malformed, forged or oversized.", counter, "peer")

	framesDropped = newMetric("node", "frames_dropped_total", "Frames dropped, by reason.", counter, "reason")
	refused       = newMetric("node", "refused_total", "Things refused to a peer or app because a cap or a rule says no, by what.", counter, "what")

	nodeCounters = []nodeCounter{
		{newMetric("node", "frames_forwarded_total", "Data frames relayed for routes through this node.", counter), nil, func(c node.Counters) uint64 { return c.Forwarded }},
		{newMetric("node", "frames_delivered_total", "Data frames of routes that end at this node.", counter), nil, func(c node.Counters) uint64 { return c.Delivered }},
		{newMetric("node", "route_installs_total", "Route installs received from managers.", counter), nil, func(c node.Counters) uint64 { return c.Installs }},
		{newMetric("node", "rules_expired_total", "Forwarding rules removed after going unused.", counter), nil, func(c node.Counters) uint64 { return c.RulesExpired }},
		{newMetric("node", "session_handshakes_failed_total", "End-to-end session handshakes that failed.", counter), nil, func(c node.Counters) uint64 { return c.HandshakesFailed }},
		{newMetric("node", "accept_errors_total", "Listener accept errors (such as out of file descriptors), retried.", counter), nil, func(c node.Counters) uint64 { return c.AcceptErrors }},
		{framesDropped, []string{"unknown_label"}, func(c node.Counters) uint64 { return c.UnknownLabel }},
		{framesDropped, []string{"malformed"}, func(c node.Counters) uint64 { return c.Malformed }},
		{framesDropped, []string{"no_link"}, func(c node.Counters) uint64 { return c.NoLink }},
		{refused, []string{"untrusted_control"}, func(c node.Counters) uint64 { return c.Untrusted }},
		{refused, []string{"bad_control"}, func(c node.Counters) uint64 { return c.BadControl }},
		{refused, []string{"link"}, func(c node.Counters) uint64 { return c.LinksRefused }},
		{refused, []string{"bad_handshake_reply"}, func(c node.Counters) uint64 { return c.BadHandshakeReplies }},
		{refused, []string{"bad_handshake"}, func(c node.Counters) uint64 { return c.BadHandshakes }},
		{refused, []string{"handshake_over_cap"}, func(c node.Counters) uint64 { return c.HandshakesDropped }},
		{refused, []string{"session"}, func(c node.Counters) uint64 { return c.SessionsRefused }},
		{refused, []string{"stream"}, func(c node.Counters) uint64 { return c.StreamsRefused }},
		{refused, []string{"ping"}, func(c node.Counters) uint64 { return c.PingsDropped }},
		{refused, []string{"peer"}, func(c node.Counters) uint64 { return c.PeersRefused }},
		{refused, []string{"link_handshake"}, func(c node.Counters) uint64 { return c.LinkHandshakesRefused }},
		{refused, []string{"not_member"}, func(c node.Counters) uint64 { return c.NotMember }},
		{refused, []string{"by_manager"}, func(c node.Counters) uint64 { return c.ManagerRefusals }},
	}
)

// nodeCollector exports a node's state and counters.
type nodeCollector struct{ n *node.Node }

// Node returns the collector of n's metrics.
func Node(n *node.Node) prometheus.Collector { return nodeCollector{n} }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range []metric{nodeInfo, nodeLinks, nodeRules, nodeEndpoints, nodeSessions, nodeManager, nodeMembers,
		linkRTT, linkConns, linkBytes, linkFrames, linkRejected, framesDropped, refused} {
		ch <- m.desc
	}
	for _, nc := range nodeCounters {
		if nc.labels == nil {
			ch <- nc.m.desc
		}
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.Status()
	nodeInfo.emit(ch, 1, st.Key.String())
	nodeLinks.emit(ch, float64(st.Links))
	nodeRules.emit(ch, float64(st.Rules))
	nodeEndpoints.emit(ch, float64(st.Endpoints))
	nodeSessions.emit(ch, float64(st.Sessions))
	nodeMembers.emit(ch, float64(st.Membership.Members))
	for _, m := range st.Managers {
		nodeManager.emit(ch, b2f(m.Registered), m.Key.String())
	}
	for _, nc := range nodeCounters {
		nc.m.emit(ch, float64(nc.get(st.Counters)), nc.labels...)
	}
	for _, l := range c.n.Links() {
		peer := l.Peer.String()
		linkRTT.emit(ch, l.RTT.Seconds(), peer)
		linkConns.emit(ch, float64(l.Conns), peer)
		linkBytes.emit(ch, float64(l.Stats.BytesIn), peer, "in")
		linkBytes.emit(ch, float64(l.Stats.BytesOut), peer, "out")
		linkFrames.emit(ch, float64(l.Stats.FramesIn), peer, "in")
		linkFrames.emit(ch, float64(l.Stats.FramesOut), peer, "out")
		linkRejected.emit(ch, float64(l.Stats.Rejected), peer)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
