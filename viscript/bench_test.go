package viscript

import (
	"context"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/viscript/control"
)

// BenchmarkStartList starts 200 sleepers, then lists them. It reports the
// mean start latency and the List latency (with 200 apps).
// Run: go test -run ^$ -bench StartList -benchtime 3x ./viscript/
func BenchmarkStartList(b *testing.B) {
	const n = 200
	ctx := context.Background()
	var startTotal, listTotal time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := newEnv(b)
		s, err := New(e.cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		for j := 0; j < n; j++ {
			info, err := s.Start(ctx, control.StartRequest{Name: "sleep", UseDefault: true, Force: true})
			if err != nil {
				b.Fatal(err)
			}
			e.procs.add(info.Pid)
		}
		t1 := time.Now()
		list, err := s.List(ctx)
		if err != nil || len(list) != n {
			b.Fatalf("List: %d apps, %v", len(list), err)
		}
		t2 := time.Now()
		b.StopTimer()
		startTotal += t1.Sub(t0)
		listTotal += t2.Sub(t1)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		e.procs.reapAll()
	}
	b.ReportMetric(float64(startTotal.Microseconds())/float64(b.N*n)/1000, "ms/start")
	b.ReportMetric(float64(listTotal.Microseconds())/float64(b.N), "µs/list200")
}

// BenchmarkUsage measures Usage of one app with a 1ms sampling window and
// reports the cost without the window.
// Run: go test -run ^$ -bench Usage ./viscript/
func BenchmarkUsage(b *testing.B) {
	e := newEnv(b)
	e.cfg.UsageWindow = time.Millisecond
	s, err := New(e.cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	info, err := s.Start(context.Background(), control.StartRequest{Name: "sleep", UseDefault: true, Force: true})
	if err != nil {
		b.Fatal(err)
	}
	e.procs.add(info.Pid)
	ctx := context.Background()
	b.ResetTimer()
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := s.Usage(ctx, info.ID); err != nil {
			b.Fatal(err)
		}
	}
	per := time.Since(t0) / time.Duration(b.N)
	b.ReportMetric(float64((per-e.cfg.UsageWindow).Microseconds())/1000, "ms/op-excl-window")
}
