package cluster

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// TestElectionTimeFigures measures how long the cluster is without a
// leader after its leader stops (20 times; median and max). It is a
// measurement, not a check of speed, and runs only with
// SKYWIRE_FIGURES=1:
//
//	SKYWIRE_FIGURES=1 go test ./manager/cluster -run TestElectionTimeFigures -v
func TestElectionTimeFigures(t *testing.T) {
	tstest.Figures(t)
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

// TestTenThousandNodesFigures measures the replicated state of a cluster
// of three with 10,000 registrations (simulated: OpNodePut entries with
// two addresses and three apps each, as a registering node makes): how
// fast the leader commits them, the heap they take, the raft log's file,
// the snapshot's size and how long taking and restoring it takes. A
// measurement, run only with SKYWIRE_FIGURES=1:
//
//	SKYWIRE_FIGURES=1 go test ./manager/cluster -run TestTenThousandNodesFigures -v
func TestTenThousandNodesFigures(t *testing.T) {
	tstest.Figures(t)
	const nodes = 10000
	tc := newTestClusterFor(t, 3, true)
	l := tc.leader()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	var failed atomic.Int64
	for range 32 { // as many registrations in flight as a busy manager has
		wg.Go(func() {
			for i := range work {
				var k proto.Key
				binary.BigEndian.PutUint32(k[:], uint32(i+1))
				n := &Node{Key: k, Addrs: []string{fmt.Sprintf("10.%d.%d.%d:7901", i>>16, (i>>8)&255, i&255), fmt.Sprintf("[fd00::%x]:7901", i)},
					Apps: []proto.App{{Name: "chat", Port: 1}, {Name: "files", Port: 2}, {Name: "vpn", Port: 3}}, Since: time.Now().UnixNano()}
				if err := tc.mems[l].Apply(&Command{Op: OpNodePut, Node: n}); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	for i := range nodes {
		work <- i
	}
	close(work)
	wg.Wait()
	took := time.Since(start)
	if failed.Load() > 0 {
		t.Fatalf("%d registrations failed", failed.Load())
	}
	for i := range tc.mems {
		tstest.WaitFor(t, "every member to hold the registrations", func() bool { return len(tc.mems[i].Nodes()) == nodes })
	}
	after := heap()
	size := func(path string) int64 {
		var n int64
		filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
		return n
	}
	dir := tc.cfgs[l].DataDir
	logBytes := size(filepath.Join(dir, "raft.db"))
	st := time.Now()
	if err := tc.mems[l].Snapshot(); err != nil {
		t.Fatal(err)
	}
	snapTook := time.Since(st)
	snapBytes := size(filepath.Join(dir, "snapshots"))
	// Restoring: the state machine from the snapshot's bytes, and a
	// member restarted (raft start, snapshot restore, the log after it).
	var snapData []byte
	filepath.WalkDir(filepath.Join(dir, "snapshots"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "state.bin" {
			snapData, _ = os.ReadFile(p)
		}
		return nil
	})
	rt := time.Now()
	if st, err := decodeSnapshot(snapData); err != nil || len(st.Nodes) != nodes {
		t.Fatalf("decode the snapshot: %d nodes, %v", len(st.Nodes), err)
	}
	decodeTook := time.Since(rt)
	f := (l + 1) % 3
	if err := tc.mems[f].Snapshot(); err != nil {
		t.Fatal(err)
	}
	tc.stop(f)
	rt = time.Now()
	tc.start(f)
	tstest.WaitFor(t, "the restarted member to restore", func() bool { return len(tc.mems[f].Nodes()) == nodes })
	restartTook := time.Since(rt)
	t.Logf("%d registrations through the leader in %v (%.0f commits/s, 32 in flight); heap %.1f MiB for 3 members' state in this process (%.1f MiB each, %d B a node)",
		nodes, took.Round(time.Millisecond), nodes/took.Seconds(), float64(after-before)/(1<<20), float64(after-before)/3/(1<<20), (after-before)/3/nodes)
	t.Logf("raft log (raft.db) %.1f MiB before compaction; snapshot %.1f MiB (%d B a node), taken in %v; decoded in %v; a restarted member restored all %d in %v",
		float64(logBytes)/(1<<20), float64(snapBytes)/(1<<20), snapBytes/nodes, snapTook.Round(time.Millisecond), decodeTook.Round(time.Millisecond), nodes, restartTook.Round(time.Millisecond))
}
