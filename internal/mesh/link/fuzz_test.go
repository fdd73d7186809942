package link

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/secure"
	"github.com/skywire-mesh/skywire/keys"
)

type countingReader byte

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(*c)
		*c++
	}
	return len(p), nil
}

// fixedSession makes the same session every time (the keys and clock of
// the test vector in docs/crypto.md), so that fuzz seeds made with it are
// valid frames.
func fixedSession(t testing.TB) (send *secure.Sealer, recv *secure.Opener) {
	send, recv, _, _ = fixedHandshake(t, nil)
	return send, recv
}

// fixedHandshake is fixedSession that also returns the handshake messages.
func fixedHandshake(t testing.TB, suites []secure.Suite) (send *secure.Sealer, recv *secure.Opener, msg1, msg2 []byte) {
	ra, rb, rea, reb := countingReader(0), countingReader(64), countingReader(128), countingReader(192)
	a, err := keys.GenerateFrom(&ra)
	if err != nil {
		t.Fatal(err)
	}
	b, err := keys.GenerateFrom(&rb)
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }
	msg1, st, err := secure.Initiate(secure.Config{Local: a, Prologue: Prologue, Rand: &rea, Now: now, Suites: suites}, b.Public)
	if err != nil {
		t.Fatal(err)
	}
	msg2, rs, err := secure.Respond(secure.Config{Local: b, Prologue: Prologue, Rand: &reb, Suites: suites}, msg1)
	if err != nil {
		t.Fatal(err)
	}
	is, err := st.Finish(msg2)
	if err != nil {
		t.Fatal(err)
	}
	return is.Send, rs.Recv, msg1, msg2
}

func FuzzReadFrame(f *testing.F) {
	s, _ := fixedSession(f)
	seed := encodeFrame(s, MinUserType, []byte("hello"), false)
	seed = append(seed, encodeFrame(s, MinUserType+1, []byte("again"), false)...)
	seed = append(seed, encodeFrame(s, typePing, make([]byte, 8), false)...)
	f.Add(seed)
	f.Add(seed[:10])
	f.Add(encodeFrame(s, MinUserType, []byte("v1 clear frame"), true))
	f.Add([]byte{0x80, 0, 0, 17})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	const maxFrame = 1024
	// Each input starts with a fresh session's Opener. A handshake per
	// input is most of the cost, so the Opener is kept while no frame has
	// opened with it: a failed Open does not advance it (secure.Opener.Open),
	// so it is then in the same state as a fresh one.
	_, recv := fixedSession(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		opened := false
		defer func() {
			if opened {
				_, recv = fixedSession(t)
			}
		}()
		r := bytes.NewReader(data)
		var fr frame
		for {
			if err := readFrame(r, &fr, recv, maxFrame); err != nil {
				return
			}
			opened = true
			if len(fr.payload) > maxFrame || len(fr.buf) > hdrLen+maxFrame+frameOverhead {
				t.Fatalf("frame beyond bounds: payload %d, buffer %d", len(fr.payload), len(fr.buf))
			}
		}
	})
}

// FuzzReadMsg feeds arbitrary bytes to the server as the first
// handshake message: it must fail cleanly, never panic.
func FuzzReadMsg(f *testing.F) {
	f.Add([]byte{0, 3, 1, 2, 3})
	f.Add([]byte{0xff, 0xff})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := readMsg(bytes.NewReader(data))
		if err == nil && (len(msg) == 0 || len(msg) > secure.MaxHandshakeLen) {
			t.Fatalf("readMsg returned %d bytes", len(msg))
		}
	})
}

// TestFrameVector pins the frame format: the handshakes of the
// docs/crypto.md link test vectors and the first two frames the client
// sends after each (the same payload twice: different bytes on the wire).
// Version 1 is the handshake of clients before suite negotiation
// (ChaCha20-Poly1305); version 2 here agrees on AES-256-GCM.
func TestFrameVector(t *testing.T) {
	for _, v := range []struct {
		name                       string
		suites                     []secure.Suite
		msg1, msg2, frame0, frame1 string
	}{
		{"handshake v1", nil,
			"0101493e82fc74464a59268817623d2053c5eb8e2cc4a988b4fee179ec6b010d531d975d562d95a33c9ce51ebe48611dc4382e38c3fe44f818848db26783e7ebed5b03f3c97f31cc10255db19895e69c3aef507932c2d643c4a11836d4413f380e32c05d895dae40753a",
			"0102dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d447d9f21a6c03e029badb949d824e2a63c",
			"00000016dc5eb8ebd7bb681d7b92d543a8dd237a0bd9ae9222ab",
			"00000016f1df1f4def45acb9317d0bf6814c3f7ce2b19c00ab54"},
		{"handshake v2, AES-256-GCM", []secure.Suite{secure.AES256GCM, secure.ChaCha20Poly1305},
			"0201493e82fc74464a59268817623d2053c5eb8e2cc4a988b4fee179ec6b010d531d975d562d95a33c9ce51ebe48611dc4382e38c3fe44f818848db26783e7ebed5bdb218cda1b6166adf267abbb4ce229e2507932c2d643c4a17d01b8046d1ca05db115bbd6a81bd16b2c",
			"0202dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d44f2a09cce733c9de3035b97a40c8844535a",
			"00000016f84c8ff36668c0f43d6f77530ff2dcf1b1b4fd77d8ac",
			"00000016a551ea674d4ac4a00a8d442b60d3ff04194dfc328509"},
	} {
		t.Run(v.name, func(t *testing.T) {
			send, recv, msg1, msg2 := fixedHandshake(t, v.suites)
			f0 := encodeFrame(send, MinUserType, []byte("hello"), false)
			f1 := encodeFrame(send, MinUserType, []byte("hello"), false)
			doc, err := os.ReadFile("../../../docs/crypto.md")
			if err != nil {
				t.Fatal(err)
			}
			flat := strings.Join(strings.Fields(string(doc)), "")
			for _, x := range []struct {
				name string
				got  []byte
				want string
			}{
				{"msg1", msg1, v.msg1},
				{"msg2", msg2, v.msg2},
				{"frame 0", f0, v.frame0},
				{"frame 1", f1, v.frame1},
			} {
				if got := fmt.Sprintf("%x", x.got); got != x.want {
					t.Errorf("%s:\n got %s\nwant %s", x.name, got, x.want)
				}
				if !strings.Contains(flat, x.want) {
					t.Errorf("docs/crypto.md does not list %s %s", x.name, x.want)
				}
			}
			var f frame
			r := bytes.NewReader(append(f0, f1...))
			for i := range 2 {
				if err := readFrame(r, &f, recv, DefaultMaxFrame); err != nil || f.typ != MinUserType || string(f.payload) != "hello" {
					t.Fatalf("frame %d: %d %q %v", i, f.typ, f.payload, err)
				}
			}
		})
	}
}
