package secure

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

// handshake runs a full handshake and returns both sessions.
func handshake(t testing.TB, ic, rc Config, expect keys.PublicKey) (*Session, *Session, error) {
	t.Helper()
	msg1, st, err := Initiate(ic, expect)
	if err != nil {
		return nil, nil, err
	}
	msg2, rs, rerr := Respond(rc, msg1)
	if rerr != nil {
		if msg2 != nil {
			_, ierr := st.Finish(msg2)
			return nil, nil, errors.Join(rerr, ierr)
		}
		return nil, nil, rerr
	}
	is, err := st.Finish(msg2)
	if err != nil {
		return nil, nil, err
	}
	return is, rs, nil
}

func TestHandshake(t *testing.T) {
	a, b, c := tstest.KeyPair(t), tstest.KeyPair(t), tstest.KeyPair(t)
	refuse := errors.New("not on the allow list")
	tests := []struct {
		name        string
		ic, rc      Config
		expect      keys.PublicKey
		wantErr     error
		wantFinish  error // error the initiator must see, if different
		wantSuccess bool
	}{
		{name: "ok", ic: Config{Local: a, Prologue: "p"}, rc: Config{Local: b, Prologue: "p"}, expect: b.Public, wantSuccess: true},
		{name: "ok reversed roles", ic: Config{Local: b, Prologue: "p"}, rc: Config{Local: a, Prologue: "p"}, expect: a.Public, wantSuccess: true},
		{name: "accept says yes", ic: Config{Local: a, Prologue: "p"},
			rc: Config{Local: b, Prologue: "p", Accept: func(k keys.PublicKey) error {
				if k != a.Public {
					return fmt.Errorf("unexpected %s", k)
				}
				return nil
			}}, expect: b.Public, wantSuccess: true},
		{name: "wrong expected key", ic: Config{Local: a, Prologue: "p"}, rc: Config{Local: b, Prologue: "p"}, expect: c.Public, wantErr: ErrHandshake},
		{name: "prologue mismatch", ic: Config{Local: a, Prologue: "skywire-link-v1"}, rc: Config{Local: b, Prologue: "skywire-session-v1"}, expect: b.Public, wantErr: ErrHandshake},
		{name: "accept refuses", ic: Config{Local: a, Prologue: "p"},
			rc: Config{Local: b, Prologue: "p", Accept: func(keys.PublicKey) error { return refuse }}, expect: b.Public, wantErr: ErrRefused},
		{name: "empty prologue", ic: Config{Local: a}, rc: Config{Local: b, Prologue: "p"}, expect: b.Public, wantErr: ErrConfig},
		{name: "no key", ic: Config{Prologue: "p"}, rc: Config{Local: b, Prologue: "p"}, expect: b.Public, wantErr: ErrConfig},
		{name: "mismatched key pair", ic: Config{Local: keys.KeyPair{Public: b.Public, Secret: a.Secret}, Prologue: "p"}, rc: Config{Local: b, Prologue: "p"}, expect: b.Public, wantErr: ErrConfig},
		{name: "zero remote", ic: Config{Local: a, Prologue: "p"}, rc: Config{Local: b, Prologue: "p"}, expect: keys.PublicKey{}, wantErr: ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is, rs, err := handshake(t, tt.ic, tt.rc, tt.expect)
			if !tt.wantSuccess {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if is.Remote != tt.expect || rs.Remote != tt.ic.Local.Public {
				t.Fatalf("remotes: initiator sees %s, responder sees %s", is.Remote.Short(), rs.Remote.Short())
			}
			if is.Hash != rs.Hash {
				t.Fatal("transcript hashes differ")
			}
			if time.Since(rs.PeerTime).Abs() > time.Minute || !is.PeerTime.IsZero() {
				t.Fatalf("PeerTime: responder %v initiator %v", rs.PeerTime, is.PeerTime)
			}
			checkPair(t, is, rs)
			checkPair(t, rs, is)
		})
	}
}

// checkPair checks that from.Send and to.Recv share a key, in strict mode.
func checkPair(t *testing.T, from, to *Session) {
	t.Helper()
	for i := range 3 {
		msg := []byte(fmt.Sprintf("message %d", i))
		ct := from.Send.Seal(nil, msg, []byte("ad"))
		pt, err := to.Recv.Open(nil, ct, []byte("ad"))
		if err != nil || !bytes.Equal(pt, msg) {
			t.Fatalf("message %d: %q, %v", i, pt, err)
		}
	}
}

func TestRefusalIsAuthenticated(t *testing.T) {
	a, b := tstest.KeyPair(t), tstest.KeyPair(t)
	msg1, st := initiate(t, Config{Local: a, Prologue: "p"}, b.Public)
	refusal, _, err := Respond(Config{Local: b, Prologue: "p", Accept: func(keys.PublicKey) error { return errors.New("no") }}, msg1)
	if !errors.Is(err, ErrRefused) || len(refusal) != RefusalLen {
		t.Fatalf("Respond: %v, refusal of %d bytes", err, len(refusal))
	}
	forged := bytes.Clone(refusal)
	forged[len(forged)-1] ^= 1
	if _, err := st.Finish(forged); !errors.Is(err, ErrHandshake) || errors.Is(err, ErrRefused) {
		t.Fatalf("forged refusal: %v, want ErrHandshake", err)
	}
	// The forgery did not consume the state: the genuine refusal is seen.
	if _, err := st.Finish(refusal); !errors.Is(err, ErrRefused) {
		t.Fatalf("genuine refusal after a forged one: %v", err)
	}
	// After an authenticated answer the Initiator is spent.
	if _, err := st.Finish(refusal); !errors.Is(err, ErrHandshake) {
		t.Fatalf("second Finish: %v", err)
	}
}

// hsConfigs are an initiator's and a responder's config with fresh keys
// and prologue "p".
func hsConfigs(t testing.TB) (ic, rc Config) {
	return Config{Local: tstest.KeyPair(t), Prologue: "p"}, Config{Local: tstest.KeyPair(t), Prologue: "p"}
}

// initiate is Initiate, failing t on error.
func initiate(t testing.TB, cfg Config, to keys.PublicKey) ([]byte, *Initiator) {
	t.Helper()
	msg1, st, err := Initiate(cfg, to)
	if err != nil {
		t.Fatal(err)
	}
	return msg1, st
}

// respond is Respond, failing t on error.
func respond(t testing.TB, cfg Config, msg1 []byte) ([]byte, *Session) {
	t.Helper()
	msg2, s, err := Respond(cfg, msg1)
	if err != nil {
		t.Fatal(err)
	}
	return msg2, s
}

// Over datagrams a forged or stale msg2 may arrive before the real one; it
// must not stop the handshake.
func TestFinishSurvivesBadMsg2(t *testing.T) {
	ic, rc := hsConfigs(t)
	b := rc.Local
	msg1, st := initiate(t, ic, b.Public)
	msg2, rs := respond(t, rc, msg1)
	stale, _, err := Respond(rc, msg1) // answer to a retransmission: other keys
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Clone(msg2)
	forged[10] ^= 1
	for _, bad := range [][]byte{nil, {1}, {1, 2}, forged, append([]byte{1, 3}, make([]byte, 16)...)} {
		if _, err := st.Finish(bad); !errors.Is(err, ErrHandshake) {
			t.Fatalf("Finish(%x) = %v", bad, err)
		}
	}
	is, err := st.Finish(msg2)
	if err != nil {
		t.Fatal(err)
	}
	checkPair(t, is, rs)
	if _, err := st.Finish(stale); !errors.Is(err, ErrHandshake) {
		t.Fatalf("Finish after success: %v", err)
	}
	var st2 *Initiator
	if _, st2, err = Initiate(ic, b.Public); err != nil {
		t.Fatal(err)
	}
	st2.Discard()
	if _, err := st2.Finish(msg2); !errors.Is(err, ErrHandshake) {
		t.Fatalf("Finish after Discard: %v", err)
	}
}

func TestHandshakeTampering(t *testing.T) {
	ic, rc := hsConfigs(t)
	b := rc.Local
	msg1, _ := initiate(t, ic, b.Public)
	// Every single-bit flip of msg1 must be rejected.
	for i := range len(msg1) * 8 {
		m := bytes.Clone(msg1)
		m[i/8] ^= 1 << (i % 8)
		if _, _, err := Respond(rc, m); !errors.Is(err, ErrHandshake) {
			t.Fatalf("msg1 bit %d flipped: err = %v", i, err)
		}
	}
	msg2, _ := respond(t, rc, msg1)
	// A valid msg2 for another msg1 does not finish this handshake.
	if _, st, err := Initiate(ic, b.Public); err != nil {
		t.Fatal(err)
	} else if _, err := st.Finish(msg2); !errors.Is(err, ErrHandshake) {
		t.Fatalf("msg2 for another msg1: %v", err)
	}
	for i := range len(msg2) * 8 {
		msg1, st := initiate(t, ic, b.Public)
		m, _ := respond(t, rc, msg1)
		m[i/8] ^= 1 << (i % 8)
		if _, err := st.Finish(m); !errors.Is(err, ErrHandshake) {
			t.Fatalf("msg2 bit %d flipped: err = %v", i, err)
		}
	}
	// Truncated and extended messages.
	for _, m := range [][]byte{nil, msg1[:1], msg1[:Msg1Len-1], append(bytes.Clone(msg1), 0)} {
		if _, _, err := Respond(rc, m); !errors.Is(err, ErrHandshake) {
			t.Fatalf("msg1 of %d bytes: %v", len(m), err)
		}
	}
}

// A replayed msg1 makes the responder derive fresh keys (its own ephemeral
// key is new), so the replayer cannot use an old session's keys; the
// ReplayGuard lets a responder refuse it outright.
func TestReplayedMsg1(t *testing.T) {
	a, b := tstest.KeyPair(t), tstest.KeyPair(t)
	now := time.Unix(1_700_000_000, 0)
	ic := Config{Local: a, Prologue: "p", Now: func() time.Time { return now }}
	rc := Config{Local: b, Prologue: "p"}
	msg1, st := initiate(t, ic, b.Public)
	msg2a, s1 := respond(t, rc, msg1)
	_, s2 := respond(t, rc, msg1)
	if s1.Hash == s2.Hash {
		t.Fatal("replayed msg1 produced the same session")
	}
	is, err := st.Finish(msg2a)
	if err != nil {
		t.Fatal(err)
	}
	ct := is.Send.Seal(nil, []byte("x"), nil)
	if _, err := s2.Recv.Open(nil, ct, nil); !errors.Is(err, ErrAuth) {
		t.Fatalf("replayed session opened the real one's traffic: %v", err)
	}
	var g ReplayGuard
	if err := g.Check(s1); err != nil {
		t.Fatal(err)
	}
	if err := g.Check(s2); !errors.Is(err, ErrReplay) {
		t.Fatalf("guard: %v", err)
	}
	now = now.Add(time.Second)
	msg1, _, err = Initiate(ic, b.Public)
	if err != nil {
		t.Fatal(err)
	}
	_, s3 := respond(t, rc, msg1)
	if err := g.Check(s3); err != nil {
		t.Fatalf("newer msg1 refused: %v", err)
	}
}

func TestReplayGuardBounded(t *testing.T) {
	g := ReplayGuard{MaxPeers: 3}
	for i := range 10 {
		var k keys.PublicKey
		k[0] = byte(i)
		if err := g.Check(&Session{Remote: k, PeerTime: time.Unix(int64(i), 0)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(g.last) > 3 {
		t.Fatalf("guard holds %d peers, max 3", len(g.last))
	}
}

// Forward secrecy: the same two static keys give different session keys in
// every handshake, because both sides contribute fresh ephemeral keys.
func TestForwardSecrecyFreshKeys(t *testing.T) {
	ic, rc := hsConfigs(t)
	b := rc.Local
	seen := map[[32]byte]bool{}
	var prev *Session
	for i := range 8 {
		is, rs, err := handshake(t, ic, rc, b.Public)
		if err != nil {
			t.Fatal(err)
		}
		if seen[is.Hash] {
			t.Fatalf("handshake %d repeated a transcript", i)
		}
		seen[is.Hash] = true
		if prev != nil {
			ct := is.Send.Seal(nil, []byte("secret"), nil)
			if _, err := prev.Recv.Open(nil, ct, nil); !errors.Is(err, ErrAuth) {
				t.Fatalf("handshake %d: an earlier session's key opens this one's traffic", i)
			}
		}
		prev = rs
	}
}

// With all keys and the clock fixed the handshake is reproducible; the
// result is the test vector in docs/crypto.md, which catches any accidental
// change of the wire format or key schedule.
func TestHandshakeVector(t *testing.T) {
	v := makeVector(t)
	if !bytes.HasPrefix(v.msg1, []byte{1, 1}) || len(v.msg1) != Msg1Len || len(v.msg2) != Msg2Len {
		t.Fatalf("vector shape: msg1 %x msg2 %x", v.msg1, v.msg2)
	}
	v2 := makeVector(t)
	if !bytes.Equal(v.msg1, v2.msg1) || !bytes.Equal(v.msg2, v2.msg2) || !bytes.Equal(v.sealed, v2.sealed) {
		t.Fatal("deterministic handshake is not reproducible")
	}
	if got := fmt.Sprintf("%x", v.msg1); got != vectorMsg1 {
		t.Errorf("msg1 changed:\n got %s\nwant %s", got, vectorMsg1)
	}
	if got := fmt.Sprintf("%x", v.msg2); got != vectorMsg2 {
		t.Errorf("msg2 changed:\n got %s\nwant %s", got, vectorMsg2)
	}
	if got := fmt.Sprintf("%x", v.sealed); got != vectorSealed {
		t.Errorf("sealed changed:\n got %s\nwant %s", got, vectorSealed)
	}
	if got := fmt.Sprintf("%x", v.explicit); got != vectorExplicit {
		t.Errorf("explicit changed:\n got %s\nwant %s", got, vectorExplicit)
	}
}

// Test vector (also in docs/crypto.md). Keys come from counting byte streams.
const (
	vectorMsg1     = "0101493e82fc74464a59268817623d2053c5eb8e2cc4a988b4fee179ec6b010d531d975d562d95a33c9ce51ebe48611dc4382e38c3fe44f818848db26783e7ebed5bf021939d9e94423d1c1826adb96d8eac507932c2d643c4a16a8ca286c253cc37be8085d3c066ca54"
	vectorMsg2     = "0102dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d44e8019ed4da2a41becc70c3071647a8fb"
	vectorSealed   = "a453b1ebd401b91abcafc56bd0bb73a0e0b99842ac"
	vectorExplicit = "0000000000000000e0d527b2f854ab3c4d5862bc3d1114b9fe0b1cecf5"
)

type vector struct{ msg1, msg2, sealed, explicit []byte }

func makeVector(t *testing.T) vector {
	t.Helper()
	a, b := tstest.SeededKeyPair(t, 0), tstest.SeededKeyPair(t, 64)
	seedIE, seedRE := tstest.Counting(128), tstest.Counting(192)
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }
	msg1, st := initiate(t, Config{Local: a, Prologue: "skywire-link-v1", Rand: &seedIE, Now: now}, b.Public)
	msg2, rs := respond(t, Config{Local: b, Prologue: "skywire-link-v1", Rand: &seedRE}, msg1)
	is, err := st.Finish(msg2)
	if err != nil {
		t.Fatal(err)
	}
	sealed := is.Send.Seal(nil, []byte("hello"), []byte("ad"))
	if _, err := rs.Recv.Open(nil, sealed, []byte("ad")); err != nil {
		t.Fatal(err)
	}
	explicit := rs.Send.SealExplicit(nil, []byte("hello"))
	if _, err := is.Recv.OpenExplicit(nil, explicit); err != nil {
		t.Fatal(err)
	}
	return vector{msg1, msg2, sealed, explicit}
}
