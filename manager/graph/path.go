package graph

import (
	"fmt"
	"time"

	"github.com/skywire-mesh/skywire/internal/keys"
)

// Path is a route through the graph.
type Path struct {
	// Hops lists the nodes from the source to the destination, inclusive;
	// a path from a node to itself has that one node.
	Hops []keys.PublicKey
	// Latency is the sum of Per.
	Latency time.Duration
	// Per holds the RTT of each link: Per[i] is the link Hops[i]–Hops[i+1].
	Per []time.Duration
}

// Links returns the number of links on p (len(Hops)-1, or 0 for an empty Path).
func (p Path) Links() int { return len(p.Per) }

// UsesNode reports whether k is one of p's hops (including its ends).
func (p Path) UsesNode(k keys.PublicKey) bool {
	for _, h := range p.Hops {
		if h == k {
			return true
		}
	}
	return false
}

// UsesLink reports whether p crosses the link a–b, in either direction.
func (p Path) UsesLink(a, b keys.PublicKey) bool {
	for i := 0; i+1 < len(p.Hops); i++ {
		x, y := p.Hops[i], p.Hops[i+1]
		if (x == a && y == b) || (x == b && y == a) {
			return true
		}
	}
	return false
}

// ShortestPath returns the path of lowest total latency from from to to with
// at most maxHops links (0 means DefaultMaxHops). Among paths of equal
// latency it returns one with the fewest links. A path from a node to itself
// is that node alone with zero latency.
//
// Errors wrap ErrUnknownNode, ErrNoPath or ErrBadHopLimit.
//
// Cost: one Dijkstra search that stops at the destination; only when the
// lowest-latency path is longer than maxHops, a bounded breadth-first search
// from the destination and a Dijkstra search over (node, hops) states follow.
func (g *Graph) ShortestPath(from, to keys.PublicKey, maxHops int) (Path, error) {
	return g.ShortestPathAvoiding(from, to, maxHops, nil)
}

// ShortestPathAvoiding is ShortestPath over the links for which avoid returns
// false. avoid(a, b) is asked about crossing a link from a towards b (a is
// the end nearer to from); it may be called several times for the same link
// and must not modify the graph. A nil avoid avoids nothing. To route around
// a node k, avoid every link with an end equal to k.
func (g *Graph) ShortestPathAvoiding(from, to keys.PublicKey, maxHops int, avoid func(a, b keys.PublicKey) bool) (Path, error) {
	if maxHops < 0 || maxHops > MaxHops {
		return Path{}, fmt.Errorf("shortest path: max hops %d (want 0..%d): %w", maxHops, MaxHops, ErrBadHopLimit)
	}
	if maxHops == 0 {
		maxHops = DefaultMaxHops
	}
	src, dst, err := g.pair("shortest path", from, to)
	if err != nil {
		return Path{}, err
	}
	if src == dst {
		return Path{Hops: []keys.PublicKey{from}}, nil
	}

	s := g.getScratch()
	defer g.scratch.Put(s)

	// Without a path at all there is none within the hop limit either.
	if g.dijkstra(s, src, dst, avoid) {
		if s.node[dst].hops <= int32(maxHops) {
			return g.fastPath(s, dst), nil
		}
		// The lowest-latency path has too many links.
		if n := g.constrained(s, src, dst, int32(maxHops), avoid); n > 0 {
			return g.constrainedPath(s, dst, n, int32(maxHops)), nil
		}
	}
	return Path{}, fmt.Errorf("shortest path %s -> %s within %d hops: %w", from.Short(), to.Short(), maxHops, ErrNoPath)
}

// scratch is the per-search working memory, reused through Graph.scratch.
// Entries are valid only when their stamp equals the current epoch, so a
// search never clears the arrays.
type scratch struct {
	epoch uint32
	node  []nodeLabel  // by slot
	state []stateLabel // by slot*(maxHops+1) + hops, for the hop-limited search
	heap  minHeap
	queue []int32
}

// nodeLabel is a node's label. In the plain search dist, hops and parent
// describe the best path found so far. In the hop-limited search hops is
// the fewest links from the node to the destination and best is the fewest
// hops of an expanded state of the node.
type nodeLabel struct {
	dist   int64
	parent int32
	hops   int32
	best   int32
	stamp  uint32
}

// stateLabel is the label of a (node, hops) state: the lowest latency found
// to reach the node in exactly hops links, and the previous node.
type stateLabel struct {
	dist   int64
	parent int32
	stamp  uint32
}

func (g *Graph) getScratch() *scratch {
	s, _ := g.scratch.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	if n := len(g.keys); len(s.node) < n {
		s.node = make([]nodeLabel, n, n+n/8)
	}
	return s
}

// next starts a new epoch, invalidating every label.
func (s *scratch) next() uint32 {
	s.epoch++
	if s.epoch == 0 {
		clear(s.node)
		clear(s.state)
		s.epoch = 1
	}
	return s.epoch
}

// dijkstra runs a search from src ordered by (latency, hops) and stops when
// dst is settled. It reports whether dst is reachable; if so s.node holds
// the lowest-latency path with the fewest links among those.
func (g *Graph) dijkstra(s *scratch, src, dst int32, avoid func(a, b keys.PublicKey) bool) bool {
	ep := s.next()
	s.node[src] = nodeLabel{parent: -1, stamp: ep}
	h := &s.heap
	h.reset()
	h.push(item{v: src})
	for h.len() > 0 {
		it := h.pop()
		if l := &s.node[it.v]; it.d != l.dist || it.h != l.hops {
			continue // stale entry: the node got a better label since
		}
		if it.v == dst {
			return true
		}
		nh := it.h + 1
		for _, e := range g.adj[it.v] {
			nd := it.d + int64(e.rtt)
			l := &s.node[e.to]
			if l.stamp == ep && (nd > l.dist || (nd == l.dist && nh >= l.hops)) {
				continue
			}
			if avoid != nil && avoid(g.keys[it.v], g.keys[e.to]) {
				continue
			}
			*l = nodeLabel{dist: nd, parent: it.v, hops: nh, stamp: ep}
			h.push(item{d: nd, v: e.to, h: nh})
		}
	}
	return false
}

// fastPath builds the path dijkstra found to dst.
func (g *Graph) fastPath(s *scratch, dst int32) Path {
	n := s.node[dst].hops
	p := Path{
		Hops:    make([]keys.PublicKey, n+1),
		Per:     make([]time.Duration, n),
		Latency: time.Duration(s.node[dst].dist),
	}
	v := dst
	for i := n; i > 0; i-- {
		l := &s.node[v]
		p.Hops[i] = g.keys[v]
		p.Per[i-1] = time.Duration(l.dist - s.node[l.parent].dist)
		v = l.parent
	}
	p.Hops[0] = g.keys[v]
	return p
}

// constrained finds the lowest-latency path from src to dst with at most H
// links. It returns the number of links of the path found, or 0 if there is
// none.
//
// It is Dijkstra over (node, hops) states ordered by (latency, hops) with two
// prunings, both exact:
//   - reach: a state (v, h) is dropped when h plus the fewest links from v to
//     dst (a bounded BFS from dst) exceeds H: no extension of it can arrive
//     in time;
//   - dominance: when a state (v, h) is popped after a state (v, h') with
//     h' <= h was expanded, the earlier one had no more latency and no more
//     hops, so any path continuing from (v, h) continues from (v, h') as
//     well; (v, h) is skipped. Each node is therefore expanded at most H+1
//     times, with strictly decreasing hops.
//
// The first time dst is popped its latency is the lowest over all feasible
// paths, as every feasible path's states are either popped later or
// dominated. Paths it returns are simple: a repeated node would have been
// expanded again with more hops and no less latency, which dominance skips.
func (g *Graph) constrained(s *scratch, src, dst, H int32, avoid func(a, b keys.PublicKey) bool) int32 {
	ep := s.next()

	// Fewest links from every node to dst, up to H (hops field).
	s.node[dst] = nodeLabel{best: H + 1, stamp: ep}
	q := append(s.queue[:0], dst)
	for i := 0; i < len(q); i++ {
		x := q[i]
		hx := s.node[x].hops
		if hx == H {
			continue
		}
		for _, e := range g.adj[x] {
			l := &s.node[e.to]
			if l.stamp == ep {
				continue
			}
			// The path would cross this link from e.to towards x.
			if avoid != nil && avoid(g.keys[e.to], g.keys[x]) {
				continue
			}
			*l = nodeLabel{hops: hx + 1, best: H + 1, stamp: ep}
			q = append(q, e.to)
		}
	}
	s.queue = q
	if s.node[src].stamp != ep {
		return 0 // dst is more than H links away
	}

	w := int(H) + 1
	if n := len(g.keys) * w; len(s.state) < n {
		s.state = make([]stateLabel, n, n+n/8)
	}
	s.state[int(src)*w] = stateLabel{parent: -1, stamp: ep}
	h := &s.heap
	h.reset()
	h.push(item{v: src})
	for h.len() > 0 {
		it := h.pop()
		l := &s.node[it.v]
		if it.h >= l.best {
			// Dominated. This also drops stale entries: the entry that
			// lowered the (v, h) label was popped first and set best <= h.
			continue
		}
		l.best = it.h
		if it.v == dst {
			return it.h
		}
		nh := it.h + 1
		for _, e := range g.adj[it.v] {
			u := &s.node[e.to]
			if u.stamp != ep || nh+u.hops > H || nh >= u.best {
				continue
			}
			nd := it.d + int64(e.rtt)
			st := &s.state[int(e.to)*w+int(nh)]
			if st.stamp == ep && nd >= st.dist {
				continue
			}
			if avoid != nil && avoid(g.keys[it.v], g.keys[e.to]) {
				continue
			}
			*st = stateLabel{dist: nd, parent: it.v, stamp: ep}
			h.push(item{d: nd, v: e.to, h: nh})
		}
	}
	return 0
}

// constrainedPath builds the path constrained found: n links to dst.
func (g *Graph) constrainedPath(s *scratch, dst, n, H int32) Path {
	w := int(H) + 1
	p := Path{
		Hops:    make([]keys.PublicKey, n+1),
		Per:     make([]time.Duration, n),
		Latency: time.Duration(s.state[int(dst)*w+int(n)].dist),
	}
	v := dst
	for i := n; i > 0; i-- {
		st := &s.state[int(v)*w+int(i)]
		p.Hops[i] = g.keys[v]
		p.Per[i-1] = time.Duration(st.dist - s.state[int(st.parent)*w+int(i-1)].dist)
		v = st.parent
	}
	p.Hops[0] = g.keys[v]
	return p
}
