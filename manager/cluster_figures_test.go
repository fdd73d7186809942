package manager_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/keys"
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
	if os.Getenv("SKYWIRE_FIGURES") == "" {
		t.Skip("a measurement: set SKYWIRE_FIGURES=1")
	}
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
