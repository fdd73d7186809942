// Package tstest is what every package's tests share: the goroutine-leak
// check, waiting for a condition, a logger that writes to the test log, and
// the import guard.
package tstest

import (
	"runtime"
	"testing"
	"time"
)

// CheckLeaks fails the test if goroutines started during it are still running
// shortly (5 s at most) after its cleanups. Call it first in the test, so
// that its cleanup runs last, after the test's own.
func CheckLeaks(tb testing.TB) {
	tb.Helper()
	before := runtime.NumGoroutine()
	tb.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				tb.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
