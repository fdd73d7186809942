package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/metrics"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/node/nodeapp"
	"github.com/skywire-mesh/skywire/viscript/control"
	"github.com/skywire-mesh/skywire/viscript/control/controltest"
	"github.com/skywire-mesh/skywire/viscript/web"
	"github.com/skywire-mesh/skywire/viscript/web/nodemesh"
)

// chartState is the part of a dashboard sample this test reads.
type chartState struct {
	At         int64 `json:"at"`
	LocalLinks []struct {
		Peer     string  `json:"peer"`
		InBps    float64 `json:"in_bps"`
		OutBps   float64 `json:"out_bps"`
		BytesIn  uint64  `json:"bytes_in"`
		BytesOut uint64  `json:"bytes_out"`
		Series   string  `json:"series"`
	} `json:"local_links"`
	Apps map[string]struct {
		Apps []struct {
			Pid    int    `json:"pid"`
			Series string `json:"series"`
			Mesh   *struct {
				Port     uint16  `json:"port"`
				InBps    float64 `json:"in_bps"`
				OutBps   float64 `json:"out_bps"`
				BytesIn  uint64  `json:"bytes_in"`
				BytesOut uint64  `json:"bytes_out"`
			} `json:"mesh"`
		} `json:"apps"`
	} `json:"apps"`
	Points map[string]struct {
		In  float64 `json:"in"`
		Out float64 `json:"out"`
	} `json:"points"`
}

// scrapeNode returns the values of the node's metrics served on addr,
// parsed with Prometheus's parser: link bytes by "peer/direction", app
// bytes by "app/port/pid/direction".
func scrapeNode(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fams, err := nodemesh.ParseMetrics(string(b))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, name := range []string{nodemesh.MetricLinkBytes, nodemesh.MetricAppBytes} {
		mf := fams[name]
		if mf == nil {
			t.Fatalf("%s is not served", name)
		}
		for _, m := range mf.Metric {
			ls := map[string]string{}
			for _, l := range m.Label {
				ls[l.GetName()] = l.GetValue()
			}
			key := ls["peer"] + "/" + ls["direction"]
			if name == nodemesh.MetricAppBytes {
				key = ls["app"] + "/" + ls["port"] + "/" + ls["pid"] + "/" + ls["direction"]
			}
			out[key] = m.Counter.GetValue()
		}
	}
	return out
}

// near says whether a chart point equals the rate the counters give,
// allowing for the sample times being whole milliseconds.
func near(got, want float64) bool { return math.Abs(got-want) <= 1+0.01*math.Abs(want) }

// TestChartsAreTheMetrics: the dashboard's link and app charts are the
// node's Prometheus counters. While an app on node 0's app socket sends
// to node 1, each chart point is the increase of the counters the sample
// shows over the sample interval, and those counters are the ones
// [node] metrics serves (scraped over HTTP and parsed with Prometheus's
// parser): skywire_node_link_bytes_total and skywire_node_app_bytes_total.
func TestChartsAreTheMetrics(t *testing.T) {
	tstest.CheckLeaks(t)
	m := meshtest.New(t, meshtest.Options{Nodes: 2, Links: meshtest.Line(2)})
	m.WaitReady()
	n0, n1 := m.Nodes[0], m.Nodes[1]
	apps, sock, _ := fakemesh.ServeApps(t, nodeapp.Mesh(n0.Node), nil)
	reg, err := metrics.NodeRegistry(n0.Node, apps)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := metrics.Listen("127.0.0.1:0", reg, tstest.Logger(t, "metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	fake := controltest.New()
	// The app viscript runs is this test's process: the one registered
	// on the app socket below.
	appID := fake.AddApp(control.AppInfo{Name: "sender", State: control.StateRunning, Pid: os.Getpid(), StartedAt: time.Now()}, "local")
	const interval = 500 * time.Millisecond
	base := serve(t, web.Config{Interval: interval}, nodemesh.New(nodemesh.FromNode(n0.Node, reg)), web.LocalNodes{Ctrl: fake})

	const port = 41
	ln, err := n1.Listen(port)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, err := appnet.Connect(ctx, sock, "sender", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	quiet := keepBusy(t, ln, func(ctx context.Context) (net.Conn, error) {
		return cl.Dial(ctx, n1.PublicKey(), port)
	}, 8<<10, 2*time.Millisecond)

	peer := n1.PublicKey().String()
	appSeries := "app:local:" + strconv.FormatUint(appID, 10)
	pid := strconv.Itoa(os.Getpid())

	// Consecutive samples from the live stream while traffic flows.
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	next := func() chartState {
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var s chartState
				if err := json.Unmarshal([]byte(data), &s); err != nil {
					t.Fatal(err)
				}
				return s
			}
		}
		t.Fatalf("event stream ended: %v", sc.Err())
		return chartState{}
	}
	type counters struct{ linkIn, linkOut, appIn, appOut uint64 }
	read := func(s chartState) (counters, bool) {
		var c counters
		found := 0
		for _, l := range s.LocalLinks {
			if l.Peer == peer {
				c.linkIn, c.linkOut = l.BytesIn, l.BytesOut
				found++
			}
		}
		for _, a := range s.Apps["local"].Apps {
			if a.Series == appSeries && a.Mesh != nil {
				c.appIn, c.appOut = a.Mesh.BytesIn, a.Mesh.BytesOut
				found++
			}
		}
		return c, found == 2
	}
	checked := 0
	deadline := time.Now().Add(tstest.Scaled(tstest.WaitTimeout))
	prev := next()
	for checked < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no pair of consecutive samples with traffic in %v", tstest.Scaled(tstest.WaitTimeout))
		}
		cur := next()
		pc, ok1 := read(prev)
		cc, ok2 := read(cur)
		secs := float64(cur.At-prev.At) / 1000
		lp, lok := cur.Points["link:"+peer]
		ap, aok := cur.Points[appSeries]
		// A pair one interval apart (the reader saw every sample) while
		// the app's counter moved.
		if ok1 && ok2 && lok && aok && secs > 0 && secs < 1.5*interval.Seconds() && cc.appOut > pc.appOut {
			for _, c := range []struct {
				what     string
				got      float64
				from, to uint64
			}{
				{"link in", lp.In, pc.linkIn, cc.linkIn}, {"link out", lp.Out, pc.linkOut, cc.linkOut},
				{"app in", ap.In, pc.appIn, cc.appIn}, {"app out", ap.Out, pc.appOut, cc.appOut},
			} {
				if want := float64(c.to-c.from) / secs; !near(c.got, want) {
					t.Errorf("%s chart point %.1f B/s, but its counters went %d → %d in %.3f s (%.1f B/s)", c.what, c.got, c.from, c.to, secs, want)
				}
			}
			// Both carry traffic. Whether the link sent at least the
			// app's bytes is checked once traffic stops (below): within
			// one interval the node may still hold some of what the app
			// wrote, longer when the machine is loaded.
			if ap.Out <= 0 || lp.Out <= 0 {
				t.Errorf("app out %.0f B/s, link out %.0f B/s: want traffic on both", ap.Out, lp.Out)
			}
			checked++
		}
		prev = cur
	}
	resp.Body.Close()

	// Traffic stopped: the counters of a sample are the scraped ones,
	// and the link has carried every byte the app sent (and its own
	// framing besides). The app's counters no longer move, so they equal
	// a scrape exactly; the link's still do (keepalives every 100 ms), so
	// a sample taken after one scrape lies between it and the next
	// scrape (an exact match with one scrape needed no keepalive between
	// the sample and the scrape: rare once HTTP takes longer than the
	// gap between them, on a loaded machine).
	quiet()
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	scraped := func() counters {
		got := scrapeNode(t, ms.Addr().String())
		return counters{uint64(got[peer+"/in"]), uint64(got[peer+"/out"]),
			uint64(got["sender/0/"+pid+"/in"]), uint64(got["sender/0/"+pid+"/out"])}
	}
	// sampleAfter returns the first sample taken after Unix ms at.
	sampleAfter := func(at int64) chartState {
		end := time.Now().Add(tstest.Scaled(tstest.WaitTimeout))
		for {
			_, body := do(t, hc, "GET", base+"/api/state", "", "", "", "")
			var s chartState
			if err := json.Unmarshal([]byte(body), &s); err == nil && s.At > at {
				return s
			}
			if time.Now().After(end) {
				t.Fatalf("no sample after %d in %v: /api/state says %.200s", at, tstest.Scaled(tstest.WaitTimeout), body)
			}
			time.Sleep(interval / 10)
		}
	}
	var last string
	defer func() {
		if t.Failed() {
			t.Log(last)
		}
	}()
	tstest.WaitFor(t, "a sample's counters between two scrapes of [node] metrics", func() bool {
		lo := scraped()
		c, ok := read(sampleAfter(time.Now().UnixMilli()))
		hi := scraped()
		last = fmt.Sprintf("metrics %+v, then dashboard %+v, then metrics %+v", lo, c, hi)
		return ok && lo.appIn == c.appIn && c.appIn == hi.appIn && lo.appOut == c.appOut && c.appOut == hi.appOut &&
			lo.linkIn <= c.linkIn && c.linkIn <= hi.linkIn && lo.linkOut <= c.linkOut && c.linkOut <= hi.linkOut &&
			c.appOut > 0 && c.linkOut >= c.appOut
	})
	t.Log(last)
}
