package tstest

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// TimeScale stretches the waits of tests and the timers of test meshes
// (see Scaled). It is 1 unless the environment variable
// MESHTEST_TIME_SCALE holds a larger number, up to 100 (for very slow
// machines).
var TimeScale = timeScaleFromEnv()

func timeScaleFromEnv() float64 {
	v, err := strconv.ParseFloat(os.Getenv("MESHTEST_TIME_SCALE"), 64)
	if err != nil || v < 1 || v > 100 {
		return 1
	}
	return v
}

// Scaled returns d stretched by TimeScale.
func Scaled(d time.Duration) time.Duration { return time.Duration(float64(d) * TimeScale) }

// WaitTimeout is how long WaitFor waits (before TimeScale). It is
// deliberately generous: a test waits for a condition, and the deadline
// only turns a hang into a failure; it is never what a test checks.
const WaitTimeout = 30 * time.Second

// WaitFor polls cond until it holds, and fails the test (tb.Fatalf, naming
// what) if it still does not after WaitTimeout. It is for state that
// offers nothing to wait on (another party's counters, a file, a process
// table); where there is a channel, wait on the channel.
//
// It polls every millisecond at first, backing off to every 50 ms, so
// that a quick condition is seen quickly and a costly one (one that runs a
// process) is not run in a tight loop.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	WaitForWithin(tb, WaitTimeout, what, cond)
}

// WaitForWithin is WaitFor with a timeout of its own (before TimeScale),
// for waits on real processes that need longer than WaitTimeout.
func WaitForWithin(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	timeout = Scaled(timeout)
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// Await receives from ch and fails the test (naming what) if nothing
// arrives within d (stretched by TimeScale). Like WaitFor's, the bound
// only turns a hang into a failure.
func Await[T any](tb testing.TB, ch <-chan T, d time.Duration, what string) T {
	tb.Helper()
	d = Scaled(d)
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		tb.Fatalf("timed out after %v waiting for %s", d, what)
		var zero T
		return zero
	}
}
