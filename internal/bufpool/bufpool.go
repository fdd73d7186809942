// Package bufpool keeps byte buffers for reuse in power-of-two size
// classes from 1 KiB to 64 KiB: a datagram path that copies each datagram
// into a buffer of its own (a queue between goroutines or processes) hands
// the buffer back when done, and the next datagram of its size class
// reuses the memory instead of allocating up to 64 KiB.
//
// Free lists are channels, not sync.Pool: putting a slice into a
// sync.Pool allocates, and a bounded list bounds the memory kept.
package bufpool

import "math/bits"

const (
	minShift = 10 // 1 KiB
	maxShift = 16 // 64 KiB
	// MaxPooled is the largest buffer the classes hold; Get of more
	// allocates a buffer that Put then ignores.
	MaxPooled = 1 << maxShift
)

// Classes is a set of free lists, one per size class. Safe for
// concurrent use.
type Classes struct {
	free [maxShift - minShift + 1]chan []byte
}

// New returns free lists that keep at most perClass buffers each (at most
// perClass × 127 KiB in all).
func New(perClass int) *Classes {
	c := &Classes{}
	for i := range c.free {
		c.free[i] = make(chan []byte, perClass)
	}
	return c
}

// class returns the index of the smallest class that holds n bytes.
func class(n int) int {
	if n <= 1<<minShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minShift
}

// Get returns a buffer of length n: a free one of n's class if there is
// one (its bytes are stale: the caller overwrites them), else a new one
// with the class's capacity.
func (c *Classes) Get(n int) []byte {
	if n > MaxPooled {
		return make([]byte, n)
	}
	i := class(n)
	select {
	case b := <-c.free[i]:
		return b[:n]
	default:
		return make([]byte, n, 1<<(i+minShift))
	}
}

// Put keeps b for a later Get if its capacity is one of the class sizes
// and that class's list has room; otherwise it leaves b to the garbage
// collector. The caller must not use b afterwards.
func (c *Classes) Put(b []byte) {
	n := cap(b)
	if n < 1<<minShift || n > MaxPooled || n&(n-1) != 0 {
		return
	}
	select {
	case c.free[bits.Len(uint(n))-1-minShift] <- b[:0]:
	default:
	}
}

// Free returns how many free buffers class i (capacity 1 KiB << i) holds.
func (c *Classes) Free(i int) int { return len(c.free[i]) }
