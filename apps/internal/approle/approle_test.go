package approle

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// node serves an app socket for a node of a fake mesh; stop takes it
// away as a crashed node would.
type node struct {
	path string
	stop func()
}

func newNode(t *testing.T) *node {
	t.Helper()
	nd, err := fakemesh.New().NewNode()
	if err != nil {
		t.Fatal(err)
	}
	_, path, stopServing := fakemesh.ServeApps(t, nd, nil)
	n := &node{path: path, stop: func() {
		stopServing()
		nd.Close()
	}}
	t.Cleanup(n.stop)
	return n
}

// leakCheckedRole checks the test for leaks and connects a role to a new
// node.
func leakCheckedRole(t *testing.T) *Group {
	t.Helper()
	tstest.CheckLeaks(t)
	return connect(t, newNode(t))
}

func connect(t *testing.T, n *node) *Group {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := Connect(ctx, n.path, "approle-test", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestRunStoppedByContext(t *testing.T) {
	g := leakCheckedRole(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after its context ended = %v, want nil", err)
	}
	if err := g.Cause(errors.New("a dial cancelled by the stop")); err != nil {
		t.Errorf("Cause after a stop = %v, want nil", err)
	}
}

func TestRunNodeLost(t *testing.T) {
	tstest.CheckLeaks(t)
	n := newNode(t)
	g := connect(t, n)
	n.stop()
	if err := g.Run(context.Background()); !errors.Is(err, appnet.ErrNodeLost) {
		t.Errorf("Run after the node went away = %v, want appnet.ErrNodeLost", err)
	}
}

func TestFailFirstWins(t *testing.T) {
	g := leakCheckedRole(t)
	first, second := errors.New("first"), errors.New("second")
	g.Go(func() { g.Fail(first) })
	if err := g.Run(context.Background()); err != first {
		t.Errorf("Run = %v, want %v", err, first)
	}
	g.Fail(second)
	g.Stop()
	if err := g.Err(); err != first {
		t.Errorf("Err after later stops = %v, want %v", err, first)
	}
	other := errors.New("other")
	if err := g.Cause(other); err != first {
		t.Errorf("Cause(other) after a failure = %v, want %v", err, first)
	}
}

func TestCauseWhileRunning(t *testing.T) {
	g := leakCheckedRole(t)
	e := errors.New("refused")
	if err := g.Cause(e); err != e {
		t.Errorf("Cause while running = %v, want %v", err, e)
	}
}

// Close stops the role, runs the hooks once (last added first) before it
// unregisters, and returns after the goroutines.
func TestClose(t *testing.T) {
	g := leakCheckedRole(t)
	var order []string
	exited := make(chan struct{})
	g.Go(func() {
		<-g.Context().Done()
		close(exited)
	})
	g.OnClose(func() { order = append(order, "first added") })
	g.OnClose(func() {
		select {
		case <-g.App().Done():
			t.Error("the role was unregistered before its hooks ran")
		default:
		}
		order = append(order, "last added")
	})
	g.Close()
	select {
	case <-exited:
	default:
		t.Error("Close returned before the role's goroutine")
	}
	g.Close()
	if want := []string{"last added", "first added"}; !slices.Equal(order, want) {
		t.Errorf("hooks ran %q, want %q", order, want)
	}
	if err := g.Err(); err != nil {
		t.Errorf("Err after Close = %v, want nil", err)
	}
}
