package fakemesh

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// ServeApps serves m's app API (a fake node, or a real one through
// nodeapp.Mesh) on a unix socket in a new temporary directory, and
// returns the server and the socket's path. stop, also a cleanup, closes
// the server and fails the test unless Serve then returned
// appserver.ErrServerClosed. It does not close m.
func ServeApps(tb testing.TB, m appserver.Mesh, log *slog.Logger, opts ...appserver.Option) (srv *appserver.Server, path string, stop func()) {
	tb.Helper()
	path = filepath.Join(tstest.SocketDir(tb), "node.sock")
	srv, stop = ServeAppsAt(tb, m, log, path, opts...)
	return srv, path, stop
}

// ServeAppsAt is ServeApps on the socket path (a node that comes and goes
// at one place: a test may serve it again after stop).
func ServeAppsAt(tb testing.TB, m appserver.Mesh, log *slog.Logger, path string, opts ...appserver.Option) (srv *appserver.Server, stop func()) {
	tb.Helper()
	ln, err := appserver.ListenUnix(path)
	if err != nil {
		tb.Fatal(err)
	}
	srv = appserver.New(m, log, opts...)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			srv.Close()
			if err := <-served; !errors.Is(err, appserver.ErrServerClosed) {
				tb.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		})
	}
	tb.Cleanup(stop)
	return srv, stop
}

// ServedNode is a new fake node with its app API served on a unix socket:
// what an app's tests start from.
type ServedNode struct {
	*Node
	Server *appserver.Server
	Path   string // the app socket
}

// ServeNode adds a node to n and serves its app API with ServeApps,
// logging into the test log after the prefix name. Cleanups stop the
// server, then close the node.
func ServeNode(tb testing.TB, n *Network, name string, opts ...appserver.Option) *ServedNode {
	tb.Helper()
	nd, err := n.NewNode()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nd.Close() }) // after the app server's cleanup
	srv, path, _ := ServeApps(tb, nd, tstest.VerboseLogger(tb, name+": "), opts...)
	return &ServedNode{Node: nd, Server: srv, Path: path}
}

// ConnectApp registers an app named name on port (0: none) with the app
// server on the socket path, failing the test at once if it cannot; the
// app is closed when the test ends.
func ConnectApp(tb testing.TB, path, name string, port uint16) *appnet.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(5*time.Second))
	defer cancel()
	c, err := appnet.Connect(ctx, path, name, port)
	if err != nil {
		tb.Fatalf("connect %s:%d: %v", name, port, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
