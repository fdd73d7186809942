package appnet_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// node is a fake mesh node with an app server on a unix socket.
type node struct {
	mesh *fakemesh.Node
	srv  *appserver.Server
	path string
}

// newNode starts an app server for a new node of n; cleanups close it and
// check that Serve returned ErrServerClosed.
func newNode(tb testing.TB, n *fakemesh.Network, name string, opts ...appserver.Option) *node {
	tb.Helper()
	mn, err := n.NewNode()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tstest.SocketDir(tb)
	path := filepath.Join(dir, "node.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	srv := appserver.New(mn, tstest.VerboseLogger(tb, name+": "), opts...)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, appserver.ErrServerClosed) {
			tb.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		mn.Close()
	})
	return &node{mesh: mn, srv: srv, path: path}
}

// connect registers an app and closes it at cleanup.
func (nd *node) connect(tb testing.TB, name string, port uint16) *appnet.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := appnet.Connect(ctx, nd.path, name, port)
	if err != nil {
		tb.Fatalf("connect %s:%d: %v", name, port, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func ctxT(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

func appNames(apps []appserver.AppInfo) string {
	var s []string
	for _, a := range apps {
		s = append(s, fmt.Sprintf("%s:%d", a.Name, a.Port))
	}
	return strings.Join(s, ",")
}
