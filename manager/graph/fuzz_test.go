package graph

import (
	"testing"
	"time"
)

// FuzzGraphOps interprets the input as a sequence of graph operations on up
// to 8 nodes, checks the structure after each, and then cross-checks every
// pair's shortest path against brute force for a fuzzed hop limit.
//
// Each operation is 3 bytes: op, a, b. The low 3 bits of a and b pick the
// nodes; op%4 is add-node, remove-node, set-link (RTT from the high bits of
// op) or remove-link.
func FuzzGraphOps(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte{0, 0, 0, 0, 1, 0, 2, 0, 1}, uint8(1))
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 6, 0, 1, 10, 1, 2, 14, 2, 3, 2, 0, 3, 6, 0, 3}, uint8(2))
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0, 2, 0, 2, 0, 1, 2, 1, 2, 42, 0, 2, 1, 1, 0, 3, 0, 1, 0, 1, 0}, uint8(3))
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0, 5, 0, 0, 6, 0, 0, 7, 0,
		2, 0, 1, 2, 1, 2, 2, 2, 3, 2, 3, 4, 2, 4, 5, 2, 5, 6, 2, 6, 7, 250, 0, 7, 126, 0, 4}, uint8(4))
	f.Fuzz(func(t *testing.T, ops []byte, hops uint8) {
		const n = 8
		g := New()
		m := newMatrix(n)
		present := make([]bool, n)
		for i := 0; i+2 < len(ops) && i < 3*64; i += 3 {
			op, a, b := ops[i], int(ops[i+1]&7), int(ops[i+2]&7)
			switch op % 4 {
			case 0:
				g.AddNode(key(a))
				present[a] = true
			case 1:
				g.RemoveNode(key(a))
				present[a] = false
				for j := range n {
					m[a][j], m[j][a] = -1, -1
				}
			case 2:
				rtt := time.Duration(op >> 2)
				err := g.SetLink(key(a), key(b), rtt)
				if (err == nil) != (present[a] && present[b] && a != b) {
					t.Fatalf("SetLink(%d,%d): %v", a, b, err)
				}
				if err == nil {
					m[a][b], m[b][a] = rtt, rtt
				}
			case 3:
				g.RemoveLink(key(a), key(b))
				m[a][b], m[b][a] = -1, -1
			}
			checkInvariants(t, g)
		}
		h := int(hops) % (n + 1) // 0 = default
		limit := h
		if limit == 0 {
			limit = DefaultMaxHops
		}
		for src := range n {
			for dst := range n {
				p, err := g.ShortestPath(key(src), key(dst), h)
				checkAgainstBrute(t, g, m, present, src, dst, h, limit, nil, p, err)
			}
		}
	})
}
