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

func (m socksMetrics) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []metric{m.conns, m.connsTotal, m.connsFailed, m.replies, m.bytes} {
		ch <- d.desc
	}
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

type socksClientCollector struct{ c SocksStats }

// SocksClient returns the collector of a socks-client's metrics.
func SocksClient(c SocksStats) prometheus.Collector { return socksClientCollector{c} }

func (c socksClientCollector) Describe(ch chan<- *prometheus.Desc) { socksClientMetrics.describe(ch) }

func (c socksClientCollector) Collect(ch chan<- prometheus.Metric) {
	socksClientMetrics.collect(ch, c.c.Stats())
}

type socksServerCollector struct{ s SocksStats }

// SocksServer returns the collector of a socks-server's metrics.
func SocksServer(s SocksStats) prometheus.Collector { return socksServerCollector{s} }

func (c socksServerCollector) Describe(ch chan<- *prometheus.Desc) {
	socksServerMetrics.describe(ch)
	for _, m := range []metric{socksDestRefused, socksClientConns, socksClientBytes} {
		ch <- m.desc
	}
}

func (c socksServerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	socksServerMetrics.collect(ch, st)
	socksDestRefused.emit(ch, float64(st.Refused), "connect")
	socksDestRefused.emit(ch, float64(st.RefusedDatagrams), "datagram")
	for _, p := range st.Peers {
		socksClientConns.emit(ch, float64(p.Open), p.Peer)
		socksClientBytes.emit(ch, float64(p.Up), p.Peer, "up")
		socksClientBytes.emit(ch, float64(p.Down), p.Peer, "down")
	}
}
