package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skywire-mesh/skywire/manager"
)

type managerCounter = counterOf[manager.Stats]

var (
	mgrInfo    = newMetric("manager", "info", "The manager's identity and admission mode (value 1).", gauge, "key", "admit")
	mgrNodes   = newMetric("manager", "nodes", "Registered nodes.", gauge)
	mgrRoutes  = newMetric("manager", "routes", "Routes the manager maintains.", gauge)
	mgrLinks   = newMetric("manager", "links", "Links between registered nodes, as reported by both ends (each counted once per end).", gauge)
	mgrMembers = newMetric("manager", "members", "Members: listed in the config and joined.", gauge)
	mgrInvites = newMetric("manager", "invites", "Invitations with uses left that have not expired.", gauge)
	mgrRefused = newMetric("manager", "refused_total", "Things refused because a cap or a rule says no, by what.", counter, "what")

	managerCounters = []managerCounter{
		{newMetric("manager", "registrations_total", "Node registrations (hellos accepted).", counter), nil, func(s manager.Stats) uint64 { return s.Registrations }},
		{newMetric("manager", "route_requests_total", "Route requests received.", counter), nil, func(s manager.Stats) uint64 { return s.RouteRequests }},
		{newMetric("manager", "routes_failed_total", "Route requests answered with an error.", counter), nil, func(s manager.Stats) uint64 { return s.RoutesFailed }},
		{newMetric("manager", "routes_repaired_total", "Routes moved to a new path after a link or node went.", counter), nil, func(s manager.Stats) uint64 { return s.Repairs }},
		{newMetric("manager", "routes_lost_total", "Routes that could not be repaired.", counter), nil, func(s manager.Stats) uint64 { return s.RoutesLost }},
		{newMetric("manager", "installs_failed_total", "Install rounds that did not complete.", counter), nil, func(s manager.Stats) uint64 { return s.InstallsFailed }},
		{newMetric("manager", "bad_messages_total", "Node links dropped for malformed or unexpected messages.", counter), nil, func(s manager.Stats) uint64 { return s.BadMessages }},
		{newMetric("manager", "accept_errors_total", "Listener accept errors (such as out of file descriptors), retried.", counter), nil, func(s manager.Stats) uint64 { return s.AcceptErrors }},
		{newMetric("manager", "joined_total", "Keys that joined with an invitation.", counter), nil, func(s manager.Stats) uint64 { return s.Membership.Joined }},
		{newMetric("manager", "evicted_total", "Members removed.", counter), nil, func(s manager.Stats) uint64 { return s.Membership.Evicted }},
		{mgrRefused, []string{"forged_ack"}, func(s manager.Stats) uint64 { return s.ForgedAcks }},
		{mgrRefused, []string{"reported_route"}, func(s manager.Stats) uint64 { return s.RoutesRefused }},
		{mgrRefused, []string{"request"}, func(s manager.Stats) uint64 { return s.RequestsRefused }},
		{mgrRefused, []string{"handshake"}, func(s manager.Stats) uint64 { return s.HandshakesRefused }},
		{mgrRefused, []string{"not_member"}, func(s manager.Stats) uint64 { return s.Membership.Refused }},
		{mgrRefused, []string{"invitation"}, func(s manager.Stats) uint64 { return s.Membership.InvitesRefused }},
	}
)

// Manager returns the collector of m's metrics.
func Manager(m *manager.Manager) prometheus.Collector {
	return collector[manager.Stats]{
		metrics:  []metric{mgrInfo, mgrNodes, mgrRoutes, mgrLinks, mgrMembers, mgrInvites, mgrRefused},
		counters: managerCounters,
		stats:    func() manager.Stats { return m.Stats() },
		collect: func(ch chan<- prometheus.Metric, st manager.Stats) {
			nodes := m.Nodes()
			mgrInfo.emit(ch, 1, m.PublicKey().String(), st.Membership.Admit)
			mgrNodes.emit(ch, float64(len(nodes)))
			links := 0
			for _, n := range nodes {
				links += len(n.Links)
			}
			mgrLinks.emit(ch, float64(links))
			mgrRoutes.emit(ch, float64(len(m.Routes())))
			mgrMembers.emit(ch, float64(st.Membership.Members))
			mgrInvites.emit(ch, float64(st.Membership.Invites))
		},
	}
}
