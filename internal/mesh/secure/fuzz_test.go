package secure

import (
	"bytes"
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
	f.Add(msg1)
	f.Add(msg1v2)
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

func FuzzFinish(f *testing.F) {
	a, b := fuzzKeys(f)
	f.Add([]byte{1, 2})
	f.Add(append([]byte{1, 2}, make([]byte, Msg2Len-2)...))
	f.Add(append([]byte{1, 3}, make([]byte, RefusalLen-2)...))
	f.Add([]byte{2, 2})
	f.Add(append([]byte{2, 2}, make([]byte, Msg2LenV2-2)...))
	f.Add(append([]byte{2, 3}, make([]byte, RefusalLen-2)...))
	f.Fuzz(func(t *testing.T, m []byte) {
		// A version 2 initiator for replies that say version 2.
		var suites []Suite
		if len(m) > 0 && m[0] == Version2 {
			suites = DefaultSuites()
		}
		msg1, st, err := Initiate(Config{Local: a, Prologue: "fuzz", Suites: suites}, b.Public)
		if err != nil {
			t.Fatal(err)
		}
		_ = msg1
		// The initiator's ephemeral key is fresh, so no fuzzed msg2 can be
		// valid (barring a 2^-128 forgery).
		if s, err := st.Finish(m); err == nil || s != nil || !errors.Is(err, ErrHandshake) {
			t.Fatalf("Finish(%x) = %v, %v", m, s, err)
		}
	})
}

func FuzzOpen(f *testing.F) {
	a, b := fuzzKeys(f)
	f.Add([]byte{}, []byte{})
	f.Add(make([]byte, Overhead), []byte("ad"))
	f.Add(make([]byte, 100), []byte(nil))
	f.Fuzz(func(t *testing.T, ct, ad []byte) {
		is, rs, err := handshake(t, Config{Local: a, Prologue: "fuzz"}, Config{Local: b, Prologue: "fuzz"}, b.Public)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rs.Recv.Open(nil, ct, ad); !errors.Is(err, ErrAuth) {
			t.Fatalf("forged message opened: %v", err)
		}
		// The opener is still usable.
		good := is.Send.Seal(nil, ct, ad)
		if pt, err := rs.Recv.Open(nil, good, ad); err != nil || !bytes.Equal(pt, ct) {
			t.Fatalf("round trip after forgery: %v", err)
		}
	})
}

func FuzzOpenExplicit(f *testing.F) {
	a, b := fuzzKeys(f)
	f.Add([]byte{}, uint16(0))
	f.Add(make([]byte, ExplicitOverhead), uint16(1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3}, uint16(3))
	f.Fuzz(func(t *testing.T, pkt []byte, n uint16) {
		is, rs, err := handshake(t, Config{Local: a, Prologue: "fuzz"}, Config{Local: b, Prologue: "fuzz"}, b.Public)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rs.Recv.OpenExplicit(nil, pkt); !errors.Is(err, ErrAuth) && !errors.Is(err, ErrReplay) {
			t.Fatalf("forged packet opened: %v", err)
		}
		is.Send.counter.Store(uint64(n % 4096))
		good := is.Send.SealExplicit(nil, pkt)
		if pt, err := rs.Recv.OpenExplicit(nil, good); err != nil || !bytes.Equal(pt, pkt) {
			t.Fatalf("round trip after forgery: %v", err)
		}
		if _, err := rs.Recv.OpenExplicit(nil, good); !errors.Is(err, ErrReplay) {
			t.Fatalf("duplicate accepted: %v", err)
		}
	})
}
