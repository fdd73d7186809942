package chatwire

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

func TestRoundTrip(t *testing.T) {
	msgs := []Message{
		&Hello{Version: 1, MaxText: 16384},
		&Msg{ID: [16]byte{1, 2}, From: [32]byte{3}, To: [32]byte{4}, Sent: 1700000000123, Text: "héllo"},
		&Msg{},
		&Ack{ID: [16]byte{5}, Code: CodeRateLimited},
	}
	var buf bytes.Buffer
	for _, m := range msgs {
		if err := Write(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for _, want := range msgs {
		got, err := Read(r)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
	if _, err := Read(r); err != io.EOF {
		t.Errorf("at end: %v, want io.EOF", err)
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"zero length", []byte{0, 0, 0, 0}, ErrMalformed},
		{"too long", []byte{0, 1, 0, 1}, ErrTooLong},
		{"unknown type", []byte{0, 0, 0, 1, 9}, ErrMalformed},
		{"bad body", []byte{0, 0, 0, 2, 2, 0xc1}, ErrMalformed},
		{"torn header", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"torn body", []byte{0, 0, 0, 5, 2}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(bufio.NewReader(bytes.NewReader(tt.in)))
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAppendTooLong(t *testing.T) {
	if _, err := Append(nil, &Msg{Text: strings.Repeat("x", MaxFrame)}); !errors.Is(err, ErrTooLong) {
		t.Errorf("err = %v, want ErrTooLong", err)
	}
}

func TestCodes(t *testing.T) {
	for c := CodeOK; c <= CodeMalformed; c++ {
		if c.Delivered() && c.Permanent() {
			t.Errorf("%v both delivered and permanent", c)
		}
		if strings.HasPrefix(c.String(), "code(") {
			t.Errorf("code %d has no name", c)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range []Message{&Hello{Version: 1, MaxText: 100}, &Msg{Text: "x", Sent: 5}, &Ack{Code: 3}} {
		b, _ := Append(nil, m)
		f.Add(b[4:])
	}
	f.Add([]byte{})
	f.Add([]byte{2, 0x80})
	f.Add(append([]byte{byte(TypeMsg), 0x81, 0xa1, 'x'}, tstest.HostileStr(3)...)) // text claims 4 GiB
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := Append(nil, m)
		if err != nil {
			return
		}
		m2, err := Decode(enc[4:])
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-decode: %+v vs %+v (%v)", m, m2, err)
		}
	})
}

func FuzzRead(f *testing.F) {
	b, _ := Append(nil, &Msg{Text: "x"})
	f.Add(b)
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for i := 0; i < 100; i++ {
			if _, err := Read(r); err != nil {
				return
			}
		}
	})
}

// TestVectors pins the byte format (messenger/doc.go lists the same
// vectors): ID a0…af, sender 01…20, recipient 21…40.
func TestVectors(t *testing.T) {
	var id [16]byte
	var from, to [32]byte
	for i := range id {
		id[i] = byte(0xa0 + i)
	}
	for i := range from {
		from[i], to[i] = byte(i+1), byte(0x21+i)
	}
	tests := []struct {
		m   Message
		hex string
	}{
		{&Hello{Version: 1, MaxText: 16384}, "0000000c 01 82 a176 01 a36d6178 cd4000"},
		{&Msg{ID: id, From: from, To: to, Sent: 1700000000000000000, Text: "hi"},
			"00000070 02 85 a26964 c410 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf a166 c420 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20 " +
				"a2746f c420 2122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40 a174 cf17979cfe362a0000 a178 a26869"},
		{&Ack{ID: id, Code: CodeOK}, "0000001a 03 82 a26964 c410 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf a163 00"},
	}
	for _, tt := range tests {
		want, err := hex.DecodeString(strings.ReplaceAll(tt.hex, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Append(nil, tt.m)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: encoded %x, want %x (%v)", tt.m.Type(), got, want, err)
		}
		m, err := Decode(want[4:])
		if err != nil || !reflect.DeepEqual(m, tt.m) {
			t.Errorf("%s: decoded %+v, %v", tt.m.Type(), m, err)
		}
	}
}
