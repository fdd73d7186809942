// Package secure is skywire's cryptographic core: an authenticated key
// exchange usable over any message transport, and the AEAD ciphers with
// counter nonces that carry traffic after it.
//
// # Handshake
//
// The handshake follows the Noise IK pattern (two messages; the initiator
// already knows the responder's static key) built from curve25519 (X25519),
// HKDF-SHA256 and ChaCha20-Poly1305:
//
//	msg1 (initiator -> responder): e, es, s, ss, {timestamp}
//	msg2 (responder -> initiator): e, ee, se, {}
//
// Both sides contribute fresh ephemeral keys, so the session keys depend on
// ee and se and a recorded session cannot be decrypted later with stolen
// static keys (forward secrecy). The initiator proves its static key by the
// ss-keyed tag in msg1; the responder proves its static key because only the
// holder of its secret key can compute es and therefore the msg2 tag. A
// Config.Prologue (for example "skywire-link-v1" or "skywire-session-v1") is
// mixed into the transcript, so a handshake made for one use can never be
// completed as another.
//
// Replay of msg1: because the responder always contributes a fresh ephemeral
// key, a replayed msg1 can never make a responder derive keys it derived
// before, and an attacker replaying it cannot finish the handshake (it lacks
// the initiator's ephemeral secret). msg1 also carries the initiator's clock
// (Session.PeerTime) so that a responder that wants to shed the cost of
// replayed first messages can keep the newest timestamp per peer, as
// WireGuard does; see ReplayGuard.
//
// # Ciphers
//
// A Session has one Sealer (sending direction) and one Opener (receiving
// direction), each with its own key. Nonces are a 64-bit message counter.
// There are two ways to use them; one Opener must be used in one way only:
//
//   - strict (Seal/Open): for ordered transports such as TCP. The
//     counter is implicit, so any lost, replayed or reordered message fails
//     to authenticate (ErrAuth).
//   - explicit (SealExplicit/OpenExplicit): for datagrams that may be lost or
//     reordered. Each packet starts with its 8-byte counter; the Opener keeps
//     a sliding window of ReplayWindow counters, accepts reordering within it
//     and rejects duplicates and counters older than the window (ErrReplay).
//     A version 2 packet session (Config.Packets) changes key every
//     PacketsPerKey counters, each epoch's key derived from the session's.
//
// The wire formats are documented with test vectors in docs/crypto.md.
package secure

import "errors"

// Sentinel errors. Every error returned by this package wraps exactly one of
// them, so callers use errors.Is.
var (
	// ErrHandshake: a handshake message is malformed, has an unsupported
	// version, or fails to authenticate (for example because the responder
	// is not the key the initiator expected).
	ErrHandshake = errors.New("secure: handshake failed")
	// ErrRefused: the handshake authenticated, but the responder's Accept
	// callback refused the initiator's key. The initiator sees it when the
	// responder sends an authenticated refusal (see Respond).
	ErrRefused = errors.New("secure: peer refused")
	// ErrAuth: a message failed to decrypt or authenticate (forged,
	// corrupted, or, in strict mode, replayed, reordered or after a loss).
	ErrAuth = errors.New("secure: message authentication failed")
	// ErrReplay: an explicit-counter packet is a duplicate or older than the
	// replay window.
	ErrReplay = errors.New("secure: replayed or too old")
	// ErrMode: an Opener was used in both strict and explicit mode.
	ErrMode = errors.New("secure: opener used in both strict and explicit mode")
	// ErrConfig: the Config is unusable (no key, no prologue).
	ErrConfig = errors.New("secure: bad config")
)
