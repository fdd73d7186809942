package socks

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// TestStreamVectors checks the test vectors of the package documentation.
func TestStreamVectors(t *testing.T) {
	headers := []struct {
		name string
		req  request
		hex  string
	}{
		{"domain", request{cmdConnect, addr{Name: "example.com", Port: 80}}, "01 01 03 0b 6578616d706c652e636f6d 0050"},
		{"ipv4", request{cmdConnect, addr{IP: netip.MustParseAddr("10.0.0.1"), Port: 443}}, "01 01 01 0a000001 01bb"},
		{"ipv6", request{cmdConnect, addr{IP: netip.MustParseAddr("::1"), Port: 8080}}, "01 01 04 00000000000000000000000000000001 1f90"},
		{"udp", request{cmdUDPAssociate, addr{IP: netip.MustParseAddr("0.0.0.0")}}, "01 03 01 00000000 0000"},
	}
	for _, tt := range headers {
		t.Run(tt.name, func(t *testing.T) {
			want := tstest.Unhex(t, tt.hex)
			got, err := appendStreamHeader(nil, streamVersion1, tt.req)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("encode = %x, %v; want %x", got, err, want)
			}
			r := bytes.NewReader(append(want, "data"...))
			ver, dec, err := readStreamHeader(r)
			if err != nil || dec != tt.req || ver != streamVersion1 {
				t.Errorf("decode = %d %+v, %v; want 1 %+v", ver, dec, err, tt.req)
			}
			if r.Len() != 4 {
				t.Errorf("decode left %d bytes, want the 4 data bytes", r.Len())
			}
			// Version 2 differs in its first byte only.
			v2, _ := appendStreamHeader(nil, streamVersion2, tt.req)
			if ver, dec, err := readStreamHeader(bytes.NewReader(v2)); err != nil || ver != streamVersion2 || dec != tt.req || !bytes.Equal(v2[1:], want[1:]) || v2[0] != 2 {
				t.Errorf("version 2 %x: decode = %d %+v, %v", v2, ver, dec, err)
			}
		})
	}
	replies := []struct {
		ver   byte
		rep   Reply
		assoc uint32
		bnd   addr
		hex   string
	}{
		{1, ReplySucceeded, 0, addr{}, "01 00 00000000"},
		{1, ReplySucceeded, 7, addr{}, "01 00 00000007"},
		{1, ReplyConnRefused, 0, addr{}, "01 05 00000000"},
		{2, ReplySucceeded, 0, addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 40000}, "02 00 00000000 01 c0000201 9c40"},
		{2, ReplySucceeded, 0, addr{IP: netip.MustParseAddr("2001:db8::1"), Port: 443}, "02 00 00000000 04 20010db8000000000000000000000001 01bb"},
		{2, ReplyConnRefused, 0, addr{IP: netip.IPv4Unspecified()}, "02 05 00000000 01 00000000 0000"},
	}
	for _, tt := range replies {
		want := tstest.Unhex(t, tt.hex)
		if got := appendStreamReply(nil, tt.ver, tt.rep, tt.assoc, tt.bnd); !bytes.Equal(got, want) {
			t.Errorf("reply %d %v %d %v = %x, want %x", tt.ver, tt.rep, tt.assoc, tt.bnd, got, want)
		}
		rep, assoc, bnd, err := readStreamReply(bytes.NewReader(want), tt.ver)
		if err != nil || rep != tt.rep || assoc != tt.assoc || bnd != tt.bnd {
			t.Errorf("decode %x = %v %d %v %v", want, rep, assoc, bnd, err)
		}
	}
	// A failure with no bound address says 0.0.0.0:0.
	if got := appendStreamReply(nil, 2, ReplyHostUnreachable, 0, addr{}); !bytes.Equal(got, tstest.Unhex(t, "02 04 00000000 01 00000000 0000")) {
		t.Errorf("v2 reply without address = %x", got)
	}
}

func TestStreamHeaderErrors(t *testing.T) {
	tests := []struct {
		name, hex string
		want      error
	}{
		{"empty", "", io.EOF},
		{"truncated version", "01", ErrMalformed},
		{"bad version", "03 01 01 0a000001 01bb", ErrMalformed},
		{"bind command", "01 02 01 0a000001 01bb", ErrMalformed},
		{"bad address type", "01 01 05 0a000001 01bb", errAddrType},
		{"empty name", "01 01 03 00 0050", errEmptyName},
		{"truncated name", "01 01 03 0b 6578616d", ErrMalformed},
		{"truncated port", "01 01 01 0a000001 01", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readStreamHeader(bytes.NewReader(tstest.Unhex(t, tt.hex)))
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	for _, bad := range []struct {
		ver byte
		hex string
	}{
		{1, "02 00 00000000"},                         // another version than asked
		{2, "01 00 00000000"},                         // a version 1 reply to version 2
		{2, "02 00 00000000"},                         // no address
		{2, "02 00 00000000 03 01 78 0050"},           // a name as bound address
		{2, "02 00 00000000 01 c00002"},               // truncated address
		{2, "02 00 00000000 09 00000000 0000"},        // unknown address type
		{1, "01 00 0000"},                             // truncated
		{2, "02 00 00000000 04 20010db8000000000000"}, // truncated IPv6
	} {
		if _, _, _, err := readStreamReply(bytes.NewReader(tstest.Unhex(t, bad.hex)), bad.ver); !errors.Is(err, ErrMalformed) {
			t.Errorf("reply %s to version %d: err = %v, want ErrMalformed", bad.hex, bad.ver, err)
		}
	}
	long := request{cmdConnect, addr{Name: strings.Repeat("x", 255), Port: 1}}
	enc, err := appendStreamHeader(nil, streamVersion2, long)
	if err != nil {
		t.Fatalf("255-byte name: %v", err)
	}
	if _, dec, err := readStreamHeader(bytes.NewReader(enc)); err != nil || dec != long {
		t.Errorf("255-byte name: decoded %d bytes, %v", len(dec.Dst.Name), err)
	}
	if _, err := appendStreamHeader(nil, streamVersion2, request{cmdConnect, addr{Name: strings.Repeat("x", 256)}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("256-byte name: err = %v, want ErrMalformed", err)
	}
}

func TestReadRequest(t *testing.T) {
	tests := []struct {
		name, hex string
		want      request
		err       error
	}{
		{"connect ipv4", "05 01 00 01 7f000001 0050", request{cmdConnect, addr{IP: netip.MustParseAddr("127.0.0.1"), Port: 80}}, nil},
		{"connect name", "05 01 00 03 09 6c6f63616c686f7374 1f90", request{cmdConnect, addr{Name: "localhost", Port: 8080}}, nil},
		{"connect ipv6", "05 01 00 04 00000000000000000000000000000001 0016", request{cmdConnect, addr{IP: netip.MustParseAddr("::1"), Port: 22}}, nil},
		{"bind parses", "05 02 00 01 00000000 0000", request{cmdBind, addr{IP: netip.MustParseAddr("0.0.0.0")}}, nil},
		{"socks4", "04 01 0050 7f000001 00", request{}, ErrMalformed},
		{"bad atyp", "05 01 00 09 7f000001 0050", request{}, errAddrType},
		{"empty name", "05 01 00 03 00 0050", request{}, errEmptyName},
		{"empty name, truncated port", "05 01 00 03 00 00", request{}, ErrMalformed},
		{"truncated", "05 01 00 01 7f00", request{}, ErrMalformed},
		{"empty", "", request{}, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bytes.NewReader(tstest.Unhex(t, tt.hex))
			got, err := readRequest(r)
			if !errors.Is(err, tt.err) || (tt.err == nil && got != tt.want) {
				t.Errorf("readRequest = %+v, %v; want %+v, %v", got, err, tt.want, tt.err)
			}
			// A request that gets a reply is read whole: closing with
			// unread bytes would reset the connection.
			if (err == nil || errors.Is(err, errEmptyName)) && r.Len() != 0 {
				t.Errorf("%d bytes of the request left unread", r.Len())
			}
		})
	}
}

func TestReadGreetingAndAuth(t *testing.T) {
	m, err := readGreeting(bytes.NewReader(tstest.Unhex(t, "05 02 00 02")))
	if err != nil || !bytes.Equal(m, []byte{0, 2}) {
		t.Errorf("greeting = %x, %v", m, err)
	}
	for _, bad := range []string{"04 01 00", "05 03 00 02", "05"} {
		if _, err := readGreeting(bytes.NewReader(tstest.Unhex(t, bad))); !errors.Is(err, ErrMalformed) {
			t.Errorf("greeting %s: err = %v, want ErrMalformed", bad, err)
		}
	}
	tests := []struct {
		name, hex  string
		user, pass string
		err        error
	}{
		{"ok", "01 04 75736572 04 70617373", "user", "pass", nil},
		{"empty both", "01 00 00", "", "", nil},
		{"bad version", "05 04 75736572 04 70617373", "", "", ErrMalformed},
		{"truncated user", "01 04 7573", "", "", ErrMalformed},
		{"truncated pass", "01 04 75736572 04 7061", "", "", ErrMalformed},
		{"missing pass length", "01 04 75736572", "", "", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, p, err := readAuth(bytes.NewReader(tstest.Unhex(t, tt.hex)))
			if !errors.Is(err, tt.err) || u != tt.user || p != tt.pass {
				t.Errorf("readAuth = %q %q %v; want %q %q %v", u, p, err, tt.user, tt.pass, tt.err)
			}
		})
	}
}

func TestUDPHeader(t *testing.T) {
	b := tstest.Unhex(t, "0000 00 01 7f000001 0035 68656c6c6f")
	frag, dst, data, err := parseUDPHeader(b)
	if err != nil || frag != 0 || dst != (addr{IP: netip.MustParseAddr("127.0.0.1"), Port: 53}) || string(data) != "hello" {
		t.Errorf("parse = %d %v %q %v", frag, dst, data, err)
	}
	enc, err := appendUDPHeader(nil, dst)
	if err != nil || !bytes.Equal(append(enc, "hello"...), b) {
		t.Errorf("encode = %x, %v; want %x", enc, err, b)
	}
	if frag, _, _, err := parseUDPHeader(tstest.Unhex(t, "0000 02 03 01 78 0035")); err != nil || frag != 2 {
		t.Errorf("fragment: frag %d, err %v", frag, err)
	}
	for _, bad := range []string{"", "0000", "0000 00 01 7f00", "0000 00 07 7f000001 0035", "0000 00 03 00 0035"} {
		if _, _, _, err := parseUDPHeader(tstest.Unhex(t, bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("parse %q: err = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestReplyFor(t *testing.T) {
	if got := ReplyConnRefused.String(); got != "connection refused" {
		t.Errorf("String = %q", got)
	}
	if got := Reply(0x42).String(); got != "reply(66)" {
		t.Errorf("String = %q", got)
	}
}

// Fuzz targets: every decoder must return an error, never panic, and what
// it decodes must encode back to the bytes it consumed.

func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{"05010001 7f000001 0050", "05010003 096c6f63616c686f7374 1f90", "05030004 00000000000000000000000000000001 0000", "050100", "04"} {
		f.Add(tstest.Unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		req, err := readRequest(r)
		if err != nil {
			return
		}
		enc, err := appendAddr([]byte{5, req.Cmd, b[2]}, req.Dst)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", req, err)
		}
		if used := b[:len(b)-r.Len()]; !bytes.Equal(enc, used) {
			t.Fatalf("round trip %x != %x", enc, used)
		}
	})
}

func FuzzReadAuth(f *testing.F) {
	for _, s := range []string{"01 04 75736572 04 70617373", "01 00 00", "01 ff", "05"} {
		f.Add(tstest.Unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		u, p, err := readAuth(bytes.NewReader(b))
		if err != nil {
			return
		}
		enc := append([]byte{1, byte(len(u))}, u...)
		enc = append(append(enc, byte(len(p))), p...)
		if !bytes.HasPrefix(b, enc) {
			t.Fatalf("round trip %x is not a prefix of %x", enc, b)
		}
	})
}

func FuzzParseUDPHeader(f *testing.F) {
	for _, s := range []string{"0000 00 01 7f000001 0035 68656c6c6f", "0000 00 03 09 6c6f63616c686f7374 0035", "0000 00 04 00000000000000000000000000000001 0035", "0000 01", ""} {
		f.Add(tstest.Unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, dst, data, err := parseUDPHeader(b)
		if err != nil {
			return
		}
		enc, err := appendAddr(nil, dst)
		if err != nil {
			t.Fatalf("decoded %v does not encode: %v", dst, err)
		}
		if got := append(append(b[:3:3], enc...), data...); !bytes.Equal(got, b) {
			t.Fatalf("round trip %x != %x", got, b)
		}
	})
}

func FuzzReadStreamHeader(f *testing.F) {
	for _, s := range []string{"01 01 03 0b 6578616d706c652e636f6d 0050", "01 01 01 0a000001 01bb", "01 03 04 00000000000000000000000000000001 1f90", "01 01 03 00", "02 01 01 0a000001 01bb", "03"} {
		f.Add(tstest.Unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		ver, req, err := readStreamHeader(r)
		if err != nil {
			return
		}
		enc, err := appendStreamHeader(nil, ver, req)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", req, err)
		}
		if used := b[:len(b)-r.Len()]; !bytes.Equal(enc, used) {
			t.Fatalf("round trip %x != %x", enc, used)
		}
	})
}

func FuzzReadStreamReply(f *testing.F) {
	f.Add(byte(1), tstest.Unhex(f, "01 00 00000007"))
	f.Add(byte(1), tstest.Unhex(f, "01 05"))
	f.Add(byte(2), tstest.Unhex(f, "02 00 00000000 01 c0000201 9c40"))
	f.Add(byte(2), tstest.Unhex(f, "02 00 00000000 04 20010db8000000000000000000000001 01bb"))
	f.Add(byte(2), tstest.Unhex(f, "02 00 00000000 03 01 78 0050"))
	f.Fuzz(func(t *testing.T, ver byte, b []byte) {
		if ver != streamVersion1 && ver != streamVersion2 {
			return // the client asks for one of these
		}
		r := bytes.NewReader(b)
		rep, assoc, bnd, err := readStreamReply(r, ver)
		if err != nil {
			return
		}
		if enc, used := appendStreamReply(nil, ver, rep, assoc, bnd), b[:len(b)-r.Len()]; !bytes.Equal(enc, used) {
			t.Fatalf("round trip %x != %x", enc, used)
		}
	})
}
