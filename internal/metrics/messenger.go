package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skywire-mesh/skywire/messenger"
)

var (
	msgRegistered = newMetric("messenger", "registered", "Whether the messenger is registered with its node (1) or not (0).", gauge)
	msgQueued     = newMetric("messenger", "messages_queued", "Outgoing messages waiting for delivery.", gauge)
	msgStreams    = newMetric("messenger", "streams", "Incoming streams from other messengers open now.", gauge)
	msgDeliveries = newMetric("messenger", "delivery_peers", "Peers with messages being delivered now.", gauge)
	msgRejected   = newMetric("messenger", "messages_rejected_total", "Incoming messages answered with another code than ok, by reason.", counter, "reason")

	messengerCounters = []counterOf[messenger.Stats]{
		{newMetric("messenger", "messages_sent_total", "Messages the user sent (queued for delivery).", counter), nil, func(s messenger.Stats) uint64 { return s.Sent }},
		{newMetric("messenger", "messages_delivered_total", "Outgoing messages the recipient acknowledged.", counter), nil, func(s messenger.Stats) uint64 { return s.Delivered }},
		{newMetric("messenger", "messages_failed_total", "Outgoing messages the recipient refused for good (too large, …).", counter), nil, func(s messenger.Stats) uint64 { return s.Failed }},
		{newMetric("messenger", "delivery_errors_total", "Delivery attempts that failed and will be retried (peer unreachable, deferred).", counter), nil, func(s messenger.Stats) uint64 { return s.DeliveryErrors }},
		{newMetric("messenger", "messages_received_total", "Incoming messages stored.", counter), nil, func(s messenger.Stats) uint64 { return s.Received }},
		{newMetric("messenger", "streams_refused_total", "Incoming streams closed at once for being over the caps.", counter), nil, func(s messenger.Stats) uint64 { return s.StreamsRefused }},
	}
)

// MessengerStats is a running messenger daemon.
type MessengerStats interface{ Stats() messenger.Stats }

// Messenger returns the collector of a messenger daemon's metrics.
func Messenger(d MessengerStats) prometheus.Collector {
	return collector[messenger.Stats]{
		metrics:  []metric{msgRegistered, msgQueued, msgStreams, msgDeliveries, msgRejected},
		counters: messengerCounters,
		stats:    func() messenger.Stats { return d.Stats() },
		collect: func(ch chan<- prometheus.Metric, st messenger.Stats) {
			msgRegistered.emit(ch, b2f(st.Registered))
			msgQueued.emit(ch, float64(st.Queued))
			msgStreams.emit(ch, float64(st.Streams))
			msgDeliveries.emit(ch, float64(st.Deliveries))
			for _, r := range messenger.RejectReasons() {
				msgRejected.emit(ch, float64(st.Rejected[r]), r)
			}
		},
	}
}
