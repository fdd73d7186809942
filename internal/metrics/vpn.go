package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skywire-mesh/skywire/apps/vpn"
)

var (
	vpnClientConnected = newMetric("vpn_client", "connected", "Whether the control stream to the server is up (1) or not (0).", gauge)
	vpnClientBytes     = newMetric("vpn_client", "bytes_total", "IP bytes through the tunnel: in from the mesh to the TUN device, out from the device to the mesh.", counter, "direction")
	vpnClientPackets   = newMetric("vpn_client", "packets_total", "IP packets through the tunnel (a super-packet counts its segments).", counter, "direction")
	vpnClientGSO       = newMetric("vpn_client", "gso_datagrams_total", "TCP super-packets that crossed the mesh whole (GSO datagrams).", counter, "direction")
	vpnClientDropped   = newMetric("vpn_client", "dropped_total", "Packets dropped, by reason.", counter, "reason")

	vpnServerClients     = newMetric("vpn_server", "clients", "Clients connected now.", gauge)
	vpnServerKnown       = newMetric("vpn_server", "clients_known", "Clients seen since the server started.", gauge)
	vpnServerConnected   = newMetric("vpn_server", "client_connected", "Whether a client's control stream is up (1) or not (0).", gauge, "client", "addr")
	vpnServerClientBytes = newMetric("vpn_server", "client_bytes_total", "IP bytes of a client: in from the client over the mesh, out to it.", counter, "client", "direction")
	vpnServerClientPkts  = newMetric("vpn_server", "client_packets_total", "IP packets of a client (a super-packet counts its segments).", counter, "client", "direction")
	vpnServerDropped     = newMetric("vpn_server", "dropped_total", "Packets dropped, by reason (the tunnels' and the server's own).", counter, "reason")
	vpnServerDropReasons = append(vpn.DropReasons(), "unknown_client", "no_client", "refused_destination")
	vpnClientDropReasons = vpn.DropReasons()
)

// VPNClientStats is a vpn-client.
type VPNClientStats interface{ Stats() vpn.Stats }

// VPNClient returns the collector of a vpn-client's metrics.
func VPNClient(c VPNClientStats) prometheus.Collector {
	return collector[vpn.Stats]{
		metrics: []metric{vpnClientConnected, vpnClientBytes, vpnClientPackets, vpnClientGSO, vpnClientDropped},
		stats:   func() vpn.Stats { return c.Stats() },
		collect: func(ch chan<- prometheus.Metric, st vpn.Stats) {
			vpnClientConnected.emit(ch, b2f(st.Connected))
			vpnClientBytes.emit(ch, float64(st.BytesIn), "in")
			vpnClientBytes.emit(ch, float64(st.BytesOut), "out")
			vpnClientPackets.emit(ch, float64(st.PacketsIn), "in")
			vpnClientPackets.emit(ch, float64(st.PacketsOut), "out")
			vpnClientGSO.emit(ch, float64(st.GSOIn), "in")
			vpnClientGSO.emit(ch, float64(st.GSOOut), "out")
			for _, r := range vpnClientDropReasons {
				vpnClientDropped.emit(ch, float64(st.Drops[r]), r)
			}
		},
	}
}

// VPNServerStats is a vpn-server.
type VPNServerStats interface {
	Stats() []vpn.Stats
	Drops() map[string]uint64
}

// VPNServer returns the collector of a vpn-server's metrics.
func VPNServer(s VPNServerStats) prometheus.Collector {
	return collector[[]vpn.Stats]{
		metrics: []metric{vpnServerClients, vpnServerKnown, vpnServerConnected, vpnServerClientBytes, vpnServerClientPkts, vpnServerDropped},
		stats:   func() []vpn.Stats { return s.Stats() },
		collect: func(ch chan<- prometheus.Metric, tunnels []vpn.Stats) { collectVPNServer(ch, tunnels, s.Drops()) },
	}
}

// collectVPNServer sends the metrics of the server's tunnels and its
// drops (the tunnels' added in).
func collectVPNServer(ch chan<- prometheus.Metric, tunnels []vpn.Stats, drops map[string]uint64) {
	connected := 0
	for _, st := range tunnels {
		k := st.Key.String()
		if st.Connected {
			connected++
		}
		vpnServerConnected.emit(ch, b2f(st.Connected), k, st.Addr.String())
		vpnServerClientBytes.emit(ch, float64(st.BytesIn), k, "in")
		vpnServerClientBytes.emit(ch, float64(st.BytesOut), k, "out")
		vpnServerClientPkts.emit(ch, float64(st.PacketsIn), k, "in")
		vpnServerClientPkts.emit(ch, float64(st.PacketsOut), k, "out")
		for r, n := range st.Drops {
			drops[r] += n
		}
		drops["refused_destination"] += st.Refused
	}
	vpnServerClients.emit(ch, float64(connected))
	vpnServerKnown.emit(ch, float64(len(tunnels)))
	for _, r := range vpnServerDropReasons {
		vpnServerDropped.emit(ch, float64(drops[r]), r)
	}
}
