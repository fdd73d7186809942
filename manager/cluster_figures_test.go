package manager_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager"
	"github.com/skywire-mesh/skywire/node"
)

// TestRouteSetupFigures measures route set-up (a fresh route and session,
// then one ping: CloseSession + Ping) over a line of 3 nodes on loopback
// TCP, with one manager and with a cluster of three (where the leader also
// commits the route to the raft log before it answers). A measurement,
// run only with SKYWIRE_FIGURES=1:
//
//	SKYWIRE_FIGURES=1 go test ./manager -run TestRouteSetupFigures -v
func TestRouteSetupFigures(t *testing.T) {
	tstest.Figures(t)
	const n = 30
	measure := func(from *node.Node, to keys.PublicKey) (median, max time.Duration) {
		var ds []time.Duration
		for range n {
			from.CloseSession(to)
			ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(20*time.Second))
			start := time.Now()
			_, err := from.Ping(ctx, to)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[n/2], ds[n-1]
	}
	single := meshtest.New(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3), TCP: true})
	single.WaitReady()
	sm, sx := measure(single.Nodes[0].Node, single.Nodes[2].Keys.Public)
	single.Close()

	cm := newClusterMesh(t, 3, 3, meshtest.Line(3))
	cm.waitReady()
	cm.ping(0, 2) // the node learns who leads
	cmed, cx := measure(cm.nodes[0].Node, cm.nodeKeys[2].Public)
	t.Logf("route set-up + first ping, %d runs: single manager median %v max %v; cluster of 3 median %v max %v",
		n, sm, sx, cmed, cx)
}

// TestRouteSetupRateFigures measures route set-ups per second through the
// leader: 6 nodes in a line on loopback TCP, one worker per pair of
// nodes at least two links apart (10 workers), each making a fresh route
// and session and one ping, closing it, again, for 15 s; with one
// manager and with a cluster of three (where the leader commits each
// route to the raft log before it answers, and its deletion after the
// close); and with one worker (0 → 5) for the latency-bound rate. Each node's route request bucket is raised so that it does not
// cap the figure. A measurement, run only with SKYWIRE_FIGURES=1:
//
//	SKYWIRE_FIGURES=1 go test ./manager -run TestRouteSetupRateFigures -v
func TestRouteSetupRateFigures(t *testing.T) {
	tstest.Figures(t)
	const nodes, dur = 6, 15 * time.Second
	raise := func(c *manager.Config) {
		c.RouteRequestRate, c.RouteRequestBurst, c.MaxRoutesPerNode = 10000, 10000, 10000
	}
	measure := func(node func(i int) *node.Node, key func(i int) keys.PublicKey, one bool) (float64, int64) {
		var ok, failed atomic.Int64
		var wg sync.WaitGroup
		end := time.Now().Add(dur)
		for i := range nodes {
			for j := i + 2; j < nodes; j++ {
				if one && (i != 0 || j != nodes-1) {
					continue
				}
				wg.Go(func() {
					for time.Now().Before(end) {
						node(i).CloseSession(key(j))
						ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(20*time.Second))
						_, err := node(i).Ping(ctx, key(j))
						cancel()
						if err != nil {
							failed.Add(1)
							continue
						}
						ok.Add(1)
					}
				})
			}
		}
		wg.Wait()
		return float64(ok.Load()) / dur.Seconds(), failed.Load()
	}
	single := meshtest.New(t, meshtest.Options{Nodes: nodes, Links: meshtest.Line(nodes), TCP: true, Manager: raise})
	single.WaitReady()
	sn, sk := func(i int) *node.Node { return single.Nodes[i].Node }, func(i int) keys.PublicKey { return single.Nodes[i].Keys.Public }
	sOne, _ := measure(sn, sk, true)
	sRate, sFail := measure(sn, sk, false)
	single.Close()

	cm := newClusterMeshCfg(t, &clusterMesh{mgrCfg: func(_ int, c *manager.Config) { raise(c) }}, 3, nodes, meshtest.Line(nodes))
	cm.waitReady()
	for i := range nodes - 2 {
		cm.ping(i, i+2) // every node learns who leads
	}
	cn, ck := func(i int) *node.Node { return cm.nodes[i].Node }, func(i int) keys.PublicKey { return cm.nodeKeys[i].Public }
	cOne, _ := measure(cn, ck, true)
	cRate, cFail := measure(cn, ck, false)
	t.Logf("route set-ups (route + session + one ping + close) per second for %v each: one worker (5 links): single manager %.0f/s, cluster of 3 %.0f/s; 10 workers: single manager %.0f/s (%d failed), cluster of 3 %.0f/s (%d failed)",
		dur, sOne, cOne, sRate, sFail, cRate, cFail)
}
