package secure

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"
)

// Overhead is the number of bytes Seal adds to a plaintext (the tag).
const Overhead = chacha20poly1305.Overhead

// CounterLen is the length of the explicit counter that starts every
// SealExplicit packet.
const CounterLen = 8

// ExplicitOverhead is the number of bytes SealExplicit adds to a plaintext.
const ExplicitOverhead = CounterLen + Overhead

// RejectAfterMessages is the number of messages after which a Sealer refuses
// to seal more (its counter would be close to wrapping). Reaching it takes
// centuries at line rate. The counter runs on across re-keys.
const RejectAfterMessages = 1<<64 - 1<<13

type nonceBuf = [chacha20poly1305.NonceSize]byte

func putNonce(nonce *nonceBuf, counter uint64) {
	binary.LittleEndian.PutUint64(nonce[4:], counter)
}

// noncePool provides nonce buffers to the concurrent-safe paths: a nonce on
// the stack would escape through the cipher.AEAD interface call and cost an
// allocation per message.
var noncePool = sync.Pool{New: func() any { return new(nonceBuf) }}

// Sealer encrypts one direction of a session. Seal (strict mode) is
// for one goroutine at a time, as its output order matters anyway.
// SealExplicit is safe for concurrent use, also with Seal: both share
// one atomic counter, so no nonce is ever used twice.
//
// A Sealer from a version 2 handshake re-keys: for a stream (see
// rekeyer) it is for strict use only and SealExplicit panics on it; for
// packets (Config.Packets, see epochs) it is for explicit use only and
// Seal panics on it.
type Sealer struct {
	aead    cipher.AEAD
	counter atomic.Uint64
	nonce   nonceBuf // scratch for Seal
	rk      rekeyer  // used by Seal only
	ep      *epochs  // packet sessions: the key per counter epoch
}

// rekeyer replaces a strict-mode cipher's key after every RekeyAfterBytes
// plaintext bytes: both ends count the same bytes in the same order (the
// stream is strict), so they switch at the same message without saying so.
// The new key is derived from the old one (ratchet), which is then
// forgotten: a key taken from memory later does not open earlier traffic.
type rekeyer struct {
	on     bool
	after  uint64 // rekeyAfter when made
	suite  Suite
	key    [32]byte // the current key, kept to derive the next one
	bytes  uint64   // plaintext bytes under the current key
	epochs uint64   // re-keys so far
}

func newRekeyer(suite Suite, key *[32]byte, on bool) rekeyer {
	r := rekeyer{on: on, suite: suite, after: rekeyAfter.Load()}
	if on {
		r.key = *key
	}
	return r
}

// count adds n plaintext bytes and returns a new AEAD if the key changed
// (nil otherwise).
func (r *rekeyer) count(n int) cipher.AEAD {
	if !r.on {
		return nil
	}
	if r.bytes += uint64(n); r.bytes < r.after {
		return nil
	}
	ratchet(&r.key)
	r.bytes = 0
	r.epochs++
	return r.suite.AEAD(&r.key)
}

func newSealer(suite Suite, key *[32]byte, rekey bool) *Sealer {
	s := &Sealer{aead: suite.AEAD(key), rk: newRekeyer(suite, key, rekey)}
	*key = [32]byte{}
	return s
}

func newPacketSealer(suite Suite, key *[32]byte) *Sealer {
	s := &Sealer{ep: newEpochs(suite, key)}
	*key = [32]byte{}
	return s
}

// Rekeys returns how many times the Sealer has replaced its key (for a
// packet Sealer: the newest epoch it sealed in).
func (s *Sealer) Rekeys() uint64 {
	if s.ep != nil {
		return s.ep.current()
	}
	return s.rk.epochs
}

// next returns the next counter. It panics only if the counter is exhausted,
// which cannot happen in practice (see RejectAfterMessages).
func (s *Sealer) next() uint64 {
	n := s.counter.Add(1) - 1
	if n >= RejectAfterMessages {
		panic("secure: sealer counter exhausted; the session must be re-keyed")
	}
	return n
}

// Count returns how many messages have been sealed so far.
func (s *Sealer) Count() uint64 { return s.counter.Load() }

// Seal encrypts and authenticates plaintext and additional data ad with the
// next implicit counter, appends the ciphertext (len(plaintext)+Overhead
// bytes) to dst and returns the extended slice. To seal in place, pass
// plaintext[:0] as dst. It does not allocate if dst has enough capacity.
func (s *Sealer) Seal(dst, plaintext, ad []byte) []byte {
	if s.ep != nil {
		panic("secure: Seal on a packet Sealer (Config.Packets sessions are for SealExplicit)")
	}
	putNonce(&s.nonce, s.next())
	n := len(plaintext) // plaintext may be overwritten by the seal
	dst = s.aead.Seal(dst, s.nonce[:], plaintext, ad)
	if next := s.rk.count(n); next != nil {
		s.aead = next
	}
	return dst
}

// SealExplicit encrypts plaintext with the next counter and appends the
// packet, the 8-byte big-endian counter followed by the ciphertext
// (len(plaintext)+ExplicitOverhead bytes), to dst. dst must not overlap
// plaintext. It does not allocate if dst has enough capacity.
func (s *Sealer) SealExplicit(dst, plaintext []byte) []byte {
	if s.rk.on {
		panic("secure: SealExplicit on a re-keying Sealer (version 2 handshakes are for ordered transports)")
	}
	n := s.next()
	nonce := noncePool.Get().(*nonceBuf)
	putNonce(nonce, n)
	dst = binary.BigEndian.AppendUint64(dst, n)
	aead := s.aead
	if s.ep != nil {
		p := s.ep.get(n / PacketsPerKey)
		s.ep.install(p)
		aead = p.aead
	}
	dst = aead.Seal(dst, nonce[:], plaintext, nil)
	noncePool.Put(nonce)
	return dst
}

const (
	modeUnset = iota
	modeStrict
	modeExplicit
)

// Opener decrypts one direction of a session. Strict use (Open) is
// for one goroutine at a time. Explicit use (OpenExplicit) is safe for
// concurrent use. The first call fixes the mode; calling the other mode's
// methods afterwards returns ErrMode. An Opener from a version 2 handshake
// re-keys with its Sealer and is strict only, or explicit only for a
// packet session (Config.Packets).
type Opener struct {
	aead cipher.AEAD
	mode atomic.Uint32
	ep   *epochs // packet sessions: the key per counter epoch

	// strict mode
	next  uint64
	nonce nonceBuf
	rk    rekeyer

	// explicit mode
	mu     sync.Mutex
	window replayWindow // guarded by mu
}

func newOpener(suite Suite, key *[32]byte, rekey bool) *Opener {
	o := &Opener{aead: suite.AEAD(key), rk: newRekeyer(suite, key, rekey)}
	*key = [32]byte{}
	return o
}

func newPacketOpener(suite Suite, key *[32]byte) *Opener {
	o := &Opener{ep: newEpochs(suite, key)}
	*key = [32]byte{}
	return o
}

// Rekeys returns how many times the Opener has replaced its key (for a
// packet Opener: the newest epoch it opened a packet of).
func (o *Opener) Rekeys() uint64 {
	if o.ep != nil {
		return o.ep.current()
	}
	return o.rk.epochs
}

func (o *Opener) setMode(m uint32) error {
	if o.mode.CompareAndSwap(modeUnset, m) || o.mode.Load() == m {
		return nil
	}
	return ErrMode
}

// Open authenticates and decrypts ciphertext (from Seal) with the next
// implicit counter and additional data ad, appends the plaintext to dst and
// returns it. To open in place, pass ciphertext[:0] as dst. Any forged,
// corrupted, replayed, reordered message, or one after a lost one, returns
// ErrAuth and does not advance the counter.
func (o *Opener) Open(dst, ciphertext, ad []byte) ([]byte, error) {
	if o.ep != nil {
		return nil, fmt.Errorf("open: %w: a packet Opener is explicit only", ErrMode)
	}
	if err := o.setMode(modeStrict); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if o.next >= RejectAfterMessages {
		return nil, fmt.Errorf("open: %w: counter exhausted", ErrAuth)
	}
	putNonce(&o.nonce, o.next)
	out, err := o.aead.Open(dst, o.nonce[:], ciphertext, ad)
	if err != nil {
		return nil, fmt.Errorf("open message %d: %w", o.next, ErrAuth)
	}
	o.next++
	if next := o.rk.count(len(out) - len(dst)); next != nil {
		o.aead = next
	}
	return out, nil
}

// OpenExplicit authenticates and decrypts a packet made by SealExplicit and
// appends the plaintext to dst. dst must not overlap packet, except that
// packet[CounterLen:CounterLen] (in place) is allowed. Packets may arrive in
// any order within the replay window; a duplicate or a packet older than
// the window returns ErrReplay, a forged one ErrAuth. A packet that fails
// to authenticate never moves the window.
func (o *Opener) OpenExplicit(dst, packet []byte) ([]byte, error) {
	if o.rk.on {
		return nil, fmt.Errorf("open packet: %w: a re-keying Opener is strict only", ErrMode)
	}
	if err := o.setMode(modeExplicit); err != nil {
		return nil, fmt.Errorf("open packet: %w", err)
	}
	if len(packet) < ExplicitOverhead {
		return nil, fmt.Errorf("open packet: %w: %d bytes is too short", ErrAuth, len(packet))
	}
	n := binary.BigEndian.Uint64(packet)
	if n >= RejectAfterMessages {
		return nil, fmt.Errorf("open packet %d: %w", n, ErrAuth)
	}
	o.mu.Lock()
	ok := o.window.check(n)
	o.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("open packet %d: %w", n, ErrReplay)
	}
	aead := o.aead
	var ep *epochAEAD
	if o.ep != nil {
		ep = o.ep.get(n / PacketsPerKey)
		aead = ep.aead
	}
	nonce := noncePool.Get().(*nonceBuf)
	putNonce(nonce, n)
	out, err := aead.Open(dst, nonce[:], packet[CounterLen:], nil)
	noncePool.Put(nonce)
	if err != nil {
		return nil, fmt.Errorf("open packet %d: %w", n, ErrAuth)
	}
	o.mu.Lock()
	ok = o.window.update(n)
	o.mu.Unlock()
	if !ok { // a concurrent call accepted the same packet first
		return nil, fmt.Errorf("open packet %d: %w", n, ErrReplay)
	}
	if ep != nil {
		o.ep.install(ep) // authenticated: its epoch may become current
	}
	return out, nil
}
