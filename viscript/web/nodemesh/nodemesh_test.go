package nodemesh

import (
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// Links and Apps read the counters out of the node's metrics text;
// series with a label that is not a key, a port or a pid are skipped.
func TestMetricsView(t *testing.T) {
	peer := tstest.KeyPair(t).Public
	text := `# TYPE skywire_node_link_bytes_total counter
skywire_node_link_bytes_total{direction="in",peer="` + peer.String() + `"} 1234
skywire_node_link_bytes_total{direction="out",peer="` + peer.String() + `"} 5678
skywire_node_link_bytes_total{direction="out",peer="pk:nope"} 9
# TYPE skywire_node_link_rtt_seconds gauge
skywire_node_link_rtt_seconds{peer="` + peer.String() + `"} 0.0025
# TYPE skywire_node_app_bytes_total counter
skywire_node_app_bytes_total{app="messenger",direction="in",pid="42",port="7"} 10
skywire_node_app_bytes_total{app="messenger",direction="out",pid="42",port="7"} 20
skywire_node_app_bytes_total{app="bad",direction="out",pid="x",port="70000"} 1
`
	fams, err := ParseMetrics(text)
	if err != nil {
		t.Fatal(err)
	}
	ls := Links(fams)
	if len(ls) != 1 || ls[0].Peer != peer || ls[0].BytesIn != 1234 || ls[0].BytesOut != 5678 || ls[0].RTT != 2500*time.Microsecond {
		t.Errorf("links %+v", ls)
	}
	as := Apps(fams)
	if len(as) != 1 || as[0].Name != "messenger" || as[0].Port != 7 || as[0].PID != 42 || as[0].BytesIn != 10 || as[0].BytesOut != 20 {
		t.Errorf("apps %+v", as)
	}
	if _, err := ParseMetrics("skywire_node_links{"); err == nil {
		t.Error("bad metrics text parsed")
	}
}

// FuzzMetricsView: any text the node's control socket might answer gives
// an error or a view, never a panic.
func FuzzMetricsView(f *testing.F) {
	f.Add("skywire_node_link_bytes_total{direction=\"in\",peer=\"pk:00\"} 1\n")
	f.Add("skywire_node_app_bytes_total{app=\"a\",direction=\"out\",pid=\"1\",port=\"2\"} 3e9\n")
	f.Add("skywire_node_link_rtt_seconds{peer=\"x\"} NaN\n")
	f.Fuzz(func(t *testing.T, text string) {
		fams, err := ParseMetrics(text)
		if err != nil {
			return
		}
		Links(fams)
		Apps(fams)
	})
}
