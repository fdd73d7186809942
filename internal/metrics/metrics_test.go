package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/apps/socks"
	"github.com/skywire-mesh/skywire/apps/vpn"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/internal/tstest/promtest"
	"github.com/skywire-mesh/skywire/messenger"
	"github.com/skywire-mesh/skywire/viscript"
	"github.com/skywire-mesh/skywire/viscript/control"
)

// serve serves c's metrics on a free loopback port until the test ends.
func serve(t *testing.T, c prometheus.Collector) *Server {
	t.Helper()
	reg, err := NewRegistry(c)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Listen("127.0.0.1:0", reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// scrape gets addr's /metrics over HTTP and parses it with the Prometheus
// text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := promtest.Scrape(addr)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels
// include want ("" label values match anything), and whether there is one.
var value = promtest.Value

// A live three-node line with its manager, scraped over HTTP as Prometheus
// would: the figures are the node's and manager's own, and move with
// traffic.
func TestNodeAndManagerMetrics(t *testing.T) {
	tstest.CheckLeaks(t)
	m := meshtest.New(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3)})
	m.WaitReady()
	ns := serve(t, Node(m.Nodes[1].Node))
	ms := serve(t, Manager(m.Manager()))

	fams := scrape(t, ns.Addr().String())
	b := m.Nodes[1]
	for _, check := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"skywire_node_info", []string{"key", b.Keys.Public.String()}, 1},
		{"skywire_node_links", nil, 2}, // the middle of the line
		{"skywire_node_manager_registered", []string{"manager", m.Manager().PublicKey().String()}, 1},
		{"skywire_node_link_connections", []string{"peer", m.Nodes[0].Keys.Public.String()}, 1},
	} {
		if v, ok := value(fams, check.name, check.labels...); !ok || v != check.want {
			t.Errorf("%s%v = %v (present %v), want %v", check.name, check.labels, v, ok, check.want)
		}
	}
	if _, ok := value(fams, "go_goroutines"); !ok {
		t.Error("no Go runtime metrics")
	}

	// Traffic through b: a ping from a to c makes b forward.
	before, _ := value(fams, "skywire_node_frames_forwarded_total")
	bytesBefore, _ := value(fams, "skywire_node_link_bytes_total", "peer", m.Nodes[2].Keys.Public.String(), "direction", "out")
	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(30*time.Second))
	defer cancel()
	if _, err := m.Nodes[0].Ping(ctx, m.Nodes[2].Keys.Public); err != nil {
		t.Fatalf("ping a -> c: %v", err)
	}
	tstest.WaitFor(t, "b's forwarded and link-bytes counters to move", func() bool {
		fams = scrape(t, ns.Addr().String())
		fwd, _ := value(fams, "skywire_node_frames_forwarded_total")
		out, _ := value(fams, "skywire_node_link_bytes_total", "peer", m.Nodes[2].Keys.Public.String(), "direction", "out")
		return fwd > before && out > bytesBefore
	})

	mf := scrape(t, ms.Addr().String())
	for _, check := range []struct {
		name string
		want float64
	}{
		{"skywire_manager_nodes", 3},
		{"skywire_manager_links", 4}, // a-b and b-c, reported by both ends
	} {
		if v, ok := value(mf, check.name); !ok || v != check.want {
			t.Errorf("%s = %v (present %v), want %v", check.name, v, ok, check.want)
		}
	}
	if v, ok := value(mf, "skywire_manager_route_requests_total"); !ok || v < 1 {
		t.Errorf("route requests %v (present %v), want at least the one a made", v, ok)
	}
	logScrapeTime(t, "node", ns.Addr().String())
	logScrapeTime(t, "manager", ms.Addr().String())
}

// Stats sources of each app role with a little of everything, so that
// the lint sees every metric with its labels.
type (
	fakeSocks     struct{}
	fakeVPNClient struct{}
	fakeVPNServer struct{}
	fakeMessenger struct{}
	fakeViscript  struct{}
)

func (fakeSocks) Stats() socks.Stats {
	return socks.Stats{Open: 1, Total: 2, Up: 3, Down: 4, Replies: map[string]uint64{"succeeded": 1},
		Peers: []socks.PeerStats{{Peer: "pk:00", Open: 1, Up: 3, Down: 4}}}
}

func (fakeVPNClient) Stats() vpn.Stats {
	return vpn.Stats{Connected: true, BytesIn: 1, BytesOut: 2, PacketsIn: 1, PacketsOut: 1, Drops: map[string]uint64{"malformed": 1}}
}

func (fakeVPNServer) Stats() []vpn.Stats { return []vpn.Stats{fakeVPNClient{}.Stats()} }

func (fakeVPNServer) Drops() map[string]uint64 { return map[string]uint64{"no_client": 1} }

func (fakeMessenger) Stats() messenger.Stats {
	return messenger.Stats{Registered: true, Sent: 1, Queued: 1, Rejected: map[string]uint64{"forged": 1}}
}

func (fakeViscript) List(context.Context) ([]control.AppInfo, error) {
	return []control.AppInfo{{ID: 1, Name: "node", State: control.StateRunning, StartedAt: time.Now(), Restarts: 1}}, nil
}

func (fakeViscript) Stats() viscript.Stats { return viscript.Stats{Launches: 2, PolicyRestarts: 1} }

type fakeApps struct{}

func (fakeApps) Apps() []appserver.AppInfo {
	return []appserver.AppInfo{{Name: "messenger", Port: 7, PID: 42, BytesIn: 10, BytesOut: 20}}
}

// The collectors pass Prometheus's own lint (names, units, help).
func TestMetricsLint(t *testing.T) {
	tstest.CheckLeaks(t)
	m := meshtest.New(t, meshtest.Options{Nodes: 2, Links: meshtest.Line(2)})
	m.WaitReady()
	for name, c := range map[string]prometheus.Collector{
		"node": Node(m.Nodes[0].Node), "manager": Manager(m.Manager()), "node-apps": NodeApps(fakeApps{}),
		"socks-client": SocksClient(fakeSocks{}), "socks-server": SocksServer(fakeSocks{}),
		"vpn-client": VPNClient(fakeVPNClient{}), "vpn-server": VPNServer(fakeVPNServer{}),
		"messenger": Messenger(fakeMessenger{}), "viscript": Viscript(fakeViscript{}),
	} {
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s: %s", name, p.Metric, p.Text)
		}
	}
}

// docs/metrics.md lists exactly the metrics the collectors export.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`(skywire_[a-z_]+)`").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	var exported []string
	ch := make(chan *prometheus.Desc, 256)
	for _, c := range []prometheus.Collector{Node(nil), NodeApps(nil), Manager(nil), SocksClient(nil), SocksServer(nil),
		VPNClient(nil), VPNServer(nil), Messenger(nil), Viscript(nil)} {
		c.Describe(ch)
	}
	close(ch)
	re := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		name := re.FindStringSubmatch(d.String())[1]
		exported = append(exported, name)
		if !documented[name] {
			t.Errorf("%s is exported but not in docs/metrics.md", name)
		}
	}
	for name := range documented {
		if !slices.Contains(exported, name) && !strings.HasPrefix(name, "skywire_example") {
			t.Errorf("docs/metrics.md lists %s, which no collector exports", name)
		}
	}
}

// logScrapeTime logs the median time of 20 whole scrapes of addr (after
// one to warm up): the figure docs/metrics.md quotes. It is a figure, not
// a check: machine speed decides it.
func logScrapeTime(t *testing.T, role, addr string) {
	t.Helper()
	get := func() (time.Duration, int) {
		start := time.Now()
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(start), int(n)
	}
	get()
	var ds []time.Duration
	size := 0
	for range 20 {
		d, n := get()
		ds = append(ds, d)
		size = n
	}
	slices.Sort(ds)
	t.Logf("scrape time %s: median %v, max %v (%d bytes)", role, ds[len(ds)/2].Round(10*time.Microsecond), ds[len(ds)-1].Round(10*time.Microsecond), size)
}
