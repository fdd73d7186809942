package proto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

func key(b byte) Key {
	var k Key
	for i := range k {
		k[i] = b
	}
	return k
}

func sampleMessages() []Message {
	return []Message{
		&Hello{Version: Version, Addrs: []string{"127.0.0.1:7001"}, Apps: []App{{Name: "chat", Port: 7}},
			Links:  []LinkState{{Peer: key(2), RTT: 1500 * time.Microsecond}},
			Routes: []RouteState{{Route: 42, Remote: key(3), Initiator: true, Hops: []Key{key(1), key(2), key(3)}}}},
		&Welcome{Version: Version},
		&Welcome{Version: Version, Code: CodeVersion, Msg: "speak v1"},
		&Links{Links: []LinkState{{Peer: key(2), RTT: time.Millisecond}, {Peer: key(3), RTT: 2 * time.Millisecond}}},
		&Links{},
		&RouteRequest{Req: 1, Dst: key(9), MaxHops: 4},
		&RouteReply{Req: 1, Route: 7, Hops: []Key{key(1), key(9)}, Per: []time.Duration{time.Millisecond}},
		&RouteReply{Req: 2, Code: CodeNoPath, Msg: "no path"},
		&Install{Req: 3, Route: 7, Rules: []Rule{{InPeer: key(1), InLabel: 10, OutPeer: key(3), OutLabel: 11}, {InPeer: key(3), InLabel: 12, OutPeer: key(1), OutLabel: 13}}},
		&Install{Req: 4, Route: 7, End: &Endpoint{Remote: key(1), Peer: key(2), InLabel: 5, OutLabel: 6, Hops: []Key{key(1), key(2), key(3)}}},
		&InstallAck{Req: 3},
		&InstallAck{Req: 3, Code: CodeLabelInUse, Msg: "label 10 from pk:01010101 in use"},
		&RouteDown{Route: 7, Code: CodeNoPath, Msg: "no path"},
		&RouteClosed{Route: 7},
		&PathQuery{Req: 5, Dst: key(4)},
		&PathReply{Req: 5, Hops: []Key{key(1), key(2), key(4)}, Per: []time.Duration{1, 2}},
		&DirectoryQuery{Req: 6, Offset: 0, Limit: 100},
		&Hello{Version: Version, Join: "swinv1-00"},
		&Welcome{Version: Version, Code: CodeNotMember, Msg: "not a member"},
		&Members{Full: true, Total: 2, Add: []Key{key(1), key(2)}},
		&Welcome{Version: Version, Members: true},
		&Members{Del: []Key{key(3)}},
		&DirectoryReply{Req: 6, Total: 1, Nodes: []NodeEntry{{Key: key(1), Addrs: []string{"a:1"}, Apps: []App{{"x", 1}}, Since: 1}}},
		&Hello{Version: Version, Name: "Kitchen-Pi.2_a"},
		&DirectoryReply{Req: 7, Total: 2, Nodes: []NodeEntry{{Key: key(1), Name: "pi"}, {Key: key(2), Name: "pi"}}},
		// A manager cluster: a follower's redirect and its stale directory.
		&RouteReply{Req: 7, Code: CodeNotLeader, Msg: "not leader", Leader: func() *Key { k := key(5); return &k }()},
		&RouteReply{Req: 8, Code: CodeNoQuorum, Msg: "no quorum"},
		&DirectoryReply{Req: 9, Total: 0, Stale: true},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		t.Run(m.Type().String(), func(t *testing.T) {
			b, err := Encode(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("decode %x: %v", b, err)
			}
			if !reflect.DeepEqual(normalize(got), normalize(m)) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, m)
			}
			// Encode appends.
			b2, err := Encode([]byte{0xAA}, m)
			if err != nil || b2[0] != 0xAA || !bytes.Equal(b2[1:], b) {
				t.Fatalf("Encode does not append: %x %v", b2, err)
			}
		})
	}
}

// normalize maps empty slices to nil (msgpack cannot tell them apart).
func normalize(m Message) Message {
	v := reflect.ValueOf(m).Elem()
	out := reflect.New(v.Type())
	out.Elem().Set(v)
	zeroEmpty(out.Elem())
	return out.Interface().(Message)
}

// zeroEmpty sets every empty slice in v to nil. It copies each slice and
// pointee before changing what is in it, so that the message v was copied
// from is left as it was: a check that normalizes a message and then
// re-encodes it must encode what was decoded.
func zeroEmpty(v reflect.Value) {
	switch v.Kind() {
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(c, v)
		v.Set(c)
		for i := 0; i < c.Len(); i++ {
			zeroEmpty(c.Index(i))
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			zeroEmpty(v.Field(i))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			c := reflect.New(v.Elem().Type())
			c.Elem().Set(v.Elem())
			v.Set(c)
			zeroEmpty(c.Elem())
		}
	}
}

// The vectors in docs/protocol.md, byte for byte.
var vectors = []struct {
	name string
	msg  Message
	hex  string
}{
	{"route-request", &RouteRequest{Req: 1, Dst: key(9), MaxHops: 4},
		"04" + "83" + "a171" + "01" + "a164" + "c420" + strings.Repeat("09", 32) + "a16d" + "04"},
	{"install-ack", &InstallAck{Req: 3, Code: CodeLabelInUse, Msg: "x"},
		"07" + "83" + "a171" + "03" + "a163" + "05" + "a165" + "a178"},
	{"route-closed", &RouteClosed{Route: 300},
		"09" + "81" + "a26964" + "cd012c"},
	{"welcome", &Welcome{Version: 1},
		"02" + "83" + "a176" + "01" + "a163" + "00" + "a165" + "a0"},
	{"links", &Links{Links: []LinkState{{Peer: key(2), RTT: 1500 * time.Microsecond}}},
		"03" + "81" + "a16c" + "91" + "82" + "a16b" + "c420" + strings.Repeat("02", 32) + "a3727474" + "ce0016e360"},
	{"hello", &Hello{Version: 1, Addrs: []string{"10.0.0.1:7901"}},
		"01" + "85" + "a17601" + "a16191ad31302e302e302e313a37393031" + "a461707073c0" + "a16cc0" + "a172c0"},
	{"install", &Install{Req: 7, Route: 1, Rules: []Rule{{InPeer: key(1), InLabel: 10, OutPeer: key(3), OutLabel: 11}}},
		"06" + "84" + "a17107" + "a2696401" + "a2727391" + "84" + "a26970c420" + strings.Repeat("01", 32) + "a2696c0a" +
			"a26f70c420" + strings.Repeat("03", 32) + "a26f6c0b" + "a3656e64c0"},
	{"hello-join", &Hello{Version: 1, Join: "swinv1-x"},
		"01" + "86" + "a17601" + "a161c0" + "a461707073c0" + "a16cc0" + "a172c0" + "a16a" + "a8" + "7377696e76312d78"},
	{"welcome-not-member", &Welcome{Version: 1, Code: CodeNotMember, Msg: "x"},
		"02" + "83" + "a17601" + "a1630a" + "a165a178"},
	{"members", &Members{Full: true, Total: 1, Add: []Key{key(4)}},
		"0e" + "84" + "a166c3" + "a16e01" + "a16191c420" + strings.Repeat("04", 32) + "a164c0"},
	{"hello-name", &Hello{Version: 1, Name: "kitchen-pi"},
		"01" + "86" + "a17601" + "a161c0" + "a461707073c0" + "a16cc0" + "a172c0" + "a26e6d" + "aa" + "6b69746368656e2d7069"},
	{"directory-reply-name", &DirectoryReply{Req: 1, Total: 1, Nodes: []NodeEntry{{Key: key(5), Since: 1, Name: "pi"}}},
		"0d" + "83" + "a17101" + "a17401" + "a26e7391" + "86" + "a16bc420" + strings.Repeat("05", 32) +
			"a161c0" + "a461707073c0" + "a16cc0" + "a17301" + "a26e6d" + "a27069"},
}

func TestVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			b, err := Encode(nil, v.msg)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(b); got != v.hex {
				t.Fatalf("encoding\n got %s\nwant %s", got, v.hex)
			}
			want, _ := hex.DecodeString(v.hex)
			m, err := Decode(want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, v.msg) {
				t.Fatalf("decoded %#v, want %#v", m, v.msg)
			}
		})
	}
}

func TestDecodeAcceptsWideIntsAndUnknownKeys(t *testing.T) {
	// RouteClosed{300} with a uint64 (cf) integer and an unknown key "zz".
	b, _ := hex.DecodeString("09" + "82" + "a27a7a" + "c0" + "a26964" + "cf000000000000012c")
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if rc, ok := m.(*RouteClosed); !ok || rc.Route != 300 {
		t.Fatalf("got %#v", m)
	}
}

func TestDecodeErrors(t *testing.T) {
	good, _ := Encode(nil, &RouteRequest{Req: 1, Dst: key(1)})
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"unknown type", []byte{0, 0x80}, ErrUnknownType},
		{"unknown type high", []byte{200, 0x80}, ErrUnknownType},
		{"type only", []byte{byte(TypeHello)}, ErrMalformed},
		{"truncated", good[:len(good)-3], ErrMalformed},
		{"trailing", append(append([]byte{}, good...), 0), ErrMalformed},
		{"not a map", []byte{byte(TypeLinks), 0x05}, ErrMalformed},
		{"short key", mustHex("04" + "81" + "a164" + "c41f" + strings.Repeat("00", 31)), ErrMalformed},
		{"key as string", mustHex("04" + "81" + "a164" + "d920" + strings.Repeat("41", 32)), ErrMalformed},
		{"too large", append([]byte{byte(TypeLinks)}, make([]byte, MaxControl)...), ErrTooLarge},
		{"too many rules", mustEncode(&Install{Rules: make([]Rule, 3)}), ErrMalformed},
		{"path mismatch", mustEncode(&RouteReply{Hops: []Key{key(1), key(2)}}), ErrMalformed},
		{"huge array header", mustHex("03" + "81" + "a16c" + "dd7fffffff"), ErrMalformed},
		{"hello bad name", mustEncode(&Hello{Version: Version, Name: "kitchen pi"}), ErrMalformed},
		{"hello long name", mustEncode(&Hello{Version: Version, Name: strings.Repeat("a", MaxName+1)}), ErrMalformed},
		{"directory bad name", mustEncode(&DirectoryReply{Nodes: []NodeEntry{{Name: "pi\x1b[2J"}}}), ErrMalformed},
		{"hello name not a string", mustHex("01" + "81" + "a26e6d" + "01"), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %#v, %v; want %v", m, err, tt.want)
			}
		})
	}
}

func TestEncodeTooLarge(t *testing.T) {
	_, err := Encode(nil, &Links{Links: make([]LinkState, 2000)})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func mustEncode(m Message) []byte {
	b, err := Encode(nil, m)
	if err != nil {
		panic(err)
	}
	return b
}

func TestDataFrame(t *testing.T) {
	b := AppendData(nil, 0x01020304, KindPing, []byte{0xAA, 0xBB})
	if got, want := hex.EncodeToString(b), "0102030404aabb"; got != want {
		t.Fatalf("frame %s, want %s", got, want)
	}
	label, kind, p, err := ParseData(b)
	if err != nil || label != 0x01020304 || kind != KindPing || !bytes.Equal(p, []byte{0xAA, 0xBB}) {
		t.Fatalf("ParseData = %x %v %x %v", label, kind, p, err)
	}
	SetLabel(b, 7)
	if l, ok := Label(b); !ok || l != 7 {
		t.Fatalf("Label = %d %v", l, ok)
	}
	var h [DataHeaderLen]byte
	PutDataHeader(h[:], 0xFFFFFFFF, KindSession)
	if hex.EncodeToString(h[:]) != "ffffffff00" {
		t.Fatalf("header %x", h)
	}
	for _, bad := range [][]byte{nil, {1, 2, 3, 4}, {0, 0, 0, 1, 6}, {0, 0, 0, 1, 255}} {
		if _, _, _, err := ParseData(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseData(%x) err = %v", bad, err)
		}
	}
	if _, ok := Label([]byte{1}); ok {
		t.Error("Label of a 1-byte frame ok")
	}
}

func TestStrings(t *testing.T) {
	if TypeInstall.String() != "install" || Type(99).String() != "type(99)" {
		t.Error("Type.String")
	}
	if CodeNoPath.String() != "no path" || Code(99).String() != "code(99)" {
		t.Error("Code.String")
	}
	if KindPong.String() != "pong" || Kind(99).String() != "kind(99)" {
		t.Error("Kind.String")
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(mustEncode(m))
	}
	for _, v := range vectors {
		f.Add(mustHex(v.hex))
	}
	f.Add([]byte{})
	f.Add([]byte{3, 0x81, 0xa1, 0x6c, 0xdd, 0x7f, 0xff, 0xff, 0xff})
	f.Add(append([]byte{byte(TypeWelcome), 0x81, 0xa1, 'e'}, tstest.HostileStr(3)...)) // message claims 4 GiB
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes and decodes to the same message.
		tstest.CheckReencode(t, m, func(m Message) ([]byte, error) { return Encode(nil, m) }, Decode, normalize)
	})
}

func FuzzParseData(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 1, 2, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 5})
	f.Add([]byte{1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		label, kind, p, err := ParseData(b)
		if err != nil {
			return
		}
		if got := AppendData(nil, label, kind, p); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding %x != %x", got, b)
		}
	})
}

func TestInvite(t *testing.T) {
	tok, err := NewInvite()
	if err != nil {
		t.Fatal(err)
	}
	s := tok.String()
	if len(s) != InviteLen {
		t.Fatalf("token %q has %d characters, want %d", s, len(s), InviteLen)
	}
	got, err := ParseInvite(" " + s + "\n")
	if err != nil || got != tok {
		t.Fatalf("ParseInvite(%q) = %v, %v", s, got, err)
	}
	if !got.MatchesHash(tok.Hash()) {
		t.Fatal("hash does not match")
	}
	other, _ := NewInvite()
	if other == tok || got.MatchesHash(other.Hash()) {
		t.Fatal("two tokens are equal")
	}
	flip := []byte(s)
	if flip[20] == 'a' {
		flip[20] = 'b'
	} else {
		flip[20] = 'a'
	}
	for name, bad := range map[string]string{
		"empty":     "",
		"prefix":    "swinv2-" + s[len(InvitePrefix):],
		"short":     s[:len(s)-1],
		"long":      s + "0",
		"not hex":   s[:len(s)-1] + "g",
		"one digit": string(flip),
	} {
		if _, err := ParseInvite(bad); !errors.Is(err, ErrBadInvite) {
			t.Errorf("%s: ParseInvite(%q) = %v, want ErrBadInvite", name, bad, err)
		}
	}
}

func FuzzParseInvite(f *testing.F) {
	tok, _ := NewInvite()
	f.Add(tok.String())
	f.Add(InvitePrefix)
	f.Add("")
	f.Add(InvitePrefix + strings.Repeat("0", 2*inviteRawLen))
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseInvite(s)
		if err != nil {
			if !errors.Is(err, ErrBadInvite) {
				t.Fatalf("error does not wrap ErrBadInvite: %v", err)
			}
			return
		}
		// Whatever parses prints as a token that parses to the same.
		tok2, err := ParseInvite(tok.String())
		if err != nil || tok2 != tok {
			t.Fatalf("round trip of %q: %v %v", s, tok2, err)
		}
	})
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"kitchen-pi", "Kitchen-Pi", "a", "0", "pi.lan", "rack_3", strings.Repeat("a", MaxName)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", " ", "-pi", ".pi", "_pi", "kitchen pi", "pk:abcd", "a:1", "pi\n", "pï", "рi",
		"a\x00", strings.Repeat("a", MaxName+1), "local", "LOCAL", strings.Repeat("ab", 32)} {
		err := CheckName(bad)
		if !errors.Is(err, ErrBadName) {
			t.Errorf("CheckName(%q) = %v, want ErrBadName", bad, err)
		}
	}
	if err := CheckName("kitchen pi"); err == nil || !strings.Contains(err.Error(), "letters, digits") {
		t.Errorf("the error does not say which characters are allowed: %v", err)
	}
	// The character named is the one the user typed, not its first byte.
	for name, want := range map[string]string{"küche": `'ü' at byte 1`, "pi\xff": `byte 0xff (not UTF-8) at byte 2`} {
		if err := CheckName(name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckName(%q) = %v, want it to name %s", name, err, want)
		}
	}
	if !EqualName("Kitchen-Pi", "kitchen-pi") || EqualName("pi", "pj") || EqualName("pi", "pi2") {
		t.Error("EqualName")
	}
}
