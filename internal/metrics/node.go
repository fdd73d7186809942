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

// collector is the collector of one role: metrics are what it exports
// besides the unlabelled counters (a labelled counter's family is one of
// them); at each scrape it reads stats once, sends the counters read from
// it, then what collect sends.
type collector[S any] struct {
	metrics  []metric
	counters []counterOf[S]
	stats    func() S
	collect  func(ch chan<- prometheus.Metric, st S)
}

func (c collector[S]) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
	for _, mc := range c.counters {
		if mc.labels == nil {
			ch <- mc.m.desc
		}
	}
}

func (c collector[S]) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	for _, mc := range c.counters {
		mc.m.emit(ch, float64(mc.get(st)), mc.labels...)
	}
	if c.collect != nil {
		c.collect(ch, st)
	}
}

type nodeCounter = counterOf[node.Status]

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
		{newMetric("node", "frames_forwarded_total", "Data frames relayed for routes through this node.", counter), nil, func(s node.Status) uint64 { return s.Counters.Forwarded }},
		{newMetric("node", "frames_delivered_total", "Data frames of routes that end at this node.", counter), nil, func(s node.Status) uint64 { return s.Counters.Delivered }},
		{newMetric("node", "route_installs_total", "Route installs received from managers.", counter), nil, func(s node.Status) uint64 { return s.Counters.Installs }},
		{newMetric("node", "rules_expired_total", "Forwarding rules removed after going unused.", counter), nil, func(s node.Status) uint64 { return s.Counters.RulesExpired }},
		{newMetric("node", "session_handshakes_failed_total", "End-to-end session handshakes that failed.", counter), nil, func(s node.Status) uint64 { return s.Counters.HandshakesFailed }},
		{newMetric("node", "accept_errors_total", "Listener accept errors (such as out of file descriptors), retried.", counter), nil, func(s node.Status) uint64 { return s.Counters.AcceptErrors }},
		{framesDropped, []string{"unknown_label"}, func(s node.Status) uint64 { return s.Counters.UnknownLabel }},
		{framesDropped, []string{"malformed"}, func(s node.Status) uint64 { return s.Counters.Malformed }},
		{framesDropped, []string{"no_link"}, func(s node.Status) uint64 { return s.Counters.NoLink }},
		{refused, []string{"untrusted_control"}, func(s node.Status) uint64 { return s.Counters.Untrusted }},
		{refused, []string{"bad_control"}, func(s node.Status) uint64 { return s.Counters.BadControl }},
		{refused, []string{"link"}, func(s node.Status) uint64 { return s.Counters.LinksRefused }},
		{refused, []string{"bad_handshake_reply"}, func(s node.Status) uint64 { return s.Counters.BadHandshakeReplies }},
		{refused, []string{"bad_handshake"}, func(s node.Status) uint64 { return s.Counters.BadHandshakes }},
		{refused, []string{"handshake_over_cap"}, func(s node.Status) uint64 { return s.Counters.HandshakesDropped }},
		{refused, []string{"session"}, func(s node.Status) uint64 { return s.Counters.SessionsRefused }},
		{refused, []string{"stream"}, func(s node.Status) uint64 { return s.Counters.StreamsRefused }},
		{refused, []string{"ping"}, func(s node.Status) uint64 { return s.Counters.PingsDropped }},
		{refused, []string{"peer"}, func(s node.Status) uint64 { return s.Counters.PeersRefused }},
		{refused, []string{"link_handshake"}, func(s node.Status) uint64 { return s.Counters.LinkHandshakesRefused }},
		{refused, []string{"not_member"}, func(s node.Status) uint64 { return s.Counters.NotMember }},
		{refused, []string{"by_manager"}, func(s node.Status) uint64 { return s.Counters.ManagerRefusals }},
	}
)

// Node returns the collector of n's metrics.
func Node(n *node.Node) prometheus.Collector {
	return collector[node.Status]{
		metrics: []metric{nodeInfo, nodeLinks, nodeRules, nodeEndpoints, nodeSessions, nodeManager, nodeMembers,
			linkRTT, linkConns, linkBytes, linkFrames, linkRejected, framesDropped, refused},
		counters: nodeCounters,
		stats:    func() node.Status { return n.Status() },
		collect: func(ch chan<- prometheus.Metric, st node.Status) {
			nodeInfo.emit(ch, 1, st.Key.String())
			nodeLinks.emit(ch, float64(st.Links))
			nodeRules.emit(ch, float64(st.Rules))
			nodeEndpoints.emit(ch, float64(st.Endpoints))
			nodeSessions.emit(ch, float64(st.Sessions))
			nodeMembers.emit(ch, float64(st.Membership.Members))
			for _, m := range st.Managers {
				nodeManager.emit(ch, b2f(m.Registered), m.Key.String())
			}
			for _, l := range n.Links() {
				peer := l.Peer.String()
				linkRTT.emit(ch, l.RTT.Seconds(), peer)
				linkConns.emit(ch, float64(l.Conns), peer)
				linkBytes.emit(ch, float64(l.Stats.BytesIn), peer, "in")
				linkBytes.emit(ch, float64(l.Stats.BytesOut), peer, "out")
				linkFrames.emit(ch, float64(l.Stats.FramesIn), peer, "in")
				linkFrames.emit(ch, float64(l.Stats.FramesOut), peer, "out")
				linkRejected.emit(ch, float64(l.Stats.Rejected), peer)
			}
		},
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
