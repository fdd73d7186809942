package cluster

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// TestElectionTimeFigures measures how long the cluster is without a
// leader after its leader stops (20 times; median and max). It is a
// measurement, not a check of speed, and runs only with
// SKYWIRE_FIGURES=1:
//
//	SKYWIRE_FIGURES=1 go test ./manager/cluster -run TestElectionTimeFigures -v
func TestElectionTimeFigures(t *testing.T) {
	if os.Getenv("SKYWIRE_FIGURES") == "" {
		t.Skip("a measurement: set SKYWIRE_FIGURES=1")
	}
	tc := newTestClusterFor(t, 3, true)
	var times []time.Duration
	for range 20 {
		l := tc.leader()
		tc.stop(l)
		start := time.Now()
		tstest.WaitFor(t, "a new leader", func() bool {
			for i, c := range tc.mems {
				if c != nil && i != l && c.IsLeader() {
					return true
				}
			}
			return false
		})
		times = append(times, time.Since(start))
		tc.start(l)
		// The restarted member catches up before the next round.
		nl := tc.leader()
		tstest.WaitFor(t, "the member to catch up", func() bool {
			return tc.mems[l].r.AppliedIndex() >= tc.mems[nl].r.CommitIndex()
		})
	}
	slices.Sort(times)
	t.Logf("election after a leader stop, 20 runs: median %v, max %v, min %v (heartbeat_timeout %v)",
		times[len(times)/2], times[len(times)-1], times[0], DefaultHeartbeatTimeout)
}
