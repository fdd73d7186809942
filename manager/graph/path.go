package graph

import (
	"fmt"
	"time"

	"github.com/skywire-mesh/skywire/keys"
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
// Cost: one Dijkstra search that stops at the destination. Only when the
// lowest-latency path is longer than maxHops, a breadth-first search from
// the source (at most maxHops deep) and an A* search over (node, hops)
// states from the destination follow; the A* search's bound is the first
// search's distances, so it needs no search of its own. Scratch space is
// O(nodes) for the first search and O(nodes × (maxHops+1)) for the second.
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
	defer g.putScratch(s)

	// Without a path at all there is none within the hop limit either.
	if g.dijkstra(s, src, dst, avoid) {
		if s.node[dst].hops <= int32(maxHops) {
			return g.fastPath(s, dst), nil
		}
		// The lowest-latency path has too many links.
		if n := g.constrained(s, src, dst, int32(maxHops), avoid); n > 0 {
			return g.constrainedPath(s, src, n, int32(maxHops)), nil
		}
	}
	return Path{}, fmt.Errorf("shortest path %s -> %s within %d hops: %w", from.Short(), to.Short(), maxHops, ErrNoPath)
}

// scratch is the per-search working memory, reused across searches.
// Entries are valid only when their stamp equals the epoch of the pass that
// wrote them, so a search never clears the arrays.
type scratch struct {
	resident bool // g.resident, guarded by g.residentMu
	epoch    uint32
	node     []nodeLabel  // by slot, for dijkstra
	reach    []reachLabel // by slot, for the hop-limited search
	state    []stateLabel // by slot*(maxHops+1) + hops, for the hop-limited search
	heap     minHeap
	queue    []int32
}

// nodeLabel is a node's label in dijkstra: the best path found so far.
// settled is set when the node is popped, its dist then being final.
type nodeLabel struct {
	dist    int64
	parent  int32
	hops    int32
	stamp   uint32
	settled bool
}

// reachLabel is a node's label in the hop-limited search: hops is the fewest
// links from the source to the node, best the fewest hops of an expanded
// state of the node.
type reachLabel struct {
	hops  int32
	best  int32
	stamp uint32
}

// stateLabel is the label of a (node, hops) state in the hop-limited search:
// the lowest latency found from the destination to the node in exactly hops
// links, and the next node towards the destination.
type stateLabel struct {
	dist   int64
	parent int32
	stamp  uint32
}

// getScratch returns scratch space sized for the graph: the resident one if
// no other search holds it, else one from the pool. Return it with
// putScratch.
func (g *Graph) getScratch() *scratch {
	var s *scratch
	if g.residentMu.TryLock() {
		if g.resident == nil {
			g.resident = &scratch{resident: true}
		}
		s = g.resident
	} else if s, _ = g.pool.Get().(*scratch); s == nil {
		s = &scratch{}
	}
	if n := len(g.keys); len(s.node) < n {
		s.node = make([]nodeLabel, n, n+n/8)
		s.reach = make([]reachLabel, n, n+n/8)
	}
	return s
}

func (g *Graph) putScratch(s *scratch) {
	if s.resident {
		g.residentMu.Unlock()
		return
	}
	g.pool.Put(s)
}

// next starts a new epoch, invalidating every label.
func (s *scratch) next() uint32 {
	s.epoch++
	if s.epoch == 0 {
		clear(s.node)
		clear(s.reach)
		clear(s.state)
		s.epoch = 1
	}
	return s.epoch
}

// dijkstra runs a search from src ordered by (latency, hops) and stops when
// dst is settled. It reports whether dst is reachable; if so s.node holds
// the lowest-latency path with the fewest links among those, and the exact
// latency from src of every settled node.
func (g *Graph) dijkstra(s *scratch, src, dst int32, avoid func(a, b keys.PublicKey) bool) bool {
	ep := s.next()
	s.node[src] = nodeLabel{parent: -1, stamp: ep}
	h := &s.heap
	h.reset()
	h.push(item{v: src})
	for h.len() > 0 {
		it := h.pop()
		l := &s.node[it.v]
		if it.d != l.dist || it.h != l.hops {
			continue // stale entry: the node got a better label since
		}
		l.settled = true
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
// links, after dijkstra(s, src, dst, avoid) found dst. It returns the number
// of links of the path found, or 0 if there is none.
//
// It is an A* search over (node, hops) states run backwards, from dst
// towards src, ordered by (key, hops) where a state's key is its latency
// from dst plus a lower bound of the latency still to go to src:
//
//   - bound: the dijkstra pass just before stopped when it settled dst at
//     latency opt, having settled every node closer than opt to src. The
//     bound pi(v) is v's exact latency from src if settled, otherwise opt
//     (a lower bound, since v is not closer than opt). It is consistent:
//     pi(x) <= rtt(x, y) + pi(y) for every link, because the true distances
//     are and capping them at opt keeps that. With a consistent bound the
//     popped keys never decrease, so the first time src is popped its
//     latency is the lowest over all feasible paths. The bound costs no
//     extra search.
//   - reach: a BFS from src, at most H deep, gives the fewest links from src
//     to each node. A state (v, h) is dropped when h plus that exceeds H: no
//     extension of it arrives in time.
//   - dominance: the states of one node share its bound, so they pop in
//     order of (latency, hops). When a state (v, h) pops after a state
//     (v, h') with h' <= h was expanded, the earlier one had no more latency
//     and no more hops, and every path continuing from (v, h) continues
//     from (v, h') as well: (v, h) is skipped. Each node is therefore
//     expanded at most H+1 times, with strictly decreasing hops. Paths found
//     are simple: a repeated node would be a second expansion with more hops
//     and no less latency.
func (g *Graph) constrained(s *scratch, src, dst, H int32, avoid func(a, b keys.PublicKey) bool) int32 {
	ep1, opt := s.epoch, s.node[dst].dist
	pi := func(v int32) int64 {
		if l := &s.node[v]; l.stamp == ep1 && l.settled {
			return l.dist
		}
		return opt
	}
	ep := s.next()

	// Reach: reach.hops = fewest links from src, up to H.
	s.reach[src] = reachLabel{best: H + 1, stamp: ep}
	q := append(s.queue[:0], src)
	for i := 0; i < len(q); i++ {
		x := q[i]
		hx := s.reach[x].hops
		if hx == H {
			continue
		}
		for _, e := range g.adj[x] {
			r := &s.reach[e.to]
			if r.stamp == ep {
				continue
			}
			if avoid != nil && avoid(g.keys[x], g.keys[e.to]) {
				continue
			}
			*r = reachLabel{hops: hx + 1, best: H + 1, stamp: ep}
			q = append(q, e.to)
		}
	}
	s.queue = q
	if s.reach[dst].stamp != ep {
		return 0 // dst is more than H links away
	}

	// A* from dst; item.d is the key, state.dist the latency from dst.
	w := int(H) + 1
	if n := len(g.keys) * w; len(s.state) < n {
		s.state = make([]stateLabel, n, n+n/8)
	}
	s.state[int(dst)*w] = stateLabel{parent: -1, stamp: ep}
	h := &s.heap
	h.reset()
	h.push(item{d: pi(dst), v: dst})
	for h.len() > 0 {
		it := h.pop()
		r := &s.reach[it.v]
		if it.h >= r.best {
			// Dominated. This also drops stale entries: the entry that
			// lowered the (v, h) label was popped first and set best <= h.
			continue
		}
		r.best = it.h
		if it.v == src {
			return it.h
		}
		d := s.state[int(it.v)*w+int(it.h)].dist
		nh := it.h + 1
		for _, e := range g.adj[it.v] {
			u := &s.reach[e.to]
			if u.stamp != ep || nh+u.hops > H || nh >= u.best {
				continue
			}
			nd := d + int64(e.rtt)
			st := &s.state[int(e.to)*w+int(nh)]
			if st.stamp == ep && nd >= st.dist {
				continue
			}
			// The path crosses this link from e.to towards it.v.
			if avoid != nil && avoid(g.keys[e.to], g.keys[it.v]) {
				continue
			}
			*st = stateLabel{dist: nd, parent: it.v, stamp: ep}
			h.push(item{d: nd + pi(e.to), v: e.to, h: nh})
		}
	}
	return 0
}

// constrainedPath builds the path constrained found: n links from src.
func (g *Graph) constrainedPath(s *scratch, src, n, H int32) Path {
	w := int(H) + 1
	p := Path{
		Hops:    make([]keys.PublicKey, n+1),
		Per:     make([]time.Duration, n),
		Latency: time.Duration(s.state[int(src)*w+int(n)].dist),
	}
	p.Hops[0] = g.keys[src]
	v := src
	for i := range n {
		st := &s.state[int(v)*w+int(n-i)]
		next := st.parent
		p.Per[i] = time.Duration(st.dist - s.state[int(next)*w+int(n-i-1)].dist)
		p.Hops[i+1] = g.keys[next]
		v = next
	}
	return p
}
