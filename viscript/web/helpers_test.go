package web_test

import (
	"context"
	"errors"
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
