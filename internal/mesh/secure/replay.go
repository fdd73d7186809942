package secure

// ReplayWindow is how many counters below the highest one received an
// explicit-mode Opener still accepts (once each).
const ReplayWindow = (ringBlocks - 1) * blockBits

const (
	blockBits  = 64
	ringBlocks = 33 // 32 full blocks of history plus the current one
)

// replayWindow is a sliding bitmap of received counters in a ring of 64-bit
// blocks (the scheme of RFC 6479, as used by WireGuard). The zero value
// accepts counter 0 first.
type replayWindow struct {
	last uint64 // highest counter accepted
	ring [ringBlocks]uint64
}

// check reports whether counter would be accepted, without recording it.
func (w *replayWindow) check(counter uint64) bool {
	if counter > w.last {
		return true
	}
	if w.last-counter >= ReplayWindow {
		return false
	}
	block := (counter / blockBits) % ringBlocks
	return w.ring[block]&(1<<(counter%blockBits)) == 0
}

// update records counter and reports whether it was new and inside the window.
func (w *replayWindow) update(counter uint64) bool {
	if counter > w.last {
		cur := w.last / blockBits
		diff := counter/blockBits - cur
		if diff > ringBlocks {
			diff = ringBlocks
		}
		for i := uint64(1); i <= diff; i++ {
			w.ring[(cur+i)%ringBlocks] = 0
		}
		w.last = counter
	} else if w.last-counter >= ReplayWindow {
		return false
	}
	block := (counter / blockBits) % ringBlocks
	bit := uint64(1) << (counter % blockBits)
	old := w.ring[block]
	w.ring[block] = old | bit
	return old&bit == 0
}
