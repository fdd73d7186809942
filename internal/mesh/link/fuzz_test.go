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
	send, recv, _, _ = fixedHandshake(t)
	return send, recv
}

// fixedHandshake is fixedSession that also returns the handshake messages.
func fixedHandshake(t testing.TB) (send *secure.Sealer, recv *secure.Opener, msg1, msg2 []byte) {
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
	msg1, st, err := secure.Initiate(secure.Config{Local: a, Prologue: Prologue, Rand: &rea, Now: now}, b.Public)
	if err != nil {
		t.Fatal(err)
	}
	msg2, rs, err := secure.Respond(secure.Config{Local: b, Prologue: Prologue, Rand: &reb}, msg1)
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
	f.Fuzz(func(t *testing.T, data []byte) {
		_, recv := fixedSession(t)
		r := bytes.NewReader(data)
		var fr frame
		for {
			if err := readFrame(r, &fr, recv, maxFrame); err != nil {
				return
			}
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

// TestFrameVector pins the frame format: the handshake of the
// docs/crypto.md link test vector and the first two frames the client
// sends after it (the same payload twice: different bytes on the wire).
func TestFrameVector(t *testing.T) {
	send, recv, msg1, msg2 := fixedHandshake(t)
	const (
		msg1hex   = "0101493e82fc74464a59268817623d2053c5eb8e2cc4a988b4fee179ec6b010d531d975d562d95a33c9ce51ebe48611dc4382e38c3fe44f818848db26783e7ebed5b03f3c97f31cc10255db19895e69c3aef507932c2d643c4a11836d4413f380e32c05d895dae40753a"
		msg2hex   = "0102dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d447d9f21a6c03e029badb949d824e2a63c"
		frame0hex = "00000016dc5eb8ebd7bb681d7b92d543a8dd237a0bd9ae9222ab"
		frame1hex = "00000016f1df1f4def45acb9317d0bf6814c3f7ce2b19c00ab54"
	)
	f0 := encodeFrame(send, MinUserType, []byte("hello"), false)
	f1 := encodeFrame(send, MinUserType, []byte("hello"), false)
	for _, v := range []struct {
		name string
		got  []byte
		want string
	}{
		{"msg1", msg1, msg1hex},
		{"msg2", msg2, msg2hex},
		{"frame 0", f0, frame0hex},
		{"frame 1", f1, frame1hex},
	} {
		if got := fmt.Sprintf("%x", v.got); got != v.want {
			t.Errorf("%s:\n got %s\nwant %s", v.name, got, v.want)
		}
	}
	doc, err := os.ReadFile("../../../docs/crypto.md")
	if err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(string(doc)), "")
	for _, v := range []string{msg1hex, msg2hex, frame0hex, frame1hex} {
		if !strings.Contains(flat, v) {
			t.Errorf("docs/crypto.md does not list %s", v)
		}
	}
	var f frame
	r := bytes.NewReader(append(f0, f1...))
	for i := range 2 {
		if err := readFrame(r, &f, recv, DefaultMaxFrame); err != nil || f.typ != MinUserType || string(f.payload) != "hello" {
			t.Fatalf("frame %d: %d %q %v", i, f.typ, f.payload, err)
		}
	}
}
