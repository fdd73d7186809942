package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/skywire-mesh/skywire/appnet/appserver"
)

type appList []appserver.AppInfo

func (l appList) Apps() []appserver.AppInfo { return l }

// The app socket's metrics: one series per app and direction, two
// registrations with the same name, port and process summed, and the
// count of registrations; none without an app server.
func TestNodeAppsMetrics(t *testing.T) {
	c := NodeApps(appList{
		{Name: "messenger", Port: 7, PID: 42, BytesIn: 10, BytesOut: 20},
		{Name: "socks-client", PID: 43, BytesIn: 1, BytesOut: 2},
		{Name: "socks-client", PID: 43, BytesIn: 100, BytesOut: 200},
	})
	want := `# HELP skywire_node_app_bytes_total Stream and datagram bytes of an app registered on the node's app socket (in: delivered to the app).
# TYPE skywire_node_app_bytes_total counter
skywire_node_app_bytes_total{app="messenger",direction="in",pid="42",port="7"} 10
skywire_node_app_bytes_total{app="messenger",direction="out",pid="42",port="7"} 20
skywire_node_app_bytes_total{app="socks-client",direction="in",pid="43",port="0"} 101
skywire_node_app_bytes_total{app="socks-client",direction="out",pid="43",port="0"} 202
# HELP skywire_node_apps Apps registered on the node's app socket.
# TYPE skywire_node_apps gauge
skywire_node_apps 3
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(NodeApps(nil), strings.NewReader("# HELP skywire_node_apps Apps registered on the node's app socket.\n# TYPE skywire_node_apps gauge\nskywire_node_apps 0\n")); err != nil {
		t.Error(err)
	}
}
