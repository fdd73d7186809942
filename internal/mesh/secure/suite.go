package secure

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
	"golang.org/x/sys/cpu"
)

// Suite is an AEAD that a version 2 handshake can agree on for the
// session's messages. The handshake itself always uses ChaCha20-Poly1305.
type Suite uint8

// Suites. Their numbers are on the wire (msg1's offer is a bit mask, bit
// Suite-1; msg2 names the choice).
const (
	ChaCha20Poly1305 Suite = 1
	AES256GCM        Suite = 2
)

func (s Suite) String() string {
	switch s {
	case ChaCha20Poly1305:
		return "chacha20poly1305"
	case AES256GCM:
		return "aes256gcm"
	}
	return fmt.Sprintf("suite(%d)", uint8(s))
}

func (s Suite) known() bool { return s == ChaCha20Poly1305 || s == AES256GCM }

// hasAESHardware reports whether this CPU has instructions for both halves
// of AES-GCM (AES rounds and carry-less multiplication), which make Go's
// AES-GCM fast and constant-time.
var hasAESHardware = cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ ||
	cpu.ARM64.HasAES && cpu.ARM64.HasPMULL

// DefaultSuites returns the suites this machine offers, best first:
// AES-256-GCM where the CPU has AES instructions (measured 1.9× faster
// than ChaCha20-Poly1305 at 1,400 bytes and 3–4× at 16–64 KiB on x86-64
// with AES-NI; docs/crypto.md), then ChaCha20-Poly1305, which is fast
// everywhere and constant-time without special instructions (small ARM
// boards without the crypto extensions keep it).
func DefaultSuites() []Suite {
	if hasAESHardware {
		return []Suite{AES256GCM, ChaCha20Poly1305}
	}
	return []Suite{ChaCha20Poly1305}
}

// validateSuites checks a Config.Suites list: known suites, no repeats,
// ChaCha20-Poly1305 among them (so that two version 2 peers always share
// one).
func validateSuites(suites []Suite) error {
	seen := map[Suite]bool{}
	for _, s := range suites {
		if !s.known() {
			return fmt.Errorf("%w: unknown cipher suite %v", ErrConfig, s)
		}
		if seen[s] {
			return fmt.Errorf("%w: cipher suite %v listed twice", ErrConfig, s)
		}
		seen[s] = true
	}
	if !seen[ChaCha20Poly1305] {
		return fmt.Errorf("%w: cipher suites %v lack %v, which every peer speaks", ErrConfig, suites, ChaCha20Poly1305)
	}
	return nil
}

// offerMask is msg1's offer: bit Suite-1 for every suite offered.
func offerMask(suites []Suite) byte {
	var m byte
	for _, s := range suites {
		m |= 1 << (s - 1)
	}
	return m
}

// choose returns the responder's first suite that the offer contains.
// Unknown bits (suites of a later version) are ignored.
func choose(mine []Suite, offer byte) (Suite, bool) {
	for _, s := range mine {
		if offer&(1<<(s-1)) != 0 {
			return s, true
		}
	}
	return 0, false
}

func offerString(offer byte) string {
	var names []string
	for b := range 8 {
		if offer&(1<<b) != 0 {
			names = append(names, Suite(b+1).String())
		}
	}
	return "[" + strings.Join(names, " ") + "]"
}

// AEAD returns the AEAD of suite s with a 32-byte key.
func (s Suite) AEAD(key *[32]byte) cipher.AEAD {
	if s == AES256GCM {
		block, _ := aes.NewCipher(key[:]) // 32-byte key: cannot fail
		gcm, _ := cipher.NewGCM(block)    // standard nonce and tag sizes: cannot fail
		return gcm
	}
	aead, _ := chacha20poly1305.New(key[:]) // 32-byte key: cannot fail
	return aead
}

// RekeyAfterBytes is how many plaintext bytes a re-keying Sealer seals
// (and its Opener opens) under one key before both replace it. 2^34 bytes
// are at most 2^30 AES blocks (plus one per message), far inside AES-GCM's
// usage limit (2^34.5 blocks for an attacker's advantage near 2^-60,
// RFC 8446 §5.5); a 10 Gbit/s link re-keys every 14 s.
const RekeyAfterBytes = 1 << 34

// rekeyAfter is RekeyAfterBytes; tests lower it. Ciphers read it once,
// when they are made.
var rekeyAfter = func() *atomic.Uint64 {
	var v atomic.Uint64
	v.Store(RekeyAfterBytes)
	return &v
}()

// SetRekeyAfterForTest makes ciphers made from now on re-key after n bytes
// (both ends of a test must be made after the call), and returns a
// function that restores the previous value. For tests of the packages
// that carry traffic (links).
func SetRekeyAfterForTest(n uint64) (restore func()) {
	old := rekeyAfter.Swap(n)
	return func() { rekeyAfter.Store(old) }
}

// rekeyInfo separates the re-key derivation from every other use of HKDF.
const rekeyInfo = "skywire rekey v1"

// ratchet replaces *key with HKDF-SHA256(ikm = key, info = rekeyInfo), so
// that the old key cannot be computed from the new one.
func ratchet(key *[32]byte) {
	var next [32]byte
	// Reading 32 bytes from HKDF-SHA256 cannot fail.
	_, _ = io.ReadFull(hkdf.New(sha256.New, key[:], nil, []byte(rekeyInfo)), next[:])
	*key = next
}
