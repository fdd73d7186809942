package session

import "sort"

// span is the half-open interval [start, end).
type span struct{ start, end uint64 }

// rangeSet is a sorted set of disjoint, non-adjacent half-open intervals.
// It is used for received stream bytes, acknowledged stream bytes, stream
// bytes waiting for retransmission and received packet numbers. The zero
// value is empty.
type rangeSet struct{ r []span }

func (s *rangeSet) empty() bool { return len(s.r) == 0 }

func (s *rangeSet) len() int { return len(s.r) }

// first returns the lowest interval; the set must not be empty.
func (s *rangeSet) first() span { return s.r[0] }

// last returns the highest interval; the set must not be empty.
func (s *rangeSet) last() span { return s.r[len(s.r)-1] }

// search returns the index of the first interval whose end is >= v.
func (s *rangeSet) search(v uint64) int {
	return sort.Search(len(s.r), func(i int) bool { return s.r[i].end >= v })
}

// add inserts [start, end), merging with touching intervals.
func (s *rangeSet) add(start, end uint64) {
	if start >= end {
		return
	}
	// Fast path: append at the end (the common in-order case).
	if n := len(s.r); n == 0 || s.r[n-1].end < start {
		s.r = append(s.r, span{start, end})
		return
	} else if s.r[n-1].start <= start {
		if end > s.r[n-1].end {
			s.r[n-1].end = end
		}
		return
	}
	i := s.search(start) // first interval that may touch [start, end)
	j := i
	for j < len(s.r) && s.r[j].start <= end {
		if s.r[j].start < start {
			start = s.r[j].start
		}
		if s.r[j].end > end {
			end = s.r[j].end
		}
		j++
	}
	if i == j {
		s.r = append(s.r, span{})
		copy(s.r[i+1:], s.r[i:])
		s.r[i] = span{start, end}
		return
	}
	s.r[i] = span{start, end}
	s.r = append(s.r[:i+1], s.r[j:]...)
}

// remove deletes [start, end) from the set.
func (s *rangeSet) remove(start, end uint64) {
	if start >= end || len(s.r) == 0 {
		return
	}
	i := s.search(start + 1) // first interval with end > start
	for i < len(s.r) && s.r[i].start < end {
		cur := s.r[i]
		switch {
		case cur.start >= start && cur.end <= end: // fully covered
			s.r = append(s.r[:i], s.r[i+1:]...)
		case cur.start < start && cur.end > end: // split
			s.r = append(s.r, span{})
			copy(s.r[i+2:], s.r[i+1:])
			s.r[i] = span{cur.start, start}
			s.r[i+1] = span{end, cur.end}
			return
		case cur.start < start: // trim tail
			s.r[i].end = start
			i++
		default: // trim head
			s.r[i].start = end
			return
		}
	}
}

// removeBelow deletes everything below v.
func (s *rangeSet) removeBelow(v uint64) {
	i := 0
	for i < len(s.r) && s.r[i].end <= v {
		i++
	}
	if i > 0 {
		s.r = append(s.r[:0], s.r[i:]...)
	}
	if len(s.r) > 0 && s.r[0].start < v {
		s.r[0].start = v
	}
}

// contains reports whether v is in the set.
func (s *rangeSet) contains(v uint64) bool {
	i := s.search(v + 1)
	return i < len(s.r) && s.r[i].start <= v
}

// contiguousFrom returns the end of the interval containing v, or v if none does.
func (s *rangeSet) contiguousFrom(v uint64) uint64 {
	i := s.search(v)
	if i < len(s.r) && s.r[i].start <= v {
		return s.r[i].end
	}
	return v
}
