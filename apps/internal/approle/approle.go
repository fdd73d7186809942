// Package approle is the lifecycle the app roles (socks-client,
// socks-server, vpn-client, vpn-server) share: a registration with the
// local node, the goroutines that serve it, and why the role stopped.
//
// A role registers with Connect, starts its loops with Go (they watch
// Context), and Run returns once the role is asked to stop (nil), the
// node goes away (appnet.ErrNodeLost) or a loop reports a fatal error
// (Fail). Close then runs the role's OnClose hooks, which close what its
// loops block on (listeners, connections, the device), unregisters and
// waits for the loops.
package approle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/skywire-mesh/skywire/appnet"
)

// errStopped is the cause of a stop that is not an error: Stop, Close,
// or the end of Run's context.
var errStopped = errors.New("stopped")

// Group is one running role.
type Group struct {
	app    *appnet.Client
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	mu        sync.Mutex
	onClose   []func() // guarded by mu
}

// Connect registers the role called name with the node on socket (port 0:
// none) and returns its group. Once the node goes away the group stops
// with appnet.ErrNodeLost.
func Connect(ctx context.Context, socket, name string, port uint16, log *slog.Logger) (*Group, error) {
	app, err := appnet.Connect(ctx, socket, name, port, appnet.WithLogger(log))
	if err != nil {
		return nil, err // "register NAME: …"
	}
	g := &Group{app: app}
	g.ctx, g.cancel = context.WithCancelCause(context.Background())
	g.Go(g.watchNode)
	return g, nil
}

// watchNode stops the group when the node goes away.
func (g *Group) watchNode() {
	select {
	case <-g.app.Done():
		g.cancel(fmt.Errorf("%w: %w", appnet.ErrNodeLost, g.app.Err()))
	case <-g.ctx.Done():
	}
}

// App is the role's registration with the node.
func (g *Group) App() *appnet.Client { return g.app }

// Context is done once the role stops.
func (g *Group) Context() context.Context { return g.ctx }

// Go runs f as one of the role's goroutines; Close waits for it.
func (g *Group) Go(f func()) { g.wg.Go(f) }

// Fail stops the role with err, unless it has stopped already.
func (g *Group) Fail(err error) { g.cancel(err) }

// Stop stops the role without an error.
func (g *Group) Stop() { g.cancel(errStopped) }

// Err is why the role stopped: nil while it runs and after Stop (or the
// end of Run's context), else the node's loss or the error given to Fail.
func (g *Group) Err() error {
	if err := context.Cause(g.ctx); err != nil && !errors.Is(err, errStopped) {
		return err
	}
	return nil
}

// Run stops the role when ctx is done and returns once it has stopped,
// with Err.
func (g *Group) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, g.Stop)
	defer stop()
	<-g.ctx.Done()
	return g.Err()
}

// OnClose adds f to what Close does once the role has stopped and
// before it unregisters and waits for the goroutines: f closes something
// they block on. Close runs the hooks once, the last added first.
func (g *Group) OnClose(f func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.onClose = append(g.onClose, f)
}

// Close stops the role, runs the OnClose hooks, unregisters the role
// from the node and waits for its goroutines. It may be called more than
// once, and concurrently; every call returns after the goroutines.
func (g *Group) Close() error {
	g.closeOnce.Do(func() {
		g.Stop()
		g.mu.Lock()
		hooks := g.onClose
		g.mu.Unlock()
		for i := len(hooks) - 1; i >= 0; i-- {
			hooks[i]()
		}
		g.app.Close()
	})
	g.wg.Wait()
	return nil
}

// Cause is why the role stopped if it has (err, if any, is then only a
// consequence of the stop: a cancelled dial, a closed stream), else err.
func (g *Group) Cause(err error) error {
	if g.ctx.Err() != nil {
		return g.Err()
	}
	return err
}
