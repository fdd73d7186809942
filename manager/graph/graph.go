// Package graph is the node manager's route computation: an undirected graph
// of registered nodes (keyed by keys.PublicKey) and their links, each link
// weighted by the round-trip time its ends reported, and a hop-limited
// lowest-latency path search over it.
//
// # Link weights
//
// A link is reported by both of its ends. The graph keeps one undirected
// edge per pair of nodes and the latest reported RTT wins, whichever end sent
// it: the newest measurement is the best estimate of the link's current
// state, and it keeps SetLink O(1) after the edge is found.
//
// # Concurrency
//
// A Graph is not safe for concurrent mutation. The read methods (HasNode,
// Nodes, Links, Link, Neighbors, ShortestPath, ShortestPathAvoiding) do not
// modify the graph (they take their scratch space from the Graph under its
// own lock, or from a per-graph sync.Pool when another search holds it),
// so any number of them may run at the same time as long as no mutating
// method (AddNode, RemoveNode, SetLink, RemoveLink) runs concurrently: the
// manager can guard a Graph with a sync.RWMutex, taking the read lock for
// route requests.
//
// # Recomputing routes
//
// When a link or node dies the manager recomputes the routes that used it;
// Path.UsesLink and Path.UsesNode tell which ones.
package graph

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/skywire-mesh/skywire/keys"
)

// Limits and defaults.
const (
	// DefaultMaxHops is the hop limit used when a search is given 0.
	DefaultMaxHops = 16
	// MaxHops is the largest hop limit a search accepts. The hop-limited
	// search needs scratch space proportional to nodes × (hop limit + 1).
	MaxHops = 64
	// MaxRTT is the largest link RTT SetLink accepts. Bounding it keeps
	// path latencies far from int64 overflow for any graph that fits in
	// memory.
	MaxRTT = time.Minute
)

// Sentinel errors; the returned errors wrap them with the operation named.
var (
	// ErrUnknownNode: a key that is not a node of the graph.
	ErrUnknownNode = errors.New("unknown node")
	// ErrNoPath: no path within the hop limit (and, for
	// ShortestPathAvoiding, not using an avoided link).
	ErrNoPath = errors.New("no path")
	// ErrSelfLink: SetLink with both ends the same node.
	ErrSelfLink = errors.New("link from a node to itself")
	// ErrBadRTT: an RTT below zero or above MaxRTT.
	ErrBadRTT = errors.New("rtt out of range")
	// ErrBadHopLimit: a hop limit below zero or above MaxHops.
	ErrBadHopLimit = errors.New("hop limit out of range")
)

// Edge is one link seen from one of its ends.
type Edge struct {
	To  keys.PublicKey
	RTT time.Duration
}

// half is one direction of an undirected link, stored in the adjacency list
// of its origin. rev is the position of the opposite half in adj[to], which
// makes updating and removing a link O(1) once one half is found.
type half struct {
	to  int32
	rev int32
	rtt time.Duration
}

// Graph is an undirected graph of nodes and links weighted by RTT. The zero
// value is an empty graph ready to use. A Graph must not be copied after
// first use.
// See the package documentation for the concurrency rules.
type Graph struct {
	index map[keys.PublicKey]int32 // key -> slot
	keys  []keys.PublicKey         // slot -> key; zero for a free slot
	adj   [][]half                 // slot -> links
	free  []int32                  // free slots, reused by AddNode
	links int

	// Search scratch: one resident set for the common case of one search at
	// a time (it survives garbage collections), and a pool for concurrent
	// searches. Both are sized on use for len(keys).
	residentMu sync.Mutex
	resident   *scratch // guarded by residentMu
	pool       sync.Pool
}

// New returns an empty graph.
func New() *Graph {
	return &Graph{index: make(map[keys.PublicKey]int32)}
}

// AddNode adds k as a node without links. Adding a node twice is a no-op.
func (g *Graph) AddNode(k keys.PublicKey) {
	if _, ok := g.index[k]; ok {
		return
	}
	if g.index == nil {
		g.index = make(map[keys.PublicKey]int32)
	}
	var slot int32
	if n := len(g.free); n > 0 {
		slot = g.free[n-1]
		g.free = g.free[:n-1]
		g.keys[slot] = k
	} else {
		slot = int32(len(g.keys))
		g.keys = append(g.keys, k)
		g.adj = append(g.adj, nil)
	}
	g.index[k] = slot
}

// RemoveNode removes k and all its links. It reports whether k was a node.
func (g *Graph) RemoveNode(k keys.PublicKey) bool {
	n, ok := g.index[k]
	if !ok {
		return false
	}
	l := g.adj[n]
	for i := len(l) - 1; i >= 0; i-- {
		h := l[i]
		g.removeHalf(h.to, h.rev)
	}
	g.links -= len(l)
	g.adj[n] = nil
	g.keys[n] = keys.PublicKey{}
	delete(g.index, k)
	g.free = append(g.free, n)
	return true
}

// SetLink adds the link a–b with the given RTT, or replaces the RTT of an
// existing link (the latest report wins). Both ends must be nodes.
func (g *Graph) SetLink(a, b keys.PublicKey, rtt time.Duration) error {
	if rtt < 0 || rtt > MaxRTT {
		return fmt.Errorf("set link %s–%s: rtt %v: %w", a.Short(), b.Short(), rtt, ErrBadRTT)
	}
	ia, ib, err := g.pair("set link", a, b)
	if err != nil {
		return err
	}
	if ia == ib {
		return fmt.Errorf("set link %s: %w", a.Short(), ErrSelfLink)
	}
	if i := g.find(ia, ib); i >= 0 {
		h := &g.adj[ia][i]
		h.rtt = rtt
		g.adj[ib][h.rev].rtt = rtt
		return nil
	}
	pa, pb := int32(len(g.adj[ia])), int32(len(g.adj[ib]))
	g.adj[ia] = append(g.adj[ia], half{to: ib, rev: pb, rtt: rtt})
	g.adj[ib] = append(g.adj[ib], half{to: ia, rev: pa, rtt: rtt})
	g.links++
	return nil
}

// RemoveLink removes the link a–b. It reports whether there was one.
func (g *Graph) RemoveLink(a, b keys.PublicKey) bool {
	ia, ib, err := g.pair("remove link", a, b)
	if err != nil || ia == ib {
		return false
	}
	i := g.find(ia, ib)
	if i < 0 {
		return false
	}
	j := g.adj[ia][i].rev
	g.removeHalf(ia, i)
	g.removeHalf(ib, j) // j is still valid: removeHalf(ia, …) only moves halves within adj[ia]
	g.links--
	return true
}

// HasNode reports whether k is a node.
func (g *Graph) HasNode(k keys.PublicKey) bool {
	_, ok := g.index[k]
	return ok
}

// Nodes returns the number of nodes.
func (g *Graph) Nodes() int { return len(g.index) }

// Links returns the number of (undirected) links.
func (g *Graph) Links() int { return g.links }

// Link returns the RTT of the link a–b and whether there is one.
func (g *Graph) Link(a, b keys.PublicKey) (time.Duration, bool) {
	ia, ib, err := g.pair("link", a, b)
	if err != nil || ia == ib {
		return 0, false
	}
	i := g.find(ia, ib)
	if i < 0 {
		return 0, false
	}
	return g.adj[ia][i].rtt, true
}

// Neighbors returns k's links in no particular order, as a new slice; nil if
// k is not a node or has no links.
func (g *Graph) Neighbors(k keys.PublicKey) []Edge {
	n, ok := g.index[k]
	if !ok || len(g.adj[n]) == 0 {
		return nil
	}
	out := make([]Edge, len(g.adj[n]))
	for i, h := range g.adj[n] {
		out[i] = Edge{To: g.keys[h.to], RTT: h.rtt}
	}
	return out
}

// pair looks up the slots of a and b.
func (g *Graph) pair(op string, a, b keys.PublicKey) (int32, int32, error) {
	ia, ok := g.index[a]
	if !ok {
		return 0, 0, fmt.Errorf("%s: node %s: %w", op, a.Short(), ErrUnknownNode)
	}
	ib, ok := g.index[b]
	if !ok {
		return 0, 0, fmt.Errorf("%s: node %s: %w", op, b.Short(), ErrUnknownNode)
	}
	return ia, ib, nil
}

// find returns the position of the half a->b in adj[a], or -1. It scans the
// shorter of the two adjacency lists, so a leaf's link to a hub is found in
// O(leaf degree).
func (g *Graph) find(a, b int32) int32 {
	if len(g.adj[a]) <= len(g.adj[b]) {
		for i, h := range g.adj[a] {
			if h.to == b {
				return int32(i)
			}
		}
		return -1
	}
	for _, h := range g.adj[b] {
		if h.to == a {
			return h.rev
		}
	}
	return -1
}

// removeHalf deletes adj[x][i] by moving the last half into its place and
// fixing the moved half's back pointer.
func (g *Graph) removeHalf(x, i int32) {
	l := g.adj[x]
	last := int32(len(l) - 1)
	if i != last {
		m := l[last]
		l[i] = m
		g.adj[m.to][m.rev].rev = i
	}
	l[last] = half{}
	g.adj[x] = l[:last]
}
