package vpn

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestControlRoundTrip(t *testing.T) {
	msgs := []any{
		&hello{Version: 1, Port: 45, MTU: 1400},
		&assign{Version: 1, Addr: "10.77.0.2/24", Gateway: "10.77.0.1", MTU: DefaultMTU, Keepalive: 5000},
		&refuse{Code: refuseNotAllowed, Msg: "key not in vpn_server.allow"},
		&keepalive{},
	}
	var stream bytes.Buffer
	for _, m := range msgs {
		if err := writeMsg(&stream, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range msgs {
		got, err := readMsg(&stream)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %#v, want %#v", got, want)
		}
	}
	if _, err := readMsg(&stream); err != io.EOF {
		t.Errorf("read at the end: %v, want io.EOF", err)
	}
}

// TestControlVectors pins the bytes documented in the package doc.
func TestControlVectors(t *testing.T) {
	tests := []struct {
		m   any
		hex string
	}{
		{&keepalive{}, "0001 04"},
		{&hello{Version: 1, Port: 45, MTU: 0}, "0010 01 83 a176 01 a4706f7274 2d a36d7475 00"},
	}
	for _, tc := range tests {
		b, err := appendMsg(nil, tc.m)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := hex.DecodeString(strings.ReplaceAll(tc.hex, " ", ""))
		if !bytes.Equal(b, want) {
			t.Errorf("%T: % x, want % x", tc.m, b, want)
		}
	}
}

func TestReadMalformed(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"zero length", []byte{0, 0}, ErrMalformed},
		{"over the limit", []byte{0x04, 0x01}, ErrMalformed},
		{"unknown type", []byte{0, 1, 9}, ErrMalformed},
		{"keepalive with body", []byte{0, 2, 4, 0}, ErrMalformed},
		{"hello without body", []byte{0, 1, 1}, ErrMalformed},
		{"hello body not a map", []byte{0, 2, 1, 0xc0}, ErrMalformed},
		{"trailing bytes", []byte{0, 3, 1, 0x80, 0x80}, ErrMalformed},
		{"wrong field type", append([]byte{0, 7, 1, 0x81, 0xa1, 'v'}, 0xa3, 'a', 'b', 'c'), ErrMalformed},
		{"port over 65535", frameOf(1, 0x81, 0xa4, 'p', 'o', 'r', 't', 0xce, 0, 1, 0x11, 0x70), ErrMalformed},
		{"negative port", frameOf(1, 0x81, 0xa4, 'p', 'o', 'r', 't', 0xff), ErrMalformed},
		{"port as a string", frameOf(1, 0x81, 0xa4, 'p', 'o', 'r', 't', 0xa1, '1'), ErrMalformed},
		{"refuse code over 255", frameOf(3, 0x81, 0xa4, 'c', 'o', 'd', 'e', 0xcd, 1, 0), ErrMalformed},
		// An array header claiming 2^32-1 elements where an integer belongs
		// is refused before anything is allocated (found by FuzzReadMsg:
		// decoding it took gigabytes).
		{"port as a huge array", frameOf(1, 0x81, 0xa4, 'p', 'o', 'r', 't', 0xdd, 0xff, 0xff, 0xff, 0xff), ErrMalformed},
		{"version as a huge map", frameOf(1, 0x81, 0xa1, 'v', 0xdf, 0xff, 0xff, 0xff, 0xff), ErrMalformed},
		{"truncated body", []byte{0, 5, 1, 0x80}, io.ErrUnexpectedEOF},
		{"truncated header", []byte{0}, io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readMsg(bytes.NewReader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestAssignParsed(t *testing.T) {
	tests := []struct {
		name string
		a    assign
		ok   bool
	}{
		{"good", assign{Addr: "10.77.0.2/24", Gateway: "10.77.0.1", MTU: 1400}, true},
		{"IPv6", assign{Addr: "fd00::2/64", Gateway: "fd00::1", MTU: 1400}, false},
		{"/32", assign{Addr: "10.77.0.2/32", Gateway: "10.77.0.1", MTU: 1400}, false},
		{"gateway outside", assign{Addr: "10.77.0.2/24", Gateway: "10.78.0.1", MTU: 1400}, false},
		{"gateway is the address", assign{Addr: "10.77.0.2/24", Gateway: "10.77.0.2", MTU: 1400}, false},
		{"garbage", assign{Addr: "x", Gateway: "10.77.0.1", MTU: 1400}, false},
		{"tiny MTU", assign{Addr: "10.77.0.2/24", Gateway: "10.77.0.1", MTU: 100}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.a.parsed()
			if (err == nil) != tc.ok {
				t.Fatalf("parsed: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
		})
	}
}

// FuzzReadMsg: no input panics, and what decodes re-encodes to a frame
// that decodes to the same message.
func FuzzReadMsg(f *testing.F) {
	for _, m := range []any{
		&hello{Version: 1, Port: 45, MTU: 1400},
		&assign{Version: 1, Addr: "10.77.0.2/24", Gateway: "10.77.0.1", MTU: DefaultMTU, Keepalive: 5000},
		&refuse{Code: 2, Msg: "no"},
		&keepalive{},
	} {
		b, err := appendMsg(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	f.Add([]byte{0, 3, 1, 0x80, 0x80})
	f.Add(append([]byte{0, 15, byte(typeRefuse), 0x81, 0xa3, 'm', 's', 'g'}, hostileStr(3)...)) // msg claims 4 GiB
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := readMsg(bytes.NewReader(in))
		if err != nil {
			return
		}
		b, err := appendMsg(nil, m)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", m, err)
		}
		m2, err := readMsg(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("decode re-encoded %#v: %v", m, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %#v became %#v", m, m2)
		}
	})
}

// FuzzIPv4Addrs: the packet parser never panics and never accepts a
// packet shorter than its header or its total length.
func FuzzIPv4Addrs(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 77, 0, 2, 10, 99, 0, 5})
	f.Add([]byte{0x60})
	f.Add([]byte{0x4f, 0, 0, 20})
	f.Fuzz(func(t *testing.T, p []byte) {
		_, _, ok := ipv4Addrs(p)
		if ok && (len(p) < 20 || int(p[2])<<8|int(p[3]) > len(p)) {
			t.Fatalf("accepted a malformed packet % x", p)
		}
	})
}

// frameOf returns a control frame of type t with body.
func frameOf(t byte, body ...byte) []byte {
	return append([]byte{byte((len(body) + 1) >> 8), byte(len(body) + 1), t}, body...)
}

func TestBoundedIntegers(t *testing.T) {
	// Every msgpack integer encoding of an in-range value decodes.
	for _, enc := range [][]byte{{0x2d}, {0xcc, 0x2d}, {0xcd, 0, 0x2d}, {0xce, 0, 0, 0, 0x2d}, {0xcf, 0, 0, 0, 0, 0, 0, 0, 0x2d}, {0xd0, 0x2d}, {0xd1, 0, 0x2d}} {
		m, err := readMsg(bytes.NewReader(frameOf(1, append([]byte{0x81, 0xa4, 'p', 'o', 'r', 't'}, enc...)...)))
		if h, ok := m.(*hello); err != nil || !ok || h.Port != 45 {
			t.Errorf("port encoded as % x: %#v, %v", enc, m, err)
		}
	}
}
