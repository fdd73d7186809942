package secure

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

// fuzzKeys are fixed so that the seed corpus below contains valid messages.
func fuzzKeys(t testing.TB) (a, b keys.KeyPair) {
	return tstest.SeededKeyPair(t, 1), tstest.SeededKeyPair(t, 77)
}

func FuzzRespond(f *testing.F) {
	a, b := fuzzKeys(f)
	msg1, _, err := Initiate(Config{Local: a, Prologue: "fuzz"}, b.Public)
	if err != nil {
		f.Fatal(err)
	}
	msg1v2, _, err := Initiate(Config{Local: a, Prologue: "fuzz", Suites: DefaultSuites()}, b.Public)
	if err != nil {
		f.Fatal(err)
	}
	msg1p, _, err := Initiate(Config{Local: a, Prologue: "fuzz", Suites: DefaultSuites(), Packets: true}, b.Public)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msg1)
	f.Add(msg1v2)
	f.Add(msg1p)
	f.Add(msg1[:10])
	f.Add([]byte{})
	f.Add(append([]byte{1, 1}, make([]byte, Msg1Len-2)...))   // zero (low-order) ephemeral
	f.Add(append([]byte{2, 1}, make([]byte, Msg1LenV2-2)...)) // the same, version 2
	f.Fuzz(func(t *testing.T, m []byte) {
		// The responder speaks both versions.
		msg2, s, err := Respond(Config{Local: b, Prologue: "fuzz", Suites: []Suite{AES256GCM, ChaCha20Poly1305}}, m)
		if err != nil {
			if !errors.Is(err, ErrHandshake) || msg2 != nil || s != nil {
				t.Fatalf("Respond: %v (msg2 %d bytes, session %v)", err, len(msg2), s != nil)
			}
			return
		}
		// Only a holder of a static secret can make a valid msg1; the
		// fuzzer only gets there by mutating msg1 into itself.
		if len(msg2) != map[byte]int{Version1: Msg2Len, Version2: Msg2LenV2}[m[0]] || s.Remote != a.Public {
			t.Fatalf("accepted msg1 %x: msg2 %d bytes, remote %s", m, len(msg2), s.Remote)
		}
	})
}

// FuzzRespondPackets is FuzzRespond for a responder of end-to-end
// sessions (Config.Packets), which mixes another label into version 2
// transcripts: only msg1 of a packet initiator (or of version 1) may pass.
func FuzzRespondPackets(f *testing.F) {
	a, b := fuzzKeys(f)
	for _, c := range []Config{{}, {Suites: DefaultSuites()}, {Suites: DefaultSuites(), Packets: true}} {
		c.Local, c.Prologue = a, "fuzz"
		msg1, _, err := Initiate(c, b.Public)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg1)
	}
	f.Add(append([]byte{2, 1}, make([]byte, Msg1LenV2-2)...))
	f.Fuzz(func(t *testing.T, m []byte) {
		msg2, s, err := Respond(Config{Local: b, Prologue: "fuzz", Suites: bothSuites, Packets: true}, m)
		if err != nil {
			if !errors.Is(err, ErrHandshake) || msg2 != nil || s != nil {
				t.Fatalf("Respond: %v (msg2 %d bytes, session %v)", err, len(msg2), s != nil)
			}
			return
		}
		if s.Remote != a.Public || (s.Version == Version2) != (s.Send.ep != nil) {
			t.Fatalf("accepted msg1 %x: version %d, packet ciphers %v, remote %s", m, s.Version, s.Send.ep != nil, s.Remote)
		}
	})
}

func FuzzFinish(f *testing.F) {
	a, b := fuzzKeys(f)
	f.Add([]byte{1, 2})
	f.Add(append([]byte{1, 2}, make([]byte, Msg2Len-2)...))
	f.Add(append([]byte{1, 3}, make([]byte, RefusalLen-2)...))
	f.Add([]byte{2, 2})
	f.Add(append([]byte{2, 2}, make([]byte, Msg2LenV2-2)...))
	f.Add(append([]byte{2, 3}, make([]byte, RefusalLen-2)...))
	// One initiator of each version per fuzz worker, made once: a failed
	// Finish leaves the Initiator as it was (it works on a copy, so that a
	// forged reply cannot stop the genuine one), which each input checks.
	// An Initiate per input was most of the run's cost.
	initiators := map[byte]*Initiator{}
	for v, suites := range map[byte][]Suite{Version1: nil, Version2: DefaultSuites()} {
		_, st, err := Initiate(Config{Local: a, Prologue: "fuzz", Suites: suites}, b.Public)
		if err != nil {
			f.Fatal(err)
		}
		initiators[v] = st
	}
	f.Fuzz(func(t *testing.T, m []byte) {
		// A version 2 initiator for replies that say version 2.
		st := initiators[Version1]
		if len(m) > 0 && m[0] == Version2 {
			st = initiators[Version2]
		}
		// The initiator's ephemeral key is fresh (made by this process, never
		// seen by the fuzzer), so no fuzzed msg2 can be valid (barring a
		// 2^-128 forgery).
		if s, err := st.Finish(m); err == nil || s != nil || !errors.Is(err, ErrHandshake) {
			t.Fatalf("Finish(%x) = %v, %v", m, s, err)
		}
		if st.finished || st.eph.Secret == (keys.SecretKey{}) {
			t.Fatalf("Finish(%x) failed and used up the initiator", m)
		}
	})
}

// sessionPair makes, for each input, a Sealer and an Opener that share a
// new random key, with the suite and re-keying that a handshake of ic and
// rc agrees on (run once, here). A handshake per input cost most of the
// run; Open and OpenExplicit see the same kind of session either way.
func sessionPair(f *testing.F, ic, rc Config, remote keys.PublicKey) func(testing.TB) (*Sealer, *Opener) {
	is, rs, err := handshake(f, ic, rc, remote)
	if err != nil {
		f.Fatal(err)
	}
	suite, rekey := rs.Suite, rs.Recv.rk.on
	if is.Suite != suite || is.Send.rk.on != rekey {
		f.Fatalf("the two ends disagree: suites %v and %v, re-keying %v and %v", is.Suite, suite, is.Send.rk.on, rekey)
	}
	return func(t testing.TB) (*Sealer, *Opener) {
		var k [32]byte
		if _, err := rand.Read(k[:]); err != nil {
			t.Fatal(err)
		}
		k2 := k
		return newSealer(suite, &k, rekey), newOpener(suite, &k2, rekey)
	}
}

func FuzzOpen(f *testing.F) {
	a, b := fuzzKeys(f)
	f.Add([]byte{}, []byte{})
	f.Add(make([]byte, Overhead), []byte("ad"))
	f.Add(make([]byte, 100), []byte(nil))
	pair := sessionPair(f, Config{Local: a, Prologue: "fuzz"}, Config{Local: b, Prologue: "fuzz"}, b.Public)
	f.Fuzz(func(t *testing.T, ct, ad []byte) {
		send, recv := pair(t)
		if _, err := recv.Open(nil, ct, ad); !errors.Is(err, ErrAuth) {
			t.Fatalf("forged message opened: %v", err)
		}
		// The opener is still usable.
		good := send.Seal(nil, ct, ad)
		if pt, err := recv.Open(nil, good, ad); err != nil || !bytes.Equal(pt, ct) {
			t.Fatalf("round trip after forgery: %v", err)
		}
	})
}

func FuzzOpenExplicit(f *testing.F) {
	a, b := fuzzKeys(f)
	f.Add([]byte{}, uint16(0))
	f.Add(make([]byte, ExplicitOverhead), uint16(1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3}, uint16(3))
	pair := sessionPair(f, Config{Local: a, Prologue: "fuzz"}, Config{Local: b, Prologue: "fuzz"}, b.Public)
	f.Fuzz(func(t *testing.T, pkt []byte, n uint16) {
		send, recv := pair(t)
		if _, err := recv.OpenExplicit(nil, pkt); !errors.Is(err, ErrAuth) && !errors.Is(err, ErrReplay) {
			t.Fatalf("forged packet opened: %v", err)
		}
		send.counter.Store(uint64(n % 4096))
		good := send.SealExplicit(nil, pkt)
		if pt, err := recv.OpenExplicit(nil, good); err != nil || !bytes.Equal(pt, pkt) {
			t.Fatalf("round trip after forgery: %v", err)
		}
		if _, err := recv.OpenExplicit(nil, good); !errors.Is(err, ErrReplay) {
			t.Fatalf("duplicate accepted: %v", err)
		}
	})
}

// FuzzOpenPacket feeds a packet-session Opener (Config.Packets: a key per
// counter epoch) arbitrary packets, among them counters in other epochs:
// none may open or move the opener to another epoch, and genuine packets
// on both sides of an epoch boundary still open afterwards.
func FuzzOpenPacket(f *testing.F) {
	f.Add([]byte{}, uint32(0))
	f.Add(make([]byte, ExplicitOverhead), uint32(PacketsPerKey))
	f.Add([]byte{0, 0, 0, 0, 0, 4, 0, 0, 1, 2, 3}, uint32(PacketsPerKey-1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3}, uint32(3*PacketsPerKey))
	f.Fuzz(func(t *testing.T, pkt []byte, c uint32) {
		var k [32]byte
		if _, err := rand.Read(k[:]); err != nil {
			t.Fatal(err)
		}
		k2 := k
		send, recv := newPacketSealer(AES256GCM, &k), newPacketOpener(AES256GCM, &k2)
		if _, err := recv.OpenExplicit(nil, pkt); !errors.Is(err, ErrAuth) && !errors.Is(err, ErrReplay) {
			t.Fatalf("forged packet opened: %v", err)
		}
		if recv.Rekeys() != 0 {
			t.Fatalf("a forged packet moved the opener to epoch %d", recv.Rekeys())
		}
		send.counter.Store(uint64(c))
		for range 2 { // the second may be in the next epoch
			good := send.SealExplicit(nil, pkt)
			if pt, err := recv.OpenExplicit(nil, good); err != nil || !bytes.Equal(pt, pkt) {
				t.Fatalf("round trip after forgery: %v", err)
			}
			if _, err := recv.OpenExplicit(nil, good); !errors.Is(err, ErrReplay) {
				t.Fatalf("duplicate accepted: %v", err)
			}
		}
		if want := (uint64(c) + 1) / PacketsPerKey; recv.Rekeys() != want {
			t.Fatalf("opener in epoch %d, want %d", recv.Rekeys(), want)
		}
	})
}
