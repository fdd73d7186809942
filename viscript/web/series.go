package web

// ring is a bounded series of samples: the newest n points, oldest first.
type ring struct {
	pts  []point
	next int  // where the next point goes once full
	full bool // len(pts) == cap
}

// point is one sample of a series: when (Unix milliseconds) and its
// values (bytes per second in and out, CPU percent).
type point struct {
	T   int64   `json:"t"`
	In  float64 `json:"in"`
	Out float64 `json:"out"`
	CPU float64 `json:"cpu,omitempty"`
}

func newRing(n int) *ring { return &ring{pts: make([]point, 0, n)} }

func (r *ring) add(p point) {
	if !r.full {
		r.pts = append(r.pts, p)
		r.full = len(r.pts) == cap(r.pts)
		return
	}
	r.pts[r.next] = p
	r.next = (r.next + 1) % len(r.pts)
}

// points returns the samples oldest first (a copy).
func (r *ring) points() []point {
	out := make([]point, 0, len(r.pts))
	out = append(out, r.pts[r.next:]...)
	return append(out, r.pts[:r.next]...)
}

// rate is the per-second rate of a counter between two readings; a
// counter that went down (a re-established link, a restarted app) starts
// again from zero, so the rate is taken from zero.
func rate(prev, cur uint64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	if cur < prev {
		return float64(cur) / seconds
	}
	return float64(cur-prev) / seconds
}
