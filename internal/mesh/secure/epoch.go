package secure

import (
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/hkdf"
)

// PacketsPerKey is how many consecutive counters of a packet session
// (version 2, Config.Packets) share one key: counter c is sealed under
// the key of epoch c / PacketsPerKey. 2^18 packets of at most 64 KiB (the
// largest the mesh carries) are at most 2^34 bytes, the same budget per
// key as a link's re-keying (RekeyAfterBytes), far inside AES-GCM's usage
// limit. Both ends know a packet's epoch from its explicit counter, so
// loss and reordering cannot make them disagree on the key.
const PacketsPerKey = 1 << 18

// epochInfo separates the epoch derivation from every other use of HKDF.
const epochInfo = "skywire packet epoch v1"

// epochKey derives the key of epoch e from the session's key k:
// k itself for epoch 0, HKDF-SHA256(ikm = k, salt = none, info =
// "skywire packet epoch v1" || e as uint64 big-endian) after. Any epoch's
// key is computed directly (no chain), so a gap of lost packets costs
// nothing and a forged counter costs one derivation.
func epochKey(k *[32]byte, e uint64) [32]byte {
	if e == 0 {
		return *k
	}
	var out [32]byte
	info := binary.BigEndian.AppendUint64([]byte(epochInfo), e)
	// Reading 32 bytes from HKDF-SHA256 cannot fail.
	_, _ = io.ReadFull(hkdf.New(sha256.New, k[:], nil, info), out[:])
	return out
}

// epochAEAD is one epoch's AEAD.
type epochAEAD struct {
	epoch uint64
	aead  cipher.AEAD
}

// epochs holds a packet cipher's keys: the session key, from which each
// epoch's is derived, and the AEADs of the newest epoch in use and the one
// before it (a replay window of ReplayWindow counters, much smaller than
// PacketsPerKey, reaches back at most one epoch). Safe for concurrent use;
// the fast path is two atomic loads.
type epochs struct {
	suite Suite
	key   [32]byte // the session key; epochs derive from it
	mu    sync.Mutex
	cur   atomic.Pointer[epochAEAD]
	prev  atomic.Pointer[epochAEAD]
}

func newEpochs(suite Suite, key *[32]byte) *epochs {
	e := &epochs{suite: suite, key: *key}
	e.cur.Store(&epochAEAD{0, suite.AEAD(key)})
	return e
}

// get returns the AEAD of epoch n: the current or previous one, or a new
// one that is not yet installed (see install).
func (e *epochs) get(n uint64) *epochAEAD {
	if p := e.cur.Load(); p.epoch == n {
		return p
	}
	if p := e.prev.Load(); p != nil && p.epoch == n {
		return p
	}
	k := epochKey(&e.key, n)
	p := &epochAEAD{n, e.suite.AEAD(&k)}
	k = [32]byte{}
	return p
}

// install makes p the current epoch if it is newer than the current one.
// The Sealer installs an epoch when its counter reaches it; the Opener
// only after a packet of it authenticated, so a forged counter never
// replaces a key.
func (e *epochs) install(p *epochAEAD) {
	if p.epoch <= e.cur.Load().epoch { // the fast path: nothing new
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := e.cur.Load()
	if p.epoch <= cur.epoch {
		return
	}
	if p.epoch == cur.epoch+1 {
		e.prev.Store(cur)
	} else {
		e.prev.Store(nil) // derived again if a straggler of p.epoch-1 comes
	}
	e.cur.Store(p)
}

// current returns the newest epoch installed.
func (e *epochs) current() uint64 { return e.cur.Load().epoch }
