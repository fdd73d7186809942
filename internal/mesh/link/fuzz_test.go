package link

import (
	"bytes"
	"fmt"
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
	return is.Send, rs.Recv
}

func FuzzReadFrame(f *testing.F) {
	s, _ := fixedSession(f)
	seed := encodeFrame(s, MinUserType, []byte("hello"), false)
	seed = append(seed, encodeFrame(s, MinUserType+1, []byte("clear"), true)...)
	seed = append(seed, encodeFrame(s, typePing, make([]byte, 8), false)...)
	f.Add(seed)
	f.Add(seed[:10])
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

// TestFrameVector pins the frame format: the first two frames the client
// sends in the docs/crypto.md test-vector session.
func TestFrameVector(t *testing.T) {
	send, recv := fixedSession(t)
	sealed := encodeFrame(send, MinUserType, []byte("hello"), false)
	clear := encodeFrame(send, MinUserType, []byte("hello"), true)
	const (
		wantSealed = "00000016dc5eb8ebd7bb681d7b92d543a8dd237a0bd9ae9222ab"
		wantClear  = "800000161068656c6c6fbf90cef9b3f30d70cecb942c30c8e1c7"
	)
	if got := fmt.Sprintf("%x", sealed); got != wantSealed {
		t.Errorf("sealed frame:\n got %s\nwant %s", got, wantSealed)
	}
	if got := fmt.Sprintf("%x", clear); got != wantClear {
		t.Errorf("clear frame:\n got %s\nwant %s", got, wantClear)
	}
	var f frame
	r := bytes.NewReader(append(sealed, clear...))
	for i := range 2 {
		if err := readFrame(r, &f, recv, DefaultMaxFrame); err != nil || f.typ != MinUserType || string(f.payload) != "hello" {
			t.Fatalf("frame %d: %d %q %v", i, f.typ, f.payload, err)
		}
	}
}
