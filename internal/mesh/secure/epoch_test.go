package secure

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// A packet session (Config.Packets) negotiates its suite like a link's
// and keeps explicit counters; a version 1 peer on either side gets a
// version 1 session, and the two sides must agree on Packets.
func TestPacketSessionNegotiation(t *testing.T) {
	a, b := tstest.KeyPair(t), tstest.KeyPair(t)
	tests := []struct {
		name       string
		ic, rc     Config
		want       Suite
		version    byte
		packets    bool
		err        error
		errOnlyCfg bool
	}{
		{"both offer AES", Config{Suites: bothSuites, Packets: true}, Config{Suites: bothSuites, Packets: true}, AES256GCM, Version2, true, nil, false},
		{"initiator without AES", Config{Suites: chachaOnly, Packets: true}, Config{Suites: bothSuites, Packets: true}, ChaCha20Poly1305, Version2, true, nil, false},
		{"responder without AES", Config{Suites: bothSuites, Packets: true}, Config{Suites: chachaOnly, Packets: true}, ChaCha20Poly1305, Version2, true, nil, false},
		{"old initiator (version 1)", Config{}, Config{Suites: bothSuites, Packets: true}, ChaCha20Poly1305, Version1, false, nil, false},
		{"old responder (version 1)", Config{Suites: bothSuites, Packets: true}, Config{}, 0, 0, false, ErrHandshake, false},
		{"responder for streams", Config{Suites: bothSuites, Packets: true}, Config{Suites: bothSuites}, 0, 0, false, ErrHandshake, false},
		{"initiator for streams", Config{Suites: bothSuites}, Config{Suites: bothSuites, Packets: true}, 0, 0, false, ErrHandshake, false},
		{"Packets without Suites", Config{Packets: true}, Config{Suites: bothSuites, Packets: true}, 0, 0, false, ErrConfig, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.ic.Local, tt.ic.Prologue = a, "skywire-session-v1"
			tt.rc.Local, tt.rc.Prologue = b, "skywire-session-v1"
			is, rs := negotiate(t, tt.ic, tt.rc, b.Public, tt.err, tt.want, tt.version)
			if is == nil {
				return
			}
			if got := is.Send.ep != nil && rs.Recv.ep != nil; got != tt.packets {
				t.Fatalf("packet ciphers: %v, want %v", got, tt.packets)
			}
			for _, p := range [][2]*Session{{is, rs}, {rs, is}} {
				pc, qc := p[0].PacketCipher(), p[1].PacketCipher()
				for i := range 3 {
					msg := fmt.Appendf(nil, "packet %d", i)
					if got, err := qc.Open(nil, pc.Seal(nil, msg)); err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("round trip %d: %q, %v", i, got, err)
					}
				}
			}
		})
	}
}

// A packet cipher is for explicit use only: Open refuses, Seal panics.
func TestPacketCipherIsExplicitOnly(t *testing.T) {
	var k, k2 [32]byte
	s, o := newPacketSealer(AES256GCM, &k), newPacketOpener(AES256GCM, &k2)
	if _, err := o.Open(nil, make([]byte, 40), nil); !errors.Is(err, ErrMode) {
		t.Fatalf("Open on a packet opener: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Seal on a packet sealer did not panic")
		}
	}()
	s.Seal(nil, []byte("x"), nil)
}

func packetPair(suite Suite) (*Sealer, *Opener, [32]byte) {
	var k, k1, k2 [32]byte
	for i := range k {
		k[i], k1[i], k2[i] = byte(i), byte(i), byte(i)
	}
	return newPacketSealer(suite, &k1), newPacketOpener(suite, &k2), k
}

// Counter c is sealed under epoch c/PacketsPerKey's key: the standard
// AES-256-GCM of the key derived for that epoch (checked here with
// crypto/aes directly). Packets on both sides of an epoch boundary open
// in any order within the replay window, also after a jump of several
// epochs (a long loss), and an old epoch's straggler still opens.
func TestPacketEpochs(t *testing.T) {
	for _, suite := range bothSuites {
		t.Run(suite.String(), func(t *testing.T) {
			s, o, k := packetPair(suite)
			seal := func(c uint64, msg string) []byte {
				s.counter.Store(c)
				return s.SealExplicit(nil, []byte(msg))
			}
			open := func(pkt []byte, want string) {
				t.Helper()
				got, err := o.OpenExplicit(nil, pkt)
				if err != nil || string(got) != want {
					t.Fatalf("open %x: %q, %v; want %q", pkt[:8], got, err, want)
				}
			}
			const P = PacketsPerKey
			before, after := seal(P-2, "last of epoch 0"), seal(P, "first of epoch 1")
			if s.Rekeys() != 1 {
				t.Fatalf("sealer epoch %d after sealing counter %d", s.Rekeys(), uint64(P))
			}
			if suite == AES256GCM {
				ek := epochKey(&k, 1)
				block, _ := aes.NewCipher(ek[:])
				gcm, _ := cipher.NewGCM(block)
				nonce := make([]byte, 12)
				binary.LittleEndian.PutUint64(nonce[4:], P)
				if want := gcm.Seal(nil, nonce, []byte("first of epoch 1"), nil); !bytes.Equal(after[8:], want) {
					t.Fatalf("epoch 1 packet is not AES-256-GCM under the epoch 1 key:\n got %x\nwant %x", after[8:], want)
				}
			}
			open(after, "first of epoch 1")
			if o.Rekeys() != 1 {
				t.Fatalf("opener epoch %d", o.Rekeys())
			}
			open(before, "last of epoch 0") // a straggler of the previous epoch
			// A jump over three epochs (lost packets), then a straggler of
			// the epoch just before the new one.
			jump, straggler := seal(4*P+5, "epoch 4"), seal(4*P-3, "epoch 3")
			open(jump, "epoch 4")
			open(straggler, "epoch 3")
			if o.Rekeys() != 4 {
				t.Fatalf("opener epoch %d, want 4", o.Rekeys())
			}
			if _, err := o.OpenExplicit(nil, before); !errors.Is(err, ErrReplay) {
				t.Fatalf("epoch 0 packet after epoch 4: %v", err)
			}
		})
	}
}

// A forged packet with a far-ahead counter costs one key derivation and
// installs nothing: the genuine packets of the current epoch still open.
func TestPacketForgedEpochInstallsNothing(t *testing.T) {
	s, o, _ := packetPair(AES256GCM)
	good := s.SealExplicit(nil, []byte("genuine"))
	forged := bytes.Clone(good)
	binary.BigEndian.PutUint64(forged, 1000*PacketsPerKey)
	if _, err := o.OpenExplicit(nil, forged); !errors.Is(err, ErrAuth) {
		t.Fatalf("forged far-ahead packet: %v", err)
	}
	if o.Rekeys() != 0 {
		t.Fatalf("a forged packet moved the opener to epoch %d", o.Rekeys())
	}
	if got, err := o.OpenExplicit(nil, good); err != nil || string(got) != "genuine" {
		t.Fatalf("genuine packet after the forgery: %q, %v", got, err)
	}
}

// Concurrent sealers and openers across an epoch boundary: every packet
// opens exactly once (run with -race).
func TestPacketEpochsConcurrent(t *testing.T) {
	s, o, _ := packetPair(AES256GCM)
	const start, n, workers = PacketsPerKey - 200, 400, 4
	s.counter.Store(start)
	pkts := make(chan []byte, n)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range n / workers {
				pkts <- s.SealExplicit(nil, []byte("payload"))
			}
		})
	}
	wg.Wait()
	close(pkts)
	var mu sync.Mutex
	opened := map[uint64]int{}
	for range workers {
		wg.Go(func() {
			for p := range pkts {
				if _, err := o.OpenExplicit(nil, p); err != nil {
					t.Errorf("packet %d: %v", binary.BigEndian.Uint64(p), err)
					continue
				}
				mu.Lock()
				opened[binary.BigEndian.Uint64(p)]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(opened) != n || s.Rekeys() != 1 || o.Rekeys() != 1 {
		t.Fatalf("%d of %d packets opened; epochs: sealer %d, opener %d", len(opened), n, s.Rekeys(), o.Rekeys())
	}
}

func TestPacketAllocationFree(t *testing.T) {
	s, o, _ := packetPair(AES256GCM)
	msg := make([]byte, 1500)
	buf := make([]byte, 0, 2048)
	out := make([]byte, 0, 2048)
	if n := testing.AllocsPerRun(100, func() {
		pkt := s.SealExplicit(buf[:0], msg)
		if _, err := o.OpenExplicit(out[:0], pkt); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("packet SealExplicit+OpenExplicit: %v allocs per run", n)
	}
}

// The epoch keys are HKDF-SHA256(ikm = key, salt = none, info = "skywire
// packet epoch v1" || epoch as uint64 big-endian); the expected keys and
// packet were computed independently (Python's hmac, hashlib and the
// cryptography package's AESGCM) and are in docs/crypto.md.
func TestEpochKeyVector(t *testing.T) {
	var k [32]byte
	for i := range k {
		k[i] = byte(i)
	}
	if e := epochKey(&k, 0); e != k {
		t.Fatal("epoch 0 does not use the session key")
	}
	for e, want := range map[uint64]string{
		1:       "c04fd4ae3973a2949c680c673a0bb090819f46f2f07f52ea815a302c2db9f76e",
		2:       "dec40f817df71d705953530b07d443864357937cb53e01962aef78650f933340",
		1 << 18: "24cd53e02db5ccfdb4ec1ced7e51472d1f5aefd05007beaff1a896ce1b0bf3be",
	} {
		if got := epochKey(&k, e); fmt.Sprintf("%x", got) != want {
			t.Errorf("epoch %d key %x, want %s", e, got, want)
		}
	}
	s, _, _ := packetPair(AES256GCM)
	s.counter.Store(PacketsPerKey)
	if got := fmt.Sprintf("%x", s.SealExplicit(nil, []byte("hello"))); got != vectorEpochPacket {
		t.Errorf("epoch 1 packet %s, want %s", got, vectorEpochPacket)
	}
}

const vectorEpochPacket = "000000000004000018e73863a01140262a736e8d265b8ded3a6eb4cea1"

// Packet session test vector (docs/crypto.md): the version 1 keys and
// clock, prologue skywire-session-v1, Packets, both sides offering
// AES-256-GCM then ChaCha20-Poly1305; then R→I SealExplicit("hello") at
// counters 0 and PacketsPerKey (epoch 1).
func TestHandshakeVectorPackets(t *testing.T) {
	a, b := tstest.SeededKeyPair(t, 0), tstest.SeededKeyPair(t, 64)
	seedIE, seedRE := tstest.Counting(128), tstest.Counting(192)
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }
	msg1, st := initiate(t, Config{Local: a, Prologue: "skywire-session-v1", Rand: &seedIE, Now: now, Suites: bothSuites, Packets: true}, b.Public)
	msg2, rs := respond(t, Config{Local: b, Prologue: "skywire-session-v1", Rand: &seedRE, Suites: bothSuites, Packets: true}, msg1)
	is, err := st.Finish(msg2)
	if err != nil {
		t.Fatal(err)
	}
	if is.Suite != AES256GCM || is.Send.ep == nil {
		t.Fatalf("suite %v, packet ciphers %v", is.Suite, is.Send.ep != nil)
	}
	p0 := rs.Send.SealExplicit(nil, []byte("hello"))
	rs.Send.counter.Store(PacketsPerKey)
	p1 := rs.Send.SealExplicit(nil, []byte("hello"))
	for _, p := range [][]byte{p0, p1} {
		if _, err := is.Recv.OpenExplicit(nil, p); err != nil {
			t.Fatal(err)
		}
	}
	for name, got := range map[string][]byte{"msg1": msg1, "msg2": msg2, "packet0": p0, "packet1": p1} {
		if want := vectorPackets[name]; fmt.Sprintf("%x", got) != want {
			t.Errorf("%s changed:\n got %x\nwant %s", name, got, want)
		}
	}
	// docs/crypto.md lists these vectors and the epoch keys' (hex split
	// over lines there).
	doc, err := os.ReadFile("../../../docs/crypto.md")
	if err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(string(doc)), "")
	for _, want := range []string{vectorPackets["msg1"], vectorPackets["msg2"], vectorPackets["packet0"], vectorPackets["packet1"],
		vectorEpochPacket, "c04fd4ae3973a2949c680c673a0bb090819f46f2f07f52ea815a302c2db9f76e"} {
		if !strings.Contains(flat, want) {
			t.Errorf("docs/crypto.md does not list %s", want)
		}
	}
}

var vectorPackets = map[string]string{
	"msg1":    "0201493e82fc74464a59268817623d2053c5eb8e2cc4a988b4fee179ec6b010d531d975d562d95a33c9ce51ebe48611dc4382e38c3fe44f818848db26783e7ebed5b7a79f02ef99105d122ad24380b65b78e507932c2d643c4a17d92e9db2c1ec5cc279dc5e8644d9ba1d4",
	"msg2":    "0202dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d44f2e8dd82f8b9f473941ca1c799e05fb4dd",
	"packet0": "00000000000000001b5e69b9abdbd2c6a1489c8010f2999b959eee931e",
	"packet1": "000000000004000083f4aca22ed4d9827601849ca43563a3b8c96f4686",
}
