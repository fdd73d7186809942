package secure

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

var (
	bothSuites = []Suite{AES256GCM, ChaCha20Poly1305}
	chachaOnly = []Suite{ChaCha20Poly1305}
)

func TestSuiteNegotiation(t *testing.T) {
	a, b := tstest.KeyPair(t), tstest.KeyPair(t)
	tests := []struct {
		name        string
		offer, mine []Suite
		want        Suite
		version     byte
		err         error
	}{
		{"both have AES", bothSuites, bothSuites, AES256GCM, Version2, nil},
		{"initiator without AES", chachaOnly, bothSuites, ChaCha20Poly1305, Version2, nil},
		{"responder without AES", bothSuites, chachaOnly, ChaCha20Poly1305, Version2, nil},
		{"responder's preference wins", bothSuites, []Suite{ChaCha20Poly1305, AES256GCM}, ChaCha20Poly1305, Version2, nil},
		{"version 1 initiator, version 2 responder", nil, bothSuites, ChaCha20Poly1305, Version1, nil},
		{"version 1 on both sides", nil, nil, ChaCha20Poly1305, Version1, nil},
		{"version 2 initiator, version 1 responder", bothSuites, nil, 0, 0, ErrHandshake},
		{"offer without ChaCha20-Poly1305", []Suite{AES256GCM}, bothSuites, 0, 0, ErrConfig},
		{"suite listed twice", []Suite{ChaCha20Poly1305, ChaCha20Poly1305}, bothSuites, 0, 0, ErrConfig},
		{"unknown suite", []Suite{ChaCha20Poly1305, 7}, bothSuites, 0, 0, ErrConfig},
		{"empty list", []Suite{}, bothSuites, 0, 0, ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ic := Config{Local: a, Prologue: "p", Suites: tt.offer}
			rc := Config{Local: b, Prologue: "p", Suites: tt.mine}
			is, rs := negotiate(t, ic, rc, b.Public, tt.err, tt.want, tt.version)
			if is == nil {
				return
			}
			checkPair(t, is, rs)
			checkPair(t, rs, is)
		})
	}
}

// negotiate runs the handshake of ic and rc and checks its outcome: with
// wantErr, that it failed with that error (and then it returns nil
// sessions); otherwise that both sides agreed on suite want at version.
func negotiate(t *testing.T, ic, rc Config, expect keys.PublicKey, wantErr error, want Suite, version byte) (is, rs *Session) {
	t.Helper()
	is, rs, err := handshake(t, ic, rc, expect)
	if wantErr != nil {
		if !errors.Is(err, wantErr) {
			t.Fatalf("err = %v, want %v", err, wantErr)
		}
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if is.Suite != want || rs.Suite != want || is.Version != version || rs.Version != version {
		t.Fatalf("initiator %v v%d, responder %v v%d; want %v v%d", is.Suite, is.Version, rs.Suite, rs.Version, want, version)
	}
	return is, rs
}

// The offer and the choice travel inside the handshake's authenticated
// encryption: flipping any bit of a version 2 msg1 or msg2 (a downgrade
// attempt among them) fails the handshake.
func TestSuiteDowngradeDetected(t *testing.T) {
	ic := Config{Local: tstest.KeyPair(t), Prologue: "p", Suites: bothSuites}
	rc := Config{Local: tstest.KeyPair(t), Prologue: "p", Suites: bothSuites}
	msg1, _ := initiate(t, ic, rc.Local.Public)
	if len(msg1) != Msg1LenV2 || msg1[0] != Version2 {
		t.Fatalf("version 2 msg1: %d bytes, version %d", len(msg1), msg1[0])
	}
	for i := range len(msg1) * 8 {
		m := bytes.Clone(msg1)
		m[i/8] ^= 1 << (i % 8)
		if _, _, err := Respond(rc, m); !errors.Is(err, ErrHandshake) {
			t.Fatalf("msg1 bit %d flipped: err = %v", i, err)
		}
	}
	for i := range Msg2LenV2 * 8 {
		msg1, st := initiate(t, ic, rc.Local.Public)
		m, _ := respond(t, rc, msg1)
		m[i/8] ^= 1 << (i % 8)
		if _, err := st.Finish(m); !errors.Is(err, ErrHandshake) {
			t.Fatalf("msg2 bit %d flipped: err = %v", i, err)
		}
	}
	// A version 1 reply (or refusal) to a version 2 msg1 is refused, so a
	// man in the middle cannot answer in the old version either.
	_, st := initiate(t, ic, rc.Local.Public)
	if _, err := st.Finish(append([]byte{Version1, typeMsg2}, make([]byte, Msg2Len-2)...)); !errors.Is(err, ErrHandshake) {
		t.Fatalf("version 1 msg2 to a version 2 initiator: %v", err)
	}
}

func TestChooseIgnoresUnknownSuites(t *testing.T) {
	if s, ok := choose(bothSuites, 0xfc|1); !ok || s != ChaCha20Poly1305 {
		t.Fatalf("offer of ChaCha and unknown suites: %v %v", s, ok)
	}
	if _, ok := choose(bothSuites, 0xfc); ok {
		t.Fatal("only unknown suites offered, but one was chosen")
	}
	if got := offerString(3); got != "[chacha20poly1305 aes256gcm]" {
		t.Fatalf("offerString(3) = %q", got)
	}
}

// withRekeyAfter lowers the re-key interval for one test.
func withRekeyAfter(t *testing.T, n uint64) {
	t.Cleanup(SetRekeyAfterForTest(n))
}

// Both ends of a version 2 session replace their key after the same
// plaintext bytes, without a message; an end that did not re-key can no
// longer read from the first message after the switch.
func TestRekey(t *testing.T) {
	withRekeyAfter(t, 100)
	for _, suite := range bothSuites {
		t.Run(suite.String(), func(t *testing.T) {
			var k1, k2, k3 [32]byte
			for i := range k1 {
				k1[i], k2[i], k3[i] = byte(i), byte(i), byte(i)
			}
			s := newSealer(suite, &k1, true)
			o := newOpener(suite, &k2, true)
			stale := newOpener(suite, &k3, false)
			staleOK := true
			for i := range 40 {
				msg := bytes.Repeat([]byte{byte(i)}, 30) // 30 bytes: the 4th message is the first under a new key
				ct := s.Seal(nil, msg, []byte("ad"))
				pt, err := o.Open(nil, ct, []byte("ad"))
				if err != nil || !bytes.Equal(pt, msg) {
					t.Fatalf("message %d: %v", i, err)
				}
				_, err = stale.Open(nil, ct, []byte("ad"))
				if i < 4 && err != nil {
					t.Fatalf("message %d, before the first re-key, failed without re-keying: %v", i, err)
				}
				if i == 4 && err == nil {
					t.Fatal("message 4 was sealed under the first key: no re-key")
				}
				staleOK = staleOK && err == nil
			}
			// 40 × 30 bytes = 1,200: a re-key after every 100 bytes counted
			// (the count restarts at each switch: 4 messages each).
			if s.Rekeys() != 10 || o.Rekeys() != 10 {
				t.Fatalf("re-keys: sealer %d, opener %d; want 10", s.Rekeys(), o.Rekeys())
			}
		})
	}
}

// The ratchet is HKDF-SHA256(ikm = key, salt = none, info = "skywire
// rekey v1"); the expected keys were computed independently (Python's
// hmac and hashlib, RFC 5869) and are in docs/crypto.md.
func TestRatchetVector(t *testing.T) {
	var k [32]byte
	for i := range k {
		k[i] = byte(i)
	}
	ratchet(&k)
	if got := fmt.Sprintf("%x", k); got != "846fe9ae1db6f40ea8906f734aa88beaf91f2b15c45a90b238ab0646e4ece759" {
		t.Fatalf("first ratchet: %s", got)
	}
	ratchet(&k)
	if got := fmt.Sprintf("%x", k); got != "ae7adac02998fa3849d6404245ecc1b2f34253e2f1b4a38803bd6a7218ac8a45" {
		t.Fatalf("second ratchet: %s", got)
	}
}

// The AES256GCM suite is the standard library's AES-256-GCM with the same
// nonces as ChaCha20-Poly1305 (4 zero bytes, counter little-endian).
func TestAESGCMIsStandard(t *testing.T) {
	var k, k2 [32]byte
	for i := range k {
		k[i], k2[i] = byte(i), byte(i)
	}
	s := newSealer(AES256GCM, &k, false)
	block, _ := aes.NewCipher(k2[:])
	gcm, _ := cipher.NewGCM(block)
	s.Seal(nil, []byte("first"), nil)
	got := s.Seal(nil, []byte("second"), []byte("ad"))
	nonce := make([]byte, 12)
	nonce[4] = 1
	if want := gcm.Seal(nil, nonce, []byte("second"), []byte("ad")); !bytes.Equal(got, want) {
		t.Fatalf("message 1: %x, want %x", got, want)
	}
}

// A version 2 cipher re-keys by counting an ordered stream, so it is for
// strict use only.
func TestRekeyingIsStrictOnly(t *testing.T) {
	is, rs, err := handshake(t, Config{Local: tstest.KeyPair(t), Prologue: "p", Suites: chachaOnly},
		Config{Local: tstest.KeyPair(t), Prologue: "p", Suites: chachaOnly}, keys.PublicKey{})
	if err == nil || is != nil || rs != nil {
		t.Fatal("zero remote accepted")
	}
	a, b := tstest.KeyPair(t), tstest.KeyPair(t)
	is, rs, err = handshake(t, Config{Local: a, Prologue: "p", Suites: chachaOnly}, Config{Local: b, Prologue: "p", Suites: chachaOnly}, b.Public)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Recv.OpenExplicit(nil, make([]byte, 40)); !errors.Is(err, ErrMode) {
		t.Fatalf("OpenExplicit on a re-keying opener: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("SealExplicit on a re-keying sealer did not panic")
		}
	}()
	is.Send.SealExplicit(nil, []byte("x"))
}

// DefaultSuites always includes ChaCha20-Poly1305 and offers AES-256-GCM
// only on CPUs with AES instructions.
func TestDefaultSuites(t *testing.T) {
	d := DefaultSuites()
	if err := validateSuites(d); err != nil {
		t.Fatal(err)
	}
	if (d[0] == AES256GCM) != hasAESHardware {
		t.Fatalf("DefaultSuites() = %v with AES hardware %v", d, hasAESHardware)
	}
	t.Logf("this CPU: %v", d)
}

// Version 2 test vector (docs/crypto.md): the version 1 keys and clock,
// both sides offering AES-256-GCM then ChaCha20-Poly1305.
func TestHandshakeVectorV2(t *testing.T) {
	a, b := tstest.SeededKeyPair(t, 0), tstest.SeededKeyPair(t, 64)
	seedIE, seedRE := tstest.Counting(128), tstest.Counting(192)
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }
	msg1, st := initiate(t, Config{Local: a, Prologue: "skywire-link-v2", Rand: &seedIE, Now: now, Suites: bothSuites}, b.Public)
	msg2, rs := respond(t, Config{Local: b, Prologue: "skywire-link-v2", Rand: &seedRE, Suites: bothSuites}, msg1)
	is, err := st.Finish(msg2)
	if err != nil {
		t.Fatal(err)
	}
	sealed := is.Send.Seal(nil, []byte("hello"), []byte("ad"))
	if _, err := rs.Recv.Open(nil, sealed, []byte("ad")); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{"msg1": msg1, "msg2": msg2, "sealed": sealed} {
		if want := vectorV2[name]; fmt.Sprintf("%x", got) != want {
			t.Errorf("%s changed:\n got %x\nwant %s", name, got, want)
		}
	}
}

var vectorV2 = map[string]string{
	"msg1":   "0201493e82fc74464a59268817623d2053c5eb8e2cc4a988b4fee179ec6b010d531d975d562d95a33c9ce51ebe48611dc4382e38c3fe44f818848db26783e7ebed5bdb218cda1b6166adf267abbb4ce229e2507932c2d643c4a17d01b8046d1ca05db115bbd6a81bd16b2c",
	"msg2":   "0202dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d44f2a09cce733c9de3035b97a40c8844535a",
	"sealed": "804186f3659561b866982cfafba676707bb978d9d7",
}
