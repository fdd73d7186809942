package shell

import (
	"os"
	"os/signal"
	"testing"
)

func TestMain(m *testing.M) {
	// The runtime starts its signal-forwarding goroutine at the first
	// signal.Notify and keeps it for good; start it before any goroutine
	// leak check counts.
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt)
	signal.Stop(c)
	os.Exit(m.Run())
}
