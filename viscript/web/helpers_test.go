package web_test

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/viscript/web"
)

// serve runs a dashboard on a loopback port until the test ends and
// returns its base URL.
func serve(t *testing.T, cfg web.Config, mesh web.Mesh, nodes web.NodeSource) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	if cfg.Interval == 0 {
		cfg.Interval = 200 * time.Millisecond
	}
	srv, err := web.New(cfg, mesh, nodes, tstest.Logger(t, "dash"))
	if err != nil {
		t.Fatal(err)
	}
	tstest.RunUntilCleanup(t, "the dashboard", srv.Run)
	return "http://" + ln.Addr().String()
}

// simMesh is a simulated node view: a directory of any size and link
// counters the test moves.
type simMesh struct {
	mu   sync.Mutex
	view web.MeshView
	err  error
}

func (s *simMesh) Read(context.Context) (web.MeshView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.view
	v.Nodes = slices.Clone(v.Nodes)
	v.Links = slices.Clone(v.Links)
	return v, s.err
}

func (s *simMesh) Route(_ context.Context, pk keys.PublicKey) (web.Route, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.view.Nodes {
		if n.Key == pk {
			return web.Route{Hops: []keys.PublicKey{s.view.Self, pk}, Per: []time.Duration{time.Millisecond}, Latency: time.Millisecond}, nil
		}
	}
	return web.Route{}, errors.New("no route")
}

func (s *simMesh) update(f func(v *web.MeshView)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.view)
}

// ring builds a simulated directory of n nodes, each linked to the next
// (and the last to the first) and to the one five further on.
func simRing(t testing.TB, n int) *simMesh {
	ks := make([]keys.PublicKey, n)
	for i := range ks {
		ks[i] = tstest.KeyPair(t).Public
	}
	nodes := make([]web.DirNode, n)
	for i := range nodes {
		nodes[i] = web.DirNode{Key: ks[i], Addrs: []string{"10.0.0.1:7000"}, Since: time.Now().Add(-time.Hour),
			Links: []web.DirLink{{Peer: ks[(i+1)%n], RTT: time.Duration(i+1) * time.Millisecond}}}
		if n > 10 {
			nodes[i].Links = append(nodes[i].Links, web.DirLink{Peer: ks[(i+5)%n], RTT: 3 * time.Millisecond})
		}
	}
	return &simMesh{view: web.MeshView{Self: ks[0], Nodes: nodes, Links: []web.LinkCounters{{Peer: ks[1], RTT: time.Millisecond}}}}
}

// streamListener is a node's stream listener.
type streamListener interface {
	Accept(ctx context.Context) (net.Conn, keys.PublicKey, error)
	Close() error
}

// keepBusy keeps a stream carrying traffic for the charts: ln accepts one
// stream and reads it to the end, while the stream dial opens to it is
// written chunk bytes every pause. quiet stops the writing and waits for
// the writer; when the test ends the stream and ln are closed and both
// goroutines waited for.
func keepBusy(t *testing.T, ln streamListener, dial func(context.Context) (net.Conn, error), chunk int, pause time.Duration) (quiet func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	received := make(chan struct{})
	go func() {
		defer close(received)
		c, _, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(io.Discard, c)
	}()
	var conn net.Conn
	writing, stopWriting := context.WithCancel(ctx)
	sent := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		if conn != nil {
			conn.Close()
			<-sent
		}
		ln.Close()
		<-received
	})
	conn, err := dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(sent)
		buf := make([]byte, chunk)
		for writing.Err() == nil {
			if _, err := conn.Write(buf); err != nil {
				return
			}
			time.Sleep(pause)
		}
	}()
	return func() {
		stopWriting()
		<-sent
	}
}
