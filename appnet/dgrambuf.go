package appnet

import "math/bits"

// Received datagrams are copied out of the control connection's read
// buffer into buffers of a few size classes (powers of two from
// minDgramBuf up to one that holds MaxDatagram), which ReuseDatagram
// hands back: an app that reads datagram after datagram (the VPN, at up
// to 64 KiB each) then allocates nothing per datagram. Each class keeps at
// most dgramFreePerClass free buffers (2 MiB of the largest).
const (
	minDgramShift     = 10 // 1 KiB
	maxDgramShift     = 16 // 64 KiB: holds MaxDatagram (65,535)
	dgramFreePerClass = 32
)

// dgramBufs is a client's free lists of datagram buffers, one per size
// class. Channels, not sync.Pool: putting a slice into a sync.Pool
// allocates, and a bounded list bounds what the client keeps.
type dgramBufs [maxDgramShift - minDgramShift + 1]chan []byte

func newDgramBufs() *dgramBufs {
	var d dgramBufs
	for i := range d {
		d[i] = make(chan []byte, dgramFreePerClass)
	}
	return &d
}

// class returns the index of the smallest class that holds n bytes.
func dgramClass(n int) int {
	if n <= 1<<minDgramShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minDgramShift
}

// get returns a buffer of length n (n ≤ MaxDatagram).
func (d *dgramBufs) get(n int) []byte {
	c := dgramClass(n)
	select {
	case b := <-d[c]:
		return b[:n]
	default:
		return make([]byte, n, 1<<(c+minDgramShift))
	}
}

// put keeps b for a later get if it is a buffer of one of the classes
// (any capacity that is one of the class sizes) and that class's list has
// room; otherwise it leaves b to the garbage collector.
func (d *dgramBufs) put(b []byte) {
	c := cap(b)
	if c < 1<<minDgramShift || c > 1<<maxDgramShift || c&(c-1) != 0 {
		return
	}
	select {
	case d[bits.Len(uint(c))-1-minDgramShift] <- b[:0]:
	default:
	}
}
