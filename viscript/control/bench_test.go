package control_test

import (
	"context"
	"testing"

	"github.com/skywire-mesh/skywire/viscript/control"
)

// BenchmarkListUnix measures one List round trip (10 apps) over a unix
// socket, sequentially and with parallel callers sharing the connection.
func BenchmarkListUnix(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		name := "serial"
		if parallel {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) {
			e := newBenchEnv(b)
			for range 10 {
				e.fake.AddApp(control.AppInfo{Name: "echo", State: control.StateRunning, Args: []string{"-x", "y"}}, "o")
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			if !parallel {
				for b.Loop() {
					if _, err := e.c.List(ctx); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := e.c.List(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
