package wire

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

func testKey() Key {
	var k Key
	for i := range k {
		k[i] = byte(i + 1)
	}
	return k
}

func testToken() Token {
	var t Token
	for i := range t {
		t[i] = byte(0xa0 + i)
	}
	return t
}

// vectors are the test vectors of docs/app-api.md: each message and its
// whole frame, hex.
var vectors = []struct {
	name string
	msg  Message
	hex  string
}{
	{"hello", &Hello{Version: 1, Name: "socks", Port: 1080, PID: 4242},
		"0000001f 01 84 a176 01 a46e616d65 a5736f636b73 a4706f7274 cd0438 a3706964 cd1092"},
	{"welcome", &Welcome{Version: 1, Key: testKey(), Token: testToken()},
		"00000041 04 83 a176 01 a36b6579 c420 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20 a3746f6b c410 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"},
	{"dial", &Dial{Token: testToken(), Key: testKey(), Port: 80},
		"00000044 02 83 a3746f6b c410 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf a36b6579 c420 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20 a4706f7274 50"},
	{"accept", &Accept{Token: testToken(), ID: 7},
		"0000001c 03 82 a3746f6b c410 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf a26964 07"},
	{"ok", &OK{}, "00000001 05"},
	{"error", &Error{Code: 5, Msg: "no listener"},
		"00000018 06 82 a4636f6465 05 a36d7367 ab6e6f206c697374656e6572"},
	{"incoming", &Incoming{ID: 7, Key: testKey()},
		"0000002c 07 82 a26964 07 a36b6579 c420 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"},
	{"datagram", &Datagram{Key: keys.PublicKey(testKey()), Port: 9, Payload: []byte("hi")},
		"00000025 08 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20 0009 6869"},
}

func TestVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			want := tstest.Unhex(t, v.hex)
			got, err := Marshal(v.msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Marshal = %x\nwant      %x", got, want)
			}
			typ, body, _, err := ReadFrame(bytes.NewReader(want), nil, MaxFrame)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Decode(typ, body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, v.msg) {
				t.Errorf("Decode = %#v, want %#v", m, v.msg)
			}
		})
	}
}

// TestVectorsInDoc checks that docs/app-api.md shows every vector.
func TestVectorsInDoc(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/app-api.md")
	if err != nil {
		t.Fatalf("read the protocol document: %v", err)
	}
	flat := strings.Join(strings.Fields(strings.ToLower(string(doc))), "")
	for _, v := range vectors {
		if h := strings.Join(strings.Fields(v.hex), ""); !strings.Contains(flat, h) {
			t.Errorf("docs/app-api.md lacks the %s vector %s", v.name, v.hex)
		}
	}
}

func TestDecodeAcceptsAnyIntEncoding(t *testing.T) {
	// Port 80 as uint16 (cd 0050) instead of a positive fixint, and
	// unknown keys are skipped: other implementations may write either.
	body := tstest.Unhex(t, "84 a3746f6b c410 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf a36b6579 c420 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20 a4706f7274 cd0050 a178 c0")
	m, err := Decode(TypeDial, body)
	if err != nil {
		t.Fatal(err)
	}
	if d := m.(*Dial); d.Port != 80 || d.Key != testKey() || d.Token != testToken() {
		t.Errorf("Decode = %+v", d)
	}
}

func TestDecodeErrors(t *testing.T) {
	// Each input is the type byte, then the body.
	tstest.CheckDecodeErrors(t, func(b []byte) error {
		_, err := Decode(Type(b[0]), b[1:])
		return err
	}, []tstest.DecodeCase{
		{"unknown type", "7f 80", ErrMalformed},
		{"empty hello", "01", ErrMalformed},
		{"hello not a map", "01 93 01 02 03", ErrMalformed},
		{"hello nil", "01 c0", ErrMalformed},
		{"truncated map", "01 84 a176 01", ErrMalformed},
		{"trailing bytes", "01 81 a176 01 00", ErrMalformed},
		{"name not a string", "01 81 a46e616d65 05", ErrMalformed},
		{"port too big", "01 81 a4706f7274 ce00010007", ErrMalformed},
		{"negative port", "02 81 a4706f7274 ff", ErrMalformed},
		{"port as string", "02 81 a4706f7274 a138", ErrMalformed},
		{"code too big", "06 81 a4636f6465 cd0105", ErrMalformed},
		{"short key", "07 81 a36b6579 c410 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", ErrMalformed},
		{"key as string", "07 81 a36b6579 a3616263", ErrMalformed},
		{"short token", "03 81 a3746f6b c401 00", ErrMalformed},
		{"ok with body", "05 00", ErrMalformed},
		{"short datagram", "08 0102", ErrMalformed},
	})
}

func TestReadFrame(t *testing.T) {
	readFrame := func(max int) func([]byte) error {
		return func(b []byte) error {
			_, _, _, err := ReadFrame(bytes.NewReader(b), nil, max)
			return err
		}
	}
	tstest.CheckDecodeErrors(t, readFrame(MaxFrame), []tstest.DecodeCase{
		{"clean EOF", "", io.EOF},
		{"empty frame", "00000000", ErrMalformed},
		{"huge length", "ffffffff", ErrTooLong},
		{"truncated body", "00000005 0102", io.ErrUnexpectedEOF},
		{"truncated length", "0000", io.ErrUnexpectedEOF},
		{"ok", "00000001 05", nil},
	})
	tstest.CheckDecodeErrors(t, readFrame(MaxOpenFrame), []tstest.DecodeCase{
		{"over the limit", "00001001 01", ErrTooLong},
	})
	// A buffer that is large enough is reused.
	buf := make([]byte, 0, 64)
	_, _, nbuf, err := ReadFrame(bytes.NewReader(tstest.Unhex(t, "00000003 08 0102")), buf, MaxFrame)
	if err != nil || &nbuf[0] != &buf[:1][0] {
		t.Errorf("buffer not reused (err %v)", err)
	}
}

func TestAppendDatagramLimit(t *testing.T) {
	if _, err := AppendDatagram(nil, keys.PublicKey{}, 1, make([]byte, MaxDatagram)); err != nil {
		t.Errorf("largest datagram: %v", err)
	}
	if _, err := AppendDatagram(nil, keys.PublicKey{}, 1, make([]byte, MaxDatagram+1)); !errors.Is(err, ErrTooLong) {
		t.Errorf("oversized datagram: %v, want ErrTooLong", err)
	}
	if f, _ := AppendDatagram(nil, keys.PublicKey{}, 1, make([]byte, MaxDatagram)); len(f) != FrameHeaderLen+MaxFrame {
		t.Errorf("largest datagram frame is %d bytes, want MaxFrame+4 = %d", len(f), MaxFrame+FrameHeaderLen)
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"socks", true}, {"vpn-client", true}, {"a.b_c-D9", true}, {"9", true},
		{strings.Repeat("x", MaxNameLen), true},
		{"", false}, {strings.Repeat("x", MaxNameLen+1), false}, {"-x", false}, {".x", false},
		{"a b", false}, {"a/b", false}, {"é", false}, {"a\x00", false},
	}
	for _, tt := range tests {
		if got := ValidName(tt.name); got != tt.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

// FuzzDecode: no input panics, and whatever decodes re-encodes to
// something that decodes to the same message.
func FuzzDecode(f *testing.F) {
	for _, v := range vectors {
		b := tstest.Unhex(f, v.hex)
		f.Add(b[4], b[5:])
	}
	f.Add(byte(TypeHello), []byte{0x81, 0xa1, 0x76, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add(byte(TypeDial), []byte{0x80})
	f.Add(byte(TypeHello), append([]byte{0x81, 0xa4, 'n', 'a', 'm', 'e'}, tstest.HostileStr(3)...)) // name claims 4 GiB
	f.Add(byte(0xff), []byte{})
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		m, err := Decode(Type(typ), body)
		if err != nil {
			return
		}
		frame, err := Marshal(m)
		if err != nil {
			if d, ok := m.(*Datagram); ok && len(d.Payload) > MaxDatagram {
				return
			}
			t.Fatalf("re-encode %#v: %v", m, err)
		}
		typ2, body2, _, err := ReadFrame(bytes.NewReader(frame), nil, MaxFrame)
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		m2, err := Decode(typ2, body2)
		if err != nil {
			t.Fatalf("re-decode %x: %v", frame, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %#v != %#v", m, m2)
		}
	})
}

// FuzzReadFrame: framing never panics, never returns more than max bytes
// and never allocates for a length over the limit.
func FuzzReadFrame(f *testing.F) {
	for _, v := range vectors {
		f.Add(tstest.Unhex(f, v.hex))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var buf []byte
		for {
			typ, body, nbuf, err := ReadFrame(r, buf, MaxOpenFrame)
			if err != nil {
				return
			}
			if len(body)+1 > MaxOpenFrame {
				t.Fatalf("frame of %d bytes over the limit", len(body)+1)
			}
			buf = nbuf
			Decode(typ, body)
		}
	})
}
