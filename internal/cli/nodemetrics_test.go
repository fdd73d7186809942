package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/cli/rolectl"
	"github.com/skywire-mesh/skywire/internal/metrics"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/node/nodeapp"
	"github.com/skywire-mesh/skywire/viscript/web/nodemesh"
)

// The dashboard's path to a node's counters in the real binary: the node
// role's control socket answers /metrics with its metrics registry, and
// ctlSource (what viscript's dashboard reads) turns the text into the
// node's links and their byte counters, the ones the node keeps.
func TestNodeControlMetrics(t *testing.T) {
	tstest.CheckLeaks(t)
	m := meshtest.New(t, meshtest.Options{Nodes: 2, Links: meshtest.Line(2)})
	m.WaitReady()
	n := m.Nodes[0].Node
	apps, _, _ := fakemesh.ServeApps(t, nodeapp.Mesh(n), nil)
	reg, err := metrics.NodeRegistry(n, apps)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(tstest.SocketDir(t), "node.ctl")
	ctl, err := rolectl.Listen(sock, nodeHandlers(n, apps, reg), tstest.Logger(t, "node.ctl "))
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	peer := m.Nodes[1].PublicKey()
	var last string
	tstest.WaitFor(t, "the control socket's link counters equal the node's", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		fams, err := ctlSource{sock}.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ls := nodemesh.Links(fams)
		nl := n.Links()
		if len(ls) != 1 || len(nl) != 1 {
			last = "links " + fmtAny(ls) + " vs " + fmtAny(nl)
			return false
		}
		last = fmtAny(ls[0]) + " vs " + fmtAny(nl[0].Stats)
		return ls[0].Peer == peer && ls[0].BytesIn == nl[0].Stats.BytesIn && ls[0].BytesOut == nl[0].Stats.BytesOut && ls[0].BytesIn > 0
	})
	t.Log(last)
	// A figure, not a check: what one dashboard sample's read of the
	// counters costs (median of 20), against the two JSON queries it
	// replaced.
	median := func(f func()) time.Duration {
		var ds []time.Duration
		for range 20 {
			start := time.Now()
			f()
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	ctx := context.Background()
	var text struct{ Text string }
	rolectl.Get(ctx, sock, "/metrics", &text)
	viaMetrics := median(func() { ctlSource{sock}.Metrics(ctx) })
	viaJSON := median(func() {
		var a, b []any
		rolectl.Get(ctx, sock, "/links", &a)
		rolectl.Get(ctx, sock, "/apps", &b)
	})
	t.Logf("counters over the control socket: /metrics parsed %v (%d bytes of text); /links + /apps %v", viaMetrics.Round(10*time.Microsecond), len(text.Text), viaJSON.Round(10*time.Microsecond))
	if fams, err := (ctlSource{sock}).Metrics(context.Background()); err != nil || fams["skywire_node_apps"] == nil || fams["go_goroutines"] == nil {
		t.Errorf("the control socket's metrics lack the app socket's or the runtime's: %v", err)
	}
}

func fmtAny(v any) string { return fmt.Sprintf("%+v", v) }
