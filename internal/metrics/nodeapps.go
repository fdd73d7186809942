package metrics

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/node"
)

var (
	nodeAppsRegistered = newMetric("node", "apps", "Apps registered on the node's app socket.", gauge)
	nodeAppBytes       = newMetric("node", "app_bytes_total", "Stream and datagram bytes of an app registered on the node's app socket (in: delivered to the app).", counter, "app", "port", "pid", "direction")
)

// AppLister lists the apps registered on a node's app socket;
// *appserver.Server implements it.
type AppLister interface {
	Apps() []appserver.AppInfo
}

type nodeAppsCollector struct{ s AppLister }

// NodeApps returns the collector of the per-app traffic of a node's app
// socket (nil: none registered).
func NodeApps(s AppLister) prometheus.Collector { return nodeAppsCollector{s} }

func (c nodeAppsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- nodeAppsRegistered.desc
	ch <- nodeAppBytes.desc
}

func (c nodeAppsCollector) Collect(ch chan<- prometheus.Metric) {
	var apps []appserver.AppInfo
	if c.s != nil {
		apps = c.s.Apps()
	}
	nodeAppsRegistered.emit(ch, float64(len(apps)))
	// Registrations that share name, port and process (an app that
	// registered twice) are one series: their sum.
	type id struct {
		name      string
		port, pid int
	}
	sums := map[id][2]uint64{}
	var order []id
	for _, a := range apps {
		k := id{a.Name, int(a.Port), a.PID}
		s, ok := sums[k]
		if !ok {
			order = append(order, k)
		}
		sums[k] = [2]uint64{s[0] + a.BytesIn, s[1] + a.BytesOut}
	}
	for _, k := range order {
		port, pid := strconv.Itoa(k.port), strconv.Itoa(k.pid)
		nodeAppBytes.emit(ch, float64(sums[k][0]), k.name, port, pid, "in")
		nodeAppBytes.emit(ch, float64(sums[k][1]), k.name, port, pid, "out")
	}
}

// NodeRegistry is the registry of a node's metrics: the node's, its app
// socket's (apps may be nil), the Go runtime's and the process's. The node
// role serves it on [node] metrics and, on its control socket, to the
// dashboard, whose link and app charts are these counters.
func NodeRegistry(n *node.Node, apps AppLister) (*prometheus.Registry, error) {
	return NewRegistry(Node(n), NodeApps(apps))
}

// Text returns g's metrics in the Prometheus text format, as GET /metrics
// answers them.
func Text(g prometheus.Gatherer) (string, error) {
	mfs, err := g.Gather()
	if err != nil && len(mfs) == 0 {
		return "", fmt.Errorf("metrics: %w", err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return "", fmt.Errorf("metrics: %w", err)
		}
	}
	return b.String(), nil
}
