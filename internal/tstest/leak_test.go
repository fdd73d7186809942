package tstest

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"strings"
	"testing"
	"time"
)

// cleanups is a recorder whose cleanups the test runs itself.
type cleanups struct {
	recorder
	fns []func()
}

func (c *cleanups) Cleanup(f func()) { c.fns = append(c.fns, f) }

func (c *cleanups) run() {
	for i := len(c.fns) - 1; i >= 0; i-- {
		c.fns[i]()
	}
}

// TestCheckLeaksSignalWatcher: a test whose code calls signal.Notify
// first in the process (the supervisor does, for SIGCHLD) does not fail
// the leak check for the os/signal watcher that starts then and never
// ends; a goroutine that ends during the grace period is no leak either.
// (This file sorts before the other tests of the package, so the
// watcher is not running yet when it starts, as in a package of its own.)
func TestCheckLeaksSignalWatcher(t *testing.T) {
	c := &cleanups{recorder: recorder{TB: t}}
	CheckLeaks(c)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	signal.Stop(sigs)
	done := make(chan struct{})
	go func() { <-done }()
	time.AfterFunc(50*time.Millisecond, func() { close(done) })
	c.run()
	if len(c.errors) > 0 {
		t.Errorf("CheckLeaks failed: %v", c.errors)
	}
}

// TestRunUntilCleanup: run runs until the cleanup, which cancels it and
// waits for it; an error it returns fails the test, naming what.
func TestRunUntilCleanup(t *testing.T) {
	for _, ret := range []error{nil, errors.New("broke")} {
		c := &cleanups{recorder: recorder{TB: t}}
		ended := make(chan struct{})
		RunUntilCleanup(c, "role", func(ctx context.Context) error {
			defer close(ended)
			<-ctx.Done()
			return ret
		})
		select {
		case <-ended:
			t.Fatal("run ended before the cleanup")
		case <-time.After(10 * time.Millisecond):
		}
		c.run()
		select {
		case <-ended:
		default:
			t.Fatal("the cleanup returned before run did")
		}
		if want := ret != nil; (len(c.errors) > 0) != want || want && !strings.Contains(c.errors[0], "role: broke") {
			t.Errorf("run returned %v: errors %q", ret, c.errors)
		}
	}
}
