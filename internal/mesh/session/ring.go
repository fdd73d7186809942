package session

// ring is a growable circular byte buffer addressed by position relative to
// its head. Callers track which positions hold valid bytes.
type ring struct {
	buf  []byte
	head int
}

const ringMinSize = 64 << 10

// ensure grows the buffer so that positions [0, need) are addressable,
// keeping the first keep bytes. need must not exceed max.
func (r *ring) ensure(need, keep, max int) {
	if need <= len(r.buf) {
		return
	}
	size := len(r.buf) * 2
	if size < ringMinSize {
		size = ringMinSize
	}
	for size < need {
		size *= 2
	}
	if size > max {
		size = max
	}
	nb := make([]byte, size)
	// Positions beyond the old buffer were never written: nothing to keep.
	keep = min(keep, len(r.buf))
	if keep > 0 {
		r.readAt(0, nb[:keep])
	}
	r.buf = nb
	r.head = 0
}

// writeAt copies p to relative position pos.
func (r *ring) writeAt(pos int, p []byte) {
	i := r.head + pos
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	n := copy(r.buf[i:], p)
	copy(r.buf, p[n:])
}

// readAt copies len(p) bytes from relative position pos into p.
func (r *ring) readAt(pos int, p []byte) {
	a, b := r.slices(pos, len(p))
	n := copy(p, a)
	copy(p[n:], b)
}

// slices returns the n bytes at relative position pos as up to two slices.
func (r *ring) slices(pos, n int) ([]byte, []byte) {
	i := r.head + pos
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	if i+n <= len(r.buf) {
		return r.buf[i : i+n], nil
	}
	return r.buf[i:], r.buf[:n-(len(r.buf)-i)]
}

// advance moves the head forward by n bytes.
func (r *ring) advance(n int) {
	if len(r.buf) == 0 {
		return
	}
	r.head += n
	if r.head >= len(r.buf) {
		r.head -= len(r.buf)
	}
}
