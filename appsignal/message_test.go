package appsignal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// allKinds has one message of every kind; used by round-trip tests and as
// fuzz seeds.
var allKinds = []Message{
	{ID: 1, Payload: Hello{Version: ProtocolVersion, AppID: 42, Name: "vpn-client", Pid: 1234, Token: "s3cret"}},
	{ID: 1, Payload: Welcome{Version: ProtocolVersion, AppID: 42}},
	{ID: 7, Payload: Ping{}},
	{ID: 7, Payload: Pong{}},
	{ID: 8, Payload: UsageRequest{}},
	{ID: 8, Payload: UsageReply{Counters: map[string]uint64{"goroutines": 12, "heap_bytes": 1 << 20}}},
	{ID: 9, Payload: ShutdownRequest{Reason: "bye"}},
	{ID: 9, Payload: ShutdownAck{}},
	{ID: 0, Payload: Event{Kind: "ready", Text: "listening on :1080"}},
	{ID: 3, Payload: Error{Code: CodeUnknownKind, Message: "unknown kind 99"}},
}

func TestMessageRoundTripEveryKind(t *testing.T) {
	extremes := []Message{
		{ID: 0xFFFFFFFF, Payload: Hello{Version: 0xFFFF, AppID: 1<<64 - 1, Name: "", Pid: -1, Token: ""}},
		{ID: 70000, Payload: Welcome{Version: 0, AppID: 0}},
		{ID: 2, Payload: UsageReply{Counters: map[string]uint64{}}},
		{ID: 2, Payload: UsageReply{Counters: map[string]uint64{"max": 1<<64 - 1, "zero": 0, "é": 300}}},
		{ID: 2, Payload: Event{Kind: string(bytes.Repeat([]byte("k"), 40)), Text: string(bytes.Repeat([]byte("t"), 70000))}},
		{ID: 2, Payload: Error{Code: 0xFFFF, Message: ""}},
	}
	seen := map[Kind]bool{}
	for _, m := range append(append([]Message{}, allKinds...), extremes...) {
		t.Run(m.Kind().String(), func(t *testing.T) {
			seen[m.Kind()] = true
			b, err := EncodeMessage(m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeMessage(b)
			if err != nil {
				t.Fatalf("decode %x: %v", b, err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip: got %#v, want %#v", got, m)
			}
			b2, _ := EncodeMessage(got)
			if !bytes.Equal(b, b2) {
				t.Fatalf("encoding not deterministic: %x vs %x", b, b2)
			}
		})
	}
	for k := KindHello; k <= KindError; k++ {
		if !seen[k] {
			t.Errorf("kind %v not covered", k)
		}
	}
}

func TestUsageReplyKeysSorted(t *testing.T) {
	m := Message{ID: 1, Payload: UsageReply{Counters: map[string]uint64{"c": 3, "a": 1, "b": 2, "d": 4, "aa": 5}}}
	first, _ := EncodeMessage(m)
	for i := 0; i < 20; i++ { // map iteration order varies; the encoding must not
		b, _ := EncodeMessage(m)
		if !bytes.Equal(b, first) {
			t.Fatalf("encoding varies: %x vs %x", b, first)
		}
	}
	want := "93" + "06" + "01" + "91" + "85" + "a16101" + "a2616105" + "a16202" + "a16303" + "a16404"
	if got := hex.EncodeToString(first); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestDecodeMessageErrors(t *testing.T) {
	tstest.CheckDecodeErrors(t, func(b []byte) error {
		_, err := DecodeMessage(b)
		if errors.Is(err, ErrUnknownKind) && errors.Is(err, ErrMalformed) {
			return fmt.Errorf("unknown kind also reported as malformed: %v", err)
		}
		return err
	}, []tstest.DecodeCase{
		{"empty", "", ErrMalformed},
		{"not an array", "a3616263", ErrMalformed},
		{"envelope of 2", "920301", ErrMalformed},
		{"envelope of 4", "9403019000", ErrMalformed},
		{"kind not int", "93a10190", ErrMalformed},
		{"kind 256", "93cd010001" + "90", ErrMalformed},
		{"negative kind", "93ff0190", ErrMalformed},
		{"id over uint32", "9303cf000000010000000090", ErrMalformed},
		{"negative id", "9303d0ff90", ErrMalformed},
		{"unknown kind 0", "93000190", ErrUnknownKind},
		{"unknown kind 99", "93630590", ErrUnknownKind},
		{"payload not array", "930301c0", ErrMalformed},
		{"trailing byte", "93030190c0", ErrMalformed},
		{"truncated payload", "930101", ErrMalformed},
		{"hello too few fields", "930101940101a161" + "01", ErrMalformed},
		{"hello version over uint16", "93010195ce00010000" + "01a16101a174", ErrMalformed},
		{"hello name not string", "9301019501010101a174", ErrMalformed},
		{"hello name bin", "930101950101c4016101a174", ErrMalformed},
		{"hello pid string", "93010195010101a161a174", ErrMalformed},
		{"hello pid too big", "930101950101a161cf8000000000000000a174", ErrMalformed},
		{"string claims 4 GiB", "930901" + "92" + "db" + "ffffffff" + "61", ErrMalformed},
		{"array claims 4 GiB", "930901" + "dd" + "ffffffff", ErrMalformed},
		{"usage map claims 4 GiB", "930601" + "91" + "df" + "ffffffff", ErrMalformed},
		{"usage value negative", "93060191" + "81a161ff", ErrMalformed},
		{"usage duplicate key", "93060191" + "82a16101a16102", ErrMalformed},
		{"usage key not string", "93060191" + "810101", ErrMalformed},
		{"usage nil map", "93060191c0", ErrMalformed},
		{"error code negative", "930a0192ffa0", ErrMalformed},
		{"extra field not msgpack", "930301" + "91c1", ErrMalformed},
	})
}

func TestDecodeAcceptsExtraFieldsAndWideInts(t *testing.T) {
	tstest.CheckDecodes(t, DecodeMessage, []tstest.DecodeWant[Message]{
		// Ping with two extra fields a future version might add.
		{"ping extra fields", "930307" + "92" + "a178" + "81a17901", Message{ID: 7, Payload: Ping{}}},
		// Event with a third field.
		{"event extra field", "930900" + "93" + "a172" + "a0" + "c3", Message{ID: 0, Payload: Event{Kind: "r"}}},
		// Kind and ID in non-shortest forms, positive signed ints.
		{"wide ints", "93" + "cc03" + "d20000000b" + "90", Message{ID: 11, Payload: Ping{}}},
		{"pid negative fixint", "930101950101a16eff" + "a174", Message{ID: 1, Payload: Hello{Version: 1, AppID: 1, Name: "n", Pid: -1, Token: "t"}}},
		{"pid uint64", "930101950101a16ecf0000000000000005" + "a174", Message{ID: 1, Payload: Hello{Version: 1, AppID: 1, Name: "n", Pid: 5, Token: "t"}}},
		{"str8 name", "930101950101d9016e01a174", Message{ID: 1, Payload: Hello{Version: 1, AppID: 1, Name: "n", Pid: 1, Token: "t"}}},
	})
}

func TestErrorMapsToSentinels(t *testing.T) {
	tests := []struct {
		code ErrorCode
		want error
	}{
		{CodeBadVersion, ErrBadVersion},
		{CodeUnauthorized, ErrUnauthorized},
		{CodeUnknownKind, ErrUnknownKind},
		{CodeMalformed, ErrMalformed},
		{CodeProtocol, ErrProtocol},
		{CodeReplaced, ErrReplaced},
		{CodeTooLarge, ErrFrameTooLarge},
	}
	for _, tt := range tests {
		var err error = Error{Code: tt.code, Message: "x"}
		if !errors.Is(err, tt.want) || !errors.Is(err, ErrRemote) {
			t.Errorf("code %d: errors.Is(%v) false", tt.code, tt.want)
		}
		if errors.Is(err, ErrTimeout) {
			t.Errorf("code %d matches ErrTimeout", tt.code)
		}
		var e Error
		if !errors.As(err, &e) || e.Code != tt.code {
			t.Errorf("code %d: errors.As failed", tt.code)
		}
	}
	if errors.Is(Error{Code: CodeInternal}, ErrMalformed) {
		t.Error("internal error matches ErrMalformed")
	}
}

func TestEncodeNilPayload(t *testing.T) {
	if _, err := EncodeMessage(Message{ID: 1}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, m := range allKinds {
		b, err := EncodeMessage(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{"", "90", "93000190", "930101950101a16eff", "930601" + "91" + "df" + "ffffffff", "930307" + "92" + "a178" + "81a17901"} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Add(append([]byte{0x93, byte(KindHello), 0x01, 0x95, 0x01, 0x01}, tstest.HostileStr(3)...)) // name claims 4 GiB
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeMessage(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownKind) {
				t.Fatalf("error %v is neither ErrMalformed nor ErrUnknownKind", err)
			}
			return
		}
		tstest.CheckReencode(t, m, EncodeMessage, DecodeMessage, nil)
	})
}
