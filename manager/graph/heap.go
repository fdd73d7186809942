package graph

// item is a search state in the priority queue: node v reached with latency
// d over h links.
type item struct {
	d int64
	v int32
	h int32
}

// less orders by latency, then by fewer links.
func (a item) less(b item) bool { return a.d < b.d || (a.d == b.d && a.h < b.h) }

// minHeap is a binary min-heap of items. It is hand-rolled rather than built
// on container/heap to avoid an interface call and an allocation per push.
type minHeap struct{ a []item }

func (h *minHeap) reset()   { h.a = h.a[:0] }
func (h *minHeap) len() int { return len(h.a) }

func (h *minHeap) push(x item) {
	h.a = append(h.a, x)
	a := h.a
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !x.less(a[p]) {
			break
		}
		a[i] = a[p]
		i = p
	}
	a[i] = x
}

func (h *minHeap) pop() item {
	a := h.a
	top := a[0]
	n := len(a) - 1
	x := a[n]
	a = a[:n]
	h.a = a
	if n == 0 {
		return top
	}
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && a[r].less(a[c]) {
			c = r
		}
		if !a[c].less(x) {
			break
		}
		a[i] = a[c]
		i = c
	}
	a[i] = x
	return top
}
