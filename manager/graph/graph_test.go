package graph

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/keys"
)

func TestAddNodeIdempotent(t *testing.T) {
	g := New()
	g.AddNode(key(1))
	g.AddNode(key(1))
	g.AddNode(key(2))
	if g.Nodes() != 2 {
		t.Fatalf("Nodes()=%d, want 2", g.Nodes())
	}
	if !g.HasNode(key(1)) || !g.HasNode(key(2)) || g.HasNode(key(3)) {
		t.Fatal("HasNode wrong")
	}
	if err := g.SetLink(key(1), key(2), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	g.AddNode(key(1)) // must not drop the links
	if g.Links() != 1 || len(g.Neighbors(key(1))) != 1 {
		t.Fatalf("re-adding a node changed its links: Links()=%d", g.Links())
	}
	checkInvariants(t, g)
}

func TestSetLinkErrors(t *testing.T) {
	g := New()
	g.AddNode(key(1))
	g.AddNode(key(2))
	tests := []struct {
		name string
		a, b keys.PublicKey
		rtt  time.Duration
		want error
	}{
		{"ok", key(1), key(2), time.Millisecond, nil},
		{"zero rtt", key(1), key(2), 0, nil},
		{"max rtt", key(2), key(1), MaxRTT, nil},
		{"negative rtt", key(1), key(2), -1, ErrBadRTT},
		{"huge rtt", key(1), key(2), MaxRTT + 1, ErrBadRTT},
		{"self", key(1), key(1), time.Millisecond, ErrSelfLink},
		{"unknown a", key(9), key(2), time.Millisecond, ErrUnknownNode},
		{"unknown b", key(1), key(9), time.Millisecond, ErrUnknownNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := g.SetLink(tt.a, tt.b, tt.rtt)
			if !errors.Is(err, tt.want) {
				t.Fatalf("SetLink: %v, want %v", err, tt.want)
			}
			checkInvariants(t, g)
		})
	}
	if g.Links() != 1 {
		t.Fatalf("Links()=%d, want 1", g.Links())
	}
}

func TestSetLinkLatestWins(t *testing.T) {
	g := New()
	for i := range 3 {
		g.AddNode(key(i))
	}
	steps := []struct {
		a, b int
		rtt  time.Duration
	}{
		{0, 1, 10 * time.Millisecond},
		{1, 0, 30 * time.Millisecond}, // the other end reports: replaces
		{0, 2, 5 * time.Millisecond},
		{0, 1, 20 * time.Millisecond},
	}
	for _, s := range steps {
		if err := g.SetLink(key(s.a), key(s.b), s.rtt); err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, g)
		for _, pair := range [][2]int{{s.a, s.b}, {s.b, s.a}} {
			if got, ok := g.Link(key(pair[0]), key(pair[1])); !ok || got != s.rtt {
				t.Fatalf("Link(%d,%d)=%v,%v want %v", pair[0], pair[1], got, ok, s.rtt)
			}
		}
	}
	if g.Links() != 2 {
		t.Fatalf("Links()=%d, want 2", g.Links())
	}
}

func TestRemove(t *testing.T) {
	// Star around 0 plus a ring 1-2-3-4-1.
	build := func(t *testing.T) *Graph {
		g := New()
		for i := range 5 {
			g.AddNode(key(i))
		}
		for _, l := range [][2]int{{0, 1}, {0, 2}, {0, 3}, {0, 4}, {1, 2}, {2, 3}, {3, 4}, {4, 1}} {
			if err := g.SetLink(key(l[0]), key(l[1]), time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		return g
	}
	tests := []struct {
		name      string
		op        func(g *Graph) bool
		wantOK    bool
		wantNodes int
		wantLinks int
	}{
		{"remove hub", func(g *Graph) bool { return g.RemoveNode(key(0)) }, true, 4, 4},
		{"remove leaf", func(g *Graph) bool { return g.RemoveNode(key(3)) }, true, 4, 5},
		{"remove unknown node", func(g *Graph) bool { return g.RemoveNode(key(9)) }, false, 5, 8},
		{"remove link", func(g *Graph) bool { return g.RemoveLink(key(2), key(0)) }, true, 5, 7},
		{"remove missing link", func(g *Graph) bool { return g.RemoveLink(key(1), key(3)) }, false, 5, 8},
		{"remove link unknown end", func(g *Graph) bool { return g.RemoveLink(key(1), key(9)) }, false, 5, 8},
		{"remove self link", func(g *Graph) bool { return g.RemoveLink(key(1), key(1)) }, false, 5, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(t)
			if ok := tt.op(g); ok != tt.wantOK {
				t.Fatalf("op reported %v, want %v", ok, tt.wantOK)
			}
			checkInvariants(t, g)
			if g.Nodes() != tt.wantNodes || g.Links() != tt.wantLinks {
				t.Fatalf("Nodes()=%d Links()=%d, want %d %d", g.Nodes(), g.Links(), tt.wantNodes, tt.wantLinks)
			}
		})
	}
}

func TestRemoveNodeThenReAdd(t *testing.T) {
	g := New()
	for i := range 4 {
		g.AddNode(key(i))
	}
	for i := 1; i < 4; i++ {
		if err := g.SetLink(key(0), key(i), time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	g.RemoveNode(key(0))
	for i := 1; i < 4; i++ {
		if n := g.Neighbors(key(i)); n != nil {
			t.Fatalf("node %d still has neighbours %v", i, n)
		}
	}
	g.AddNode(key(7)) // reuses the freed slot
	if g.Neighbors(key(7)) != nil {
		t.Fatal("new node inherited links from the freed slot")
	}
	if g.HasNode(key(0)) {
		t.Fatal("removed node still present")
	}
	if err := g.SetLink(key(7), key(1), 2*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, g)
}

func TestNeighbors(t *testing.T) {
	g := New()
	for i := range 4 {
		g.AddNode(key(i))
	}
	_ = g.SetLink(key(0), key(1), 1*time.Millisecond)
	_ = g.SetLink(key(2), key(0), 2*time.Millisecond)
	got := g.Neighbors(key(0))
	slices.SortFunc(got, func(a, b Edge) int { return int(a.RTT - b.RTT) })
	want := []Edge{{key(1), time.Millisecond}, {key(2), 2 * time.Millisecond}}
	if !slices.Equal(got, want) {
		t.Fatalf("Neighbors=%v, want %v", got, want)
	}
	if g.Neighbors(key(3)) != nil || g.Neighbors(key(9)) != nil {
		t.Fatal("Neighbors of an isolated or unknown node not nil")
	}
}

// TestRandomMutations drives random operations against a reference model and
// checks the structure and the neighbour sets after each one.
func TestRandomMutations(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 12
	g := New()
	m := newMatrix(n)
	present := make([]bool, n)
	for step := range 3000 {
		a, b := r.IntN(n), r.IntN(n)
		switch op := r.IntN(10); {
		case op < 2:
			g.AddNode(key(a))
			present[a] = true
		case op < 3:
			if g.RemoveNode(key(a)) != present[a] {
				t.Fatalf("step %d: RemoveNode(%d) disagrees with model", step, a)
			}
			present[a] = false
			for j := range n {
				m[a][j], m[j][a] = -1, -1
			}
		case op < 8:
			rtt := time.Duration(r.IntN(100))
			err := g.SetLink(key(a), key(b), rtt)
			if ok := present[a] && present[b] && a != b; ok != (err == nil) {
				t.Fatalf("step %d: SetLink(%d,%d): %v", step, a, b, err)
			}
			if err == nil {
				m[a][b], m[b][a] = rtt, rtt
			}
		default:
			want := a != b && m[a][b] >= 0
			if g.RemoveLink(key(a), key(b)) != want {
				t.Fatalf("step %d: RemoveLink(%d,%d) disagrees with model", step, a, b)
			}
			m[a][b], m[b][a] = -1, -1
		}
		checkInvariants(t, g)
		links := 0
		for i := range n {
			for j := range n {
				got, ok := g.Link(key(i), key(j))
				if ok != (m[i][j] >= 0) || (ok && got != m[i][j]) {
					t.Fatalf("step %d: Link(%d,%d)=%v,%v, model %v", step, i, j, got, ok, m[i][j])
				}
				if j > i && ok {
					links++
				}
			}
		}
		if links != g.Links() {
			t.Fatalf("step %d: Links()=%d, model %d", step, g.Links(), links)
		}
	}
}

func TestZeroGraph(t *testing.T) {
	var g Graph
	if g.HasNode(key(0)) || g.Nodes() != 0 || g.Links() != 0 || g.RemoveNode(key(0)) || g.RemoveLink(key(0), key(1)) {
		t.Fatal("zero Graph not empty")
	}
	if _, err := g.ShortestPath(key(0), key(1), 0); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("ShortestPath on zero Graph: %v", err)
	}
	g.AddNode(key(0))
	g.AddNode(key(1))
	if err := g.SetLink(key(0), key(1), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if p, err := g.ShortestPath(key(0), key(1), 0); err != nil || p.Latency != time.Millisecond {
		t.Fatalf("ShortestPath=%v,%v", p, err)
	}
	checkInvariants(t, &g)
}
