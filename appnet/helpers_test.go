package appnet_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/keys"
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
	sn := fakemesh.ServeNode(tb, n, name, opts...)
	return &node{mesh: sn.Node, srv: sn.Server, path: sn.Path}
}

// newQueuedNode is newNode with a mesh that queues datagrams for the app
// server's ReadFrom (it hides the fake node's ListenPacketFunc).
func newQueuedNode(tb testing.TB, n *fakemesh.Network, name string) *node {
	tb.Helper()
	nd, err := n.NewNode()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nd.Close() })
	srv, path, _ := fakemesh.ServeApps(tb, struct{ appserver.Mesh }{nd}, nil)
	return &node{mesh: nd, srv: srv, path: path}
}

// connect registers an app and closes it at cleanup.
func (nd *node) connect(tb testing.TB, name string, port uint16) *appnet.Client {
	tb.Helper()
	return fakemesh.ConnectApp(tb, nd.path, name, port)
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

// stream dials from to node:port and accepts the stream at to; both ends
// are closed when the test ends.
func stream(tb testing.TB, ctx context.Context, from, to *appnet.Client, node keys.PublicKey, port uint16) (dialed, accepted net.Conn) {
	tb.Helper()
	dialed, err := from.Dial(ctx, node, port)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { dialed.Close() })
	accepted, _, err = to.Accept(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { accepted.Close() })
	return dialed, accepted
}

// dialAccept dials srv's port from cli and accepts the stream on srv.
func dialAccept(tb testing.TB, ctx context.Context, cli, srv *appnet.Client, port uint16) (out, in net.Conn) {
	tb.Helper()
	out, err := cli.Dial(ctx, srv.LocalKey(), port)
	if err != nil {
		tb.Fatal(err)
	}
	in, _, err = srv.Accept(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return out, in
}
