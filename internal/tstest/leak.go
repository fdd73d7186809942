// Package tstest is what every package's tests share: the goroutine-leak
// check, waiting for a condition, a logger that writes to the test log,
// the import guard, the checks of decoder tables and fuzz targets, and
// stream helpers (serve, echo, open a port) for node and app tests.
//
// Only tests import it, and of this module it imports only package keys
// (so the tests of any other package can use it without a cycle).
package tstest

import (
	"os"
	"os/signal"
	"runtime"
	"sync"
	"testing"
	"time"
)

// leakWait is how long CheckLeaks lets goroutines take to exit after a
// test's cleanups: generous, since a loaded machine running go test -race
// can starve them for seconds. Only a leak waits it out.
const leakWait = 10 * time.Second

var startSignalWatcher sync.Once

// CheckLeaks fails the test if goroutines started during it are still running
// shortly (10 s at most, stretched by TimeScale) after its cleanups. Call it
// first in the test, so that its cleanup runs last, after the test's own.
//
// The os/signal watcher is not counted: the first signal.Notify in the
// process starts it and it never ends, so CheckLeaks starts it before
// counting.
func CheckLeaks(tb testing.TB) {
	tb.Helper()
	startSignalWatcher.Do(func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt)
		signal.Stop(c)
	})
	before := runtime.NumGoroutine()
	tb.Cleanup(func() {
		deadline := time.Now().Add(Scaled(leakWait))
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
