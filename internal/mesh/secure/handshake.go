package secure

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"

	"github.com/skywire-mesh/skywire/keys"
)

// protocolName starts the transcript hash. It names the construction; it is
// Noise IK in shape but not claimed to interoperate with Noise libraries.
const protocolName = "skywire_IK_25519_ChaChaPoly_SHA256_v1"

// Handshake wire versions, the first byte of every message. Version 1
// (Config.Suites nil) uses ChaCha20-Poly1305 for the session and never
// re-keys; version 2 offers suites in msg1, names the choice in msg2 and
// re-keys (strict use only). A responder with Suites answers either
// version in kind.
const (
	Version1 = 1
	Version2 = 2
)

// Message types, the second byte of every handshake message.
const (
	typeMsg1    = 1
	typeMsg2    = 2
	typeRefusal = 3
)

const (
	keyLen     = 32
	tagLen     = chacha20poly1305.Overhead
	tsLen      = 8
	headerLen  = 2
	Msg1Len    = headerLen + keyLen + (keyLen + tagLen) + (tsLen + tagLen) // 106 (version 1)
	Msg2Len    = headerLen + keyLen + tagLen                               // 50 (version 1)
	RefusalLen = headerLen + tagLen                                        // 18
	// Version 2 adds the offer (1 byte) to msg1's payload and the choice
	// (1 byte) to msg2's.
	Msg1LenV2 = Msg1Len + 1 // 107
	Msg2LenV2 = Msg2Len + 1 // 51
	// MaxHandshakeLen bounds any handshake message; transports may use it
	// to bound their reads.
	MaxHandshakeLen = Msg1LenV2
)

// Config is one side's handshake configuration.
type Config struct {
	// Local is this side's static key pair. Required.
	Local keys.KeyPair
	// Prologue separates uses of the handshake ("skywire-link-v1",
	// "skywire-session-v1"). Both sides must use the same one. Required.
	Prologue string
	// Accept is called by the responder with the initiator's static key
	// after the key has been authenticated. A non-nil error refuses the
	// handshake (Respond returns an error wrapping ErrRefused). Nil accepts
	// every authenticated key. Unused by the initiator.
	Accept func(remote keys.PublicKey) error
	// Rand is the source of ephemeral keys; nil means crypto/rand. Tests
	// set it to produce test vectors.
	Rand io.Reader
	// Now is the clock for msg1's timestamp; nil means time.Now.
	Now func() time.Time
	// Suites, if not nil, makes the handshake version 2: the initiator
	// offers these AEADs for the session, the responder picks the first of
	// its own that was offered, and the session re-keys (strict use only).
	// The list must contain ChaCha20Poly1305. Nil is version 1
	// (ChaCha20-Poly1305, no re-keying), which a responder with nil
	// Suites is also limited to. DefaultSuites suits most callers.
	Suites []Suite
	// Packets makes a version 2 session a datagram session: its ciphers
	// are for SealExplicit/OpenExplicit (explicit counters, replay
	// window) and change key every PacketsPerKey counters (a key per
	// epoch, derived from the session key), instead of re-keying an
	// ordered stream by bytes. Both sides must set it alike (it is mixed
	// into the version 2 transcript, so a mismatch fails the handshake).
	// It needs Suites; a version 1 session is usable for packets anyway.
	Packets bool
}

// packetsLabel is mixed into a version 2 transcript with Config.Packets.
const packetsLabel = "skywire packets"

func (c *Config) validate() error {
	if c.Local.Secret.IsZero() {
		return fmt.Errorf("%w: no local secret key", ErrConfig)
	}
	if c.Local.Secret.Public() != c.Local.Public {
		return fmt.Errorf("%w: local public key does not match the secret key", ErrConfig)
	}
	if c.Prologue == "" {
		return fmt.Errorf("%w: empty prologue (name the use, e.g. %q)", ErrConfig, "skywire-link-v1")
	}
	if c.Packets && c.Suites == nil {
		return fmt.Errorf("%w: Packets needs Suites (a version 2 handshake)", ErrConfig)
	}
	if c.Suites != nil {
		return validateSuites(c.Suites)
	}
	return nil
}

func (c *Config) version() byte {
	if c.Suites != nil {
		return Version2
	}
	return Version1
}

func (c *Config) rand() io.Reader {
	if c.Rand != nil {
		return c.Rand
	}
	return rand.Reader
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Session is the result of a completed handshake.
type Session struct {
	// Remote is the peer's authenticated static key.
	Remote keys.PublicKey
	// Send seals messages to the peer; Recv opens messages from it.
	Send *Sealer
	Recv *Opener
	// PeerTime is the initiator's clock from msg1 (set on the responder's
	// side only; zero on the initiator's).
	PeerTime time.Time
	// Hash is the final transcript hash: equal on both sides, unique to this
	// handshake. Usable for channel binding.
	Hash [32]byte
	// Suite is the AEAD of Send and Recv; Version the handshake's (2:
	// Send and Recv re-key, and are strict only, or with Config.Packets
	// explicit only).
	Suite   Suite
	Version byte
}

// symmetricState is the Noise symmetric state: chaining key, transcript
// hash, and the current handshake key with its nonce counter.
type symmetricState struct {
	ck [32]byte
	h  [32]byte
	k  [32]byte
	n  uint64
}

func newSymmetric(prologue string, responderStatic *keys.PublicKey) symmetricState {
	var s symmetricState
	s.h = sha256.Sum256([]byte(protocolName))
	s.ck = s.h
	s.mixHash([]byte(prologue))
	s.mixHash(responderStatic[:])
	return s
}

func (s *symmetricState) mixHash(data []byte) {
	d := sha256.New()
	d.Write(s.h[:])
	d.Write(data)
	d.Sum(s.h[:0])
}

// mixKey is Noise's MixKey: HKDF with the chaining key as salt.
func (s *symmetricState) mixKey(ikm []byte) {
	r := hkdf.New(sha256.New, ikm, s.ck[:], nil)
	// Reading 64 bytes from HKDF-SHA256 cannot fail.
	_, _ = io.ReadFull(r, s.ck[:])
	_, _ = io.ReadFull(r, s.k[:])
	s.n = 0
}

func (s *symmetricState) nonce() []byte {
	var nonce [chacha20poly1305.NonceSize]byte
	binary.LittleEndian.PutUint64(nonce[4:], s.n)
	s.n++
	return nonce[:]
}

func (s *symmetricState) encryptAndHash(dst, plaintext []byte) []byte {
	aead := ChaCha20Poly1305.AEAD(&s.k)
	start := len(dst)
	dst = aead.Seal(dst, s.nonce(), plaintext, s.h[:])
	s.mixHash(dst[start:])
	return dst
}

func (s *symmetricState) decryptAndHash(ciphertext []byte) ([]byte, error) {
	aead := ChaCha20Poly1305.AEAD(&s.k)
	p, err := aead.Open(nil, s.nonce(), ciphertext, s.h[:])
	if err != nil {
		return nil, err
	}
	s.mixHash(ciphertext)
	return p, nil
}

// split derives the two transport keys: initiator->responder, responder->initiator.
func (s *symmetricState) split() (i2r, r2i [32]byte) {
	r := hkdf.New(sha256.New, nil, s.ck[:], nil)
	_, _ = io.ReadFull(r, i2r[:])
	_, _ = io.ReadFull(r, r2i[:])
	return i2r, r2i
}

func (s *symmetricState) wipe() { *s = symmetricState{} }

func dh(secret *keys.SecretKey, public []byte) ([]byte, error) {
	out, err := curve25519.X25519(secret[:], public)
	if err != nil { // low-order point: all-zero shared secret
		return nil, fmt.Errorf("%w: bad public key: %v", ErrHandshake, err)
	}
	return out, nil
}

// Initiator is the initiator's state between Initiate and Finish.
type Initiator struct {
	version  byte
	offer    byte // version 2: the suites offered
	packets  bool // version 2: a packet session (Config.Packets)
	sym      symmetricState
	local    keys.KeyPair
	eph      keys.KeyPair
	remote   keys.PublicKey
	finished bool
}

// Initiate starts a handshake with the responder whose static key is remote.
// It returns msg1 (Msg1Len bytes) to send and the state that Finish needs.
func Initiate(cfg Config, remote keys.PublicKey) (msg1 []byte, st *Initiator, err error) {
	if err := cfg.validate(); err != nil {
		return nil, nil, fmt.Errorf("initiate handshake: %w", err)
	}
	if remote.IsZero() {
		return nil, nil, fmt.Errorf("initiate handshake: %w: zero remote key", ErrConfig)
	}
	eph, err := keys.GenerateFrom(cfg.rand())
	if err != nil {
		return nil, nil, fmt.Errorf("initiate handshake: ephemeral key: %w", err)
	}
	st = &Initiator{version: cfg.version(), offer: offerMask(cfg.Suites), packets: cfg.Packets, sym: newSymmetric(cfg.Prologue, &remote), local: cfg.Local, eph: eph, remote: remote}
	if cfg.Packets {
		st.sym.mixHash([]byte(packetsLabel))
	}
	msg1 = make([]byte, 0, Msg1LenV2)
	msg1 = append(msg1, st.version, typeMsg1)
	st.sym.mixHash(msg1[:headerLen])
	// e
	msg1 = append(msg1, eph.Public[:]...)
	st.sym.mixHash(eph.Public[:])
	// es
	shared, err := dh(&eph.Secret, remote[:])
	if err != nil {
		return nil, nil, fmt.Errorf("initiate handshake: es: %w", err)
	}
	st.sym.mixKey(shared)
	// s
	msg1 = st.sym.encryptAndHash(msg1, cfg.Local.Public[:])
	// ss
	shared, err = dh(&cfg.Local.Secret, remote[:])
	if err != nil {
		return nil, nil, fmt.Errorf("initiate handshake: ss: %w", err)
	}
	st.sym.mixKey(shared)
	// payload: timestamp, and in version 2 the offer
	payload := binary.BigEndian.AppendUint64(make([]byte, 0, tsLen+1), uint64(cfg.now().UnixNano()))
	if st.version == Version2 {
		payload = append(payload, st.offer)
	}
	msg1 = st.sym.encryptAndHash(msg1, payload)
	return msg1, st, nil
}

// Finish processes the responder's msg2 and returns the session. It returns
// an error wrapping ErrRefused if msg2 is the responder's authenticated
// refusal, and ErrHandshake for anything else that is not a valid msg2.
//
// A message that does not authenticate leaves the Initiator unchanged, so
// over a lossy or hostile datagram transport a forged or stale msg2 cannot
// stop the genuine one from finishing the handshake later. A success or an
// authenticated refusal ends the Initiator: its secrets are erased and
// further calls fail. Call Discard to erase them when giving up.
func (st *Initiator) Finish(msg2 []byte) (*Session, error) {
	if st.finished {
		return nil, fmt.Errorf("finish handshake: %w: already finished", ErrHandshake)
	}
	if len(msg2) < headerLen {
		return nil, fmt.Errorf("finish handshake: %w: message of %d bytes", ErrHandshake, len(msg2))
	}
	if msg2[0] != st.version {
		return nil, fmt.Errorf("finish handshake: %w: reply of version %d to a version %d handshake", ErrHandshake, msg2[0], st.version)
	}
	sym := st.sym // work on a copy: st stays usable if msg2 is bad
	defer sym.wipe()
	switch msg2[1] {
	case typeMsg2:
	case typeRefusal:
		if len(msg2) != RefusalLen {
			return nil, fmt.Errorf("finish handshake: %w: refusal of %d bytes, want %d", ErrHandshake, len(msg2), RefusalLen)
		}
		sym.mixHash(msg2[:headerLen])
		if _, err := sym.decryptAndHash(msg2[headerLen:]); err != nil {
			return nil, fmt.Errorf("finish handshake: %w: forged refusal", ErrHandshake)
		}
		st.Discard()
		return nil, fmt.Errorf("finish handshake: %s %w", st.remote.Short(), ErrRefused)
	default:
		return nil, fmt.Errorf("finish handshake: %w: unexpected message type %d", ErrHandshake, msg2[1])
	}
	want := Msg2Len
	if st.version == Version2 {
		want = Msg2LenV2
	}
	if len(msg2) != want {
		return nil, fmt.Errorf("finish handshake: %w: msg2 of %d bytes, want %d", ErrHandshake, len(msg2), want)
	}
	sym.mixHash(msg2[:headerLen])
	re := msg2[headerLen : headerLen+keyLen]
	sym.mixHash(re)
	// ee
	shared, err := dh(&st.eph.Secret, re)
	if err != nil {
		return nil, fmt.Errorf("finish handshake: ee: %w", err)
	}
	sym.mixKey(shared)
	// se
	shared, err = dh(&st.local.Secret, re)
	if err != nil {
		return nil, fmt.Errorf("finish handshake: se: %w", err)
	}
	sym.mixKey(shared)
	choice, err := sym.decryptAndHash(msg2[headerLen+keyLen:])
	if err != nil {
		return nil, fmt.Errorf("finish handshake: %w: msg2 does not authenticate as %s", ErrHandshake, st.remote.Short())
	}
	suite := ChaCha20Poly1305
	if st.version == Version2 {
		// Authenticated, so only the responder can have chosen it; a
		// choice we did not offer is its bug, not an attack.
		if suite = Suite(choice[0]); !suite.known() || st.offer&(1<<(suite-1)) == 0 {
			return nil, fmt.Errorf("finish handshake: %w: %s chose %v, which was not offered (%s)", ErrHandshake, st.remote.Short(), suite, offerString(st.offer))
		}
	}
	i2r, r2i := sym.split()
	s := &Session{Remote: st.remote, Hash: sym.h, Suite: suite, Version: st.version}
	s.Send, s.Recv = newCiphers(suite, st.version, st.packets, &i2r, &r2i)
	st.Discard()
	return s, nil
}

// Discard erases the Initiator's secrets; Finish fails afterwards.
func (st *Initiator) Discard() {
	st.finished = true
	st.wipe()
}

func (st *Initiator) wipe() {
	st.sym.wipe()
	st.eph = keys.KeyPair{}
	st.local.Secret = keys.SecretKey{}
}

// Respond processes msg1 and, if it authenticates and cfg.Accept accepts the
// initiator, returns msg2 (Msg2Len bytes) to send back and the session.
//
// If Accept refuses, Respond returns an error wrapping ErrRefused together
// with a non-nil refusal message (RefusalLen bytes) that the caller should
// send: it is authenticated, so the initiator's Finish can report ErrRefused
// instead of a generic failure. It is only ever produced for an initiator
// that proved its static key. On any other error msg2 is nil and nothing
// should be sent (an unauthenticated prober learns nothing).
func Respond(cfg Config, msg1 []byte) (msg2 []byte, s *Session, err error) {
	if err := cfg.validate(); err != nil {
		return nil, nil, fmt.Errorf("respond to handshake: %w", err)
	}
	if len(msg1) < headerLen {
		return nil, nil, fmt.Errorf("respond to handshake: %w: msg1 of %d bytes", ErrHandshake, len(msg1))
	}
	version := msg1[0]
	want := Msg1Len
	switch {
	case version == Version2 && cfg.Suites != nil:
		want = Msg1LenV2
	case version != Version1:
		return nil, nil, fmt.Errorf("respond to handshake: %w: unsupported version %d (this side speaks %d)", ErrHandshake, version, cfg.version())
	}
	if len(msg1) != want {
		return nil, nil, fmt.Errorf("respond to handshake: %w: version %d msg1 of %d bytes, want %d", ErrHandshake, version, len(msg1), want)
	}
	if msg1[1] != typeMsg1 {
		return nil, nil, fmt.Errorf("respond to handshake: %w: unexpected message type %d", ErrHandshake, msg1[1])
	}
	sym := newSymmetric(cfg.Prologue, &cfg.Local.Public)
	defer sym.wipe()
	packets := version == Version2 && cfg.Packets
	if packets {
		sym.mixHash([]byte(packetsLabel))
	}
	sym.mixHash(msg1[:headerLen])
	p := msg1[headerLen:]
	re := p[:keyLen]
	sym.mixHash(re)
	// es
	shared, err := dh(&cfg.Local.Secret, re)
	if err != nil {
		return nil, nil, fmt.Errorf("respond to handshake: es: %w", err)
	}
	sym.mixKey(shared)
	// s
	p = p[keyLen:]
	rsBytes, err := sym.decryptAndHash(p[:keyLen+tagLen])
	if err != nil {
		return nil, nil, fmt.Errorf("respond to handshake: %w: msg1 is not for this key or is corrupt", ErrHandshake)
	}
	var rs keys.PublicKey
	copy(rs[:], rsBytes)
	// ss
	shared, err = dh(&cfg.Local.Secret, rs[:])
	if err != nil {
		return nil, nil, fmt.Errorf("respond to handshake: ss: %w", err)
	}
	sym.mixKey(shared)
	// payload
	payload, err := sym.decryptAndHash(p[keyLen+tagLen:])
	if err != nil {
		return nil, nil, fmt.Errorf("respond to handshake: %w: initiator %s did not prove its key", ErrHandshake, rs.Short())
	}
	peerTime := time.Unix(0, int64(binary.BigEndian.Uint64(payload)))
	suite := ChaCha20Poly1305
	if version == Version2 {
		var ok bool
		if suite, ok = choose(cfg.Suites, payload[tsLen]); !ok {
			return nil, nil, fmt.Errorf("respond to handshake: %w: %s offers no cipher suite of ours (%s, we speak %v)", ErrHandshake, rs.Short(), offerString(payload[tsLen]), cfg.Suites)
		}
	}
	if cfg.Accept != nil {
		if aerr := cfg.Accept(rs); aerr != nil {
			refusal := make([]byte, 0, RefusalLen)
			refusal = append(refusal, version, typeRefusal)
			sym.mixHash(refusal)
			refusal = sym.encryptAndHash(refusal, nil)
			return refusal, nil, fmt.Errorf("respond to handshake: %w %s: %w", ErrRefused, rs.Short(), aerr)
		}
	}
	eph, err := keys.GenerateFrom(cfg.rand())
	if err != nil {
		return nil, nil, fmt.Errorf("respond to handshake: ephemeral key: %w", err)
	}
	defer func() { eph = keys.KeyPair{} }()
	msg2 = make([]byte, 0, Msg2LenV2)
	msg2 = append(msg2, version, typeMsg2)
	sym.mixHash(msg2[:headerLen])
	msg2 = append(msg2, eph.Public[:]...)
	sym.mixHash(eph.Public[:])
	// ee
	shared, err = dh(&eph.Secret, re)
	if err != nil {
		return nil, nil, fmt.Errorf("respond to handshake: ee: %w", err)
	}
	sym.mixKey(shared)
	// se
	shared, err = dh(&eph.Secret, rs[:])
	if err != nil {
		return nil, nil, fmt.Errorf("respond to handshake: se: %w", err)
	}
	sym.mixKey(shared)
	var choice []byte
	if version == Version2 {
		choice = []byte{byte(suite)}
	}
	msg2 = sym.encryptAndHash(msg2, choice)
	i2r, r2i := sym.split()
	s = &Session{Remote: rs, PeerTime: peerTime, Hash: sym.h, Suite: suite, Version: version}
	s.Send, s.Recv = newCiphers(suite, version, packets, &r2i, &i2r)
	return msg2, s, nil
}

// newCiphers makes a session's two directions: version 1 never re-keys;
// version 2 re-keys by bytes (strict, a stream) or by counter epoch
// (explicit, packets). It erases the keys.
func newCiphers(suite Suite, version byte, packets bool, send, recv *[32]byte) (*Sealer, *Opener) {
	if packets {
		return newPacketSealer(suite, send), newPacketOpener(suite, recv)
	}
	rekey := version == Version2
	return newSealer(suite, send, rekey), newOpener(suite, recv, rekey)
}
