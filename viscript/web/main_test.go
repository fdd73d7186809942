package web_test

import (
	"os"
	"os/signal"
	"syscall"
	"testing"
)

func TestMain(m *testing.M) {
	// The supervisor's signal.Notify starts os/signal's watcher, a
	// process-wide goroutine that never ends: start it before any test's
	// leak check counts goroutines.
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGWINCH)
	signal.Stop(c)
	os.Exit(m.Run())
}
