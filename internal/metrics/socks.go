package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skywire-mesh/skywire/apps/socks"
)

// socksMetrics are the metrics both ends of the SOCKS proxy export, under
// their subsystem ("socks_client" or "socks_server").
type socksMetrics struct {
	conns, connsTotal, connsFailed, replies, bytes metric
}

func newSocksMetrics(sub string) socksMetrics {
	return socksMetrics{
		conns:       newMetric(sub, "connections", "Connections and UDP associations open now (each is one mesh stream).", gauge),
		connsTotal:  newMetric(sub, "connections_total", "Connections accepted.", counter),
		connsFailed: newMetric(sub, "connections_failed_total", "Connections refused or failed before data flowed.", counter),
		replies:     newMetric(sub, "replies_total", "SOCKS replies sent, by reply code.", counter, "reply"),
		bytes:       newMetric(sub, "bytes_total", "Bytes relayed: up from the application towards the target, down back (UDP: datagram payloads).", counter, "direction"),
	}
}

// all is every metric of m.
func (m socksMetrics) all() []metric {
	return []metric{m.conns, m.connsTotal, m.connsFailed, m.replies, m.bytes}
}

func (m socksMetrics) collect(ch chan<- prometheus.Metric, st socks.Stats) {
	m.conns.emit(ch, float64(st.Open))
	m.connsTotal.emit(ch, float64(st.Total))
	m.connsFailed.emit(ch, float64(st.Failed))
	for r := socks.ReplySucceeded; r <= socks.MaxReply; r++ {
		m.replies.emit(ch, float64(st.Replies[r.Label()]), r.Label())
	}
	m.bytes.emit(ch, float64(st.Up), "up")
	m.bytes.emit(ch, float64(st.Down), "down")
}

// SocksStats is a socks-client or socks-server.
type SocksStats interface{ Stats() socks.Stats }

var (
	socksClientMetrics = newSocksMetrics("socks_client")
	socksServerMetrics = newSocksMetrics("socks_server")

	socksDestRefused = newMetric("socks_server", "destinations_refused_total", "Requests refused by the destination policy (allow_destinations, deny_destinations): CONNECTs, and UDP datagrams dropped.", counter, "kind")
	socksClientConns = newMetric("socks_server", "client_connections", "Connections open now, by client node.", gauge, "client")
	socksClientBytes = newMetric("socks_server", "client_bytes_total", "Bytes relayed for a client node (see bytes_total for the directions).", counter, "client", "direction")
)

// SocksClient returns the collector of a socks-client's metrics.
func SocksClient(c SocksStats) prometheus.Collector {
	return collector[socks.Stats]{
		metrics: socksClientMetrics.all(),
		stats:   func() socks.Stats { return c.Stats() },
		collect: socksClientMetrics.collect,
	}
}

// SocksServer returns the collector of a socks-server's metrics.
func SocksServer(s SocksStats) prometheus.Collector {
	return collector[socks.Stats]{
		metrics: append(socksServerMetrics.all(), socksDestRefused, socksClientConns, socksClientBytes),
		stats:   func() socks.Stats { return s.Stats() },
		collect: func(ch chan<- prometheus.Metric, st socks.Stats) {
			socksServerMetrics.collect(ch, st)
			socksDestRefused.emit(ch, float64(st.Refused), "connect")
			socksDestRefused.emit(ch, float64(st.RefusedDatagrams), "datagram")
			for _, p := range st.Peers {
				socksClientConns.emit(ch, float64(p.Open), p.Peer)
				socksClientBytes.emit(ch, float64(p.Up), p.Peer, "up")
				socksClientBytes.emit(ch, float64(p.Down), p.Peer, "down")
			}
		},
	}
}
