package session

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// vectorFrames and vectorHex are the packet test vector quoted in the
// package documentation.
var vectorFrames = []frame{
	{typ: frameTypeAck, value: 25, ranges: []ackRange{{95, 100}, {90, 92}}},
	{typ: frameTypeStreamFin, streamID: 3, offset: 300, data: []byte("hi")},
	{typ: frameTypeMaxStreamData, streamID: 3, value: 65536},
	{typ: frameTypeResetStream, streamID: 4, code: 7, value: 10},
	{typ: frameTypeStopSending, streamID: 5},
	{typ: frameTypeMaxData, value: 1},
	{typ: frameTypePing},
	{typ: frameTypeDatagram, data: []byte("ab")},
	{typ: frameTypeClose, data: []byte("bye")},
}

const vectorHex = "01" + "b424" + // version 1, packet number 0x1234
	"02641901050102" + // ACK largest 100, delay 25µs, 95-100 and 90-92
	"1103ac02026869" + // STREAM+FIN id 3, offset 300, "hi"
	"0403808004" + // MAX_STREAM_DATA id 3, 65536
	"0504070a" + // RESET_STREAM id 4, code 7, final size 10
	"060500" + // STOP_SENDING id 5, code 0
	"0301" + // MAX_DATA 1
	"01" + // PING
	"08026162" + // DATAGRAM "ab"
	"070003627965" // CLOSE code 0, "bye"

func TestPacketVector(t *testing.T) {
	b := appendHeader(nil, 0x1234)
	for i := range vectorFrames {
		b = appendFrame(b, &vectorFrames[i])
	}
	if got := hex.EncodeToString(b); got != vectorHex {
		t.Fatalf("encoded\n got %s\nwant %s", got, vectorHex)
	}
	pn, rest, err := parseHeader(b)
	if err != nil || pn != 0x1234 {
		t.Fatalf("parseHeader = %d, %v", pn, err)
	}
	got := decodeAll(t, rest)
	if !reflect.DeepEqual(got, vectorFrames) {
		t.Fatalf("decoded %+v\nwant %+v", got, vectorFrames)
	}
}

func decodeAll(t testing.TB, b []byte) []frame {
	t.Helper()
	var out []frame
	for len(b) > 0 {
		var f frame
		n, err := decodeFrame(b, &f)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		out = append(out, normalize(f))
		b = b[n:]
	}
	return out
}

// normalize makes decoded frames comparable with literals.
func normalize(f frame) frame {
	if len(f.ranges) == 0 {
		f.ranges = nil
	}
	if len(f.data) == 0 {
		f.data = nil
	}
	return f
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want string
	}{
		{"empty", "", "empty frame"},
		{"unknown type", "ff", "unknown frame type"},
		{"truncated varint", "0380", "bad max data"},
		{"varint too large", "03ffffffffffffffff7f", "bad max data"},
		{"stream data past end", "1001000a6869", "exceeds packet"},
		{"stream id zero", "1000000100", "stream id 0"},
		{"stream offset overflow", "1001ffffffffffffffff3f0100", "overflow"},
		{"ack first range below zero", "0205000006", "below zero"},
		{"ack gap below zero", "020a0001050400", "below zero"},
		{"ack too many ranges", "020a004000", "ack ranges"},
		{"close reason too long", "0700ff7f", "close reason"},
		{"datagram too long", "080568", "exceeds packet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := hex.DecodeString(tt.hex)
			if err != nil {
				t.Fatal(err)
			}
			var f frame
			_, err = decodeFrame(b, &f)
			if !errors.Is(err, ErrMalformedPacket) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("decodeFrame(%s) = %v, want ErrMalformedPacket mentioning %q", tt.hex, err, tt.want)
			}
		})
	}
	for _, h := range []string{"", "01", "0201", "01ff"} {
		b, _ := hex.DecodeString(h)
		if _, _, err := parseHeader(b); !errors.Is(err, ErrMalformedPacket) {
			t.Errorf("parseHeader(%s) = %v, want ErrMalformedPacket", h, err)
		}
	}
}

func FuzzDecodePacket(f *testing.F) {
	vec, _ := hex.DecodeString(vectorHex)
	f.Add(vec)
	f.Add([]byte{1, 0, frameTypePing})
	f.Add([]byte{1, 5, 0x10, 1, 0, 3, 'a', 'b', 'c'})
	f.Add([]byte{1, 1, 2, 9, 0, 2, 1, 1, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		pn, rest, err := parseHeader(b)
		if err != nil {
			return
		}
		var frames []frame
		var fr frame
		for len(rest) > 0 {
			n, err := decodeFrame(rest, &fr)
			if err != nil {
				return
			}
			if n <= 0 || n > len(rest) {
				t.Fatalf("decodeFrame consumed %d of %d bytes", n, len(rest))
			}
			c := fr
			c.ranges = append([]ackRange(nil), fr.ranges...)
			frames = append(frames, normalize(c))
			rest = rest[n:]
		}
		// Re-encoding decodes to the same frames.
		enc := appendHeader(nil, pn)
		for i := range frames {
			enc = appendFrame(enc, &frames[i])
		}
		pn2, rest2, err := parseHeader(enc)
		if err != nil || pn2 != pn {
			t.Fatalf("re-encoded header: %d, %v", pn2, err)
		}
		again := decodeAll(t, rest2) // the re-encoded frames must decode
		if !reflect.DeepEqual(frames, again) {
			t.Fatalf("round trip changed frames:\n%+v\n%+v", frames, again)
		}
	})
}

// TestRangeSet checks the interval set against a bitmap model.
func TestRangeSet(t *testing.T) {
	const size = 200
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 200 {
		var s rangeSet
		var model [size]bool
		for op := range 60 {
			a, b := uint64(r.IntN(size)), uint64(r.IntN(size))
			if a > b {
				a, b = b, a
			}
			switch r.IntN(3) {
			case 0, 1:
				s.add(a, b)
				for i := a; i < b; i++ {
					model[i] = true
				}
			case 2:
				s.remove(a, b)
				for i := a; i < b; i++ {
					model[i] = false
				}
			}
			if op%7 == 6 {
				s.removeBelow(a)
				for i := uint64(0); i < a; i++ {
					model[i] = false
				}
			}
			// Compare.
			var want rangeSet
			for i := 0; i < size; i++ {
				if model[i] {
					want.r = appendSpan(want.r, uint64(i))
				}
			}
			if !reflect.DeepEqual(normSpans(s.r), normSpans(want.r)) {
				t.Fatalf("iteration %d op %d: got %v want %v", iter, op, s.r, want.r)
			}
			for i := range uint64(size) {
				if s.contains(i) != model[i] {
					t.Fatalf("contains(%d) = %v", i, !model[i])
				}
				end := i
				for end < size && model[end] {
					end++
				}
				if got := s.contiguousFrom(i); got != end {
					t.Fatalf("contiguousFrom(%d) = %d, want %d (%v)", i, got, end, s.r)
				}
			}
		}
	}
}

func appendSpan(r []span, v uint64) []span {
	if n := len(r); n > 0 && r[n-1].end == v {
		r[n-1].end++
		return r
	}
	return append(r, span{v, v + 1})
}

func normSpans(r []span) []span {
	if len(r) == 0 {
		return nil
	}
	return r
}

func TestRing(t *testing.T) {
	var r ring
	const max = 1 << 18
	var model []byte // bytes at relative positions
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		if rng.IntN(2) == 0 && len(model) < max {
			n := rng.IntN(min(max-len(model), 40000) + 1)
			p := randomBytes(n, rng.Uint64())
			r.ensure(len(model)+n, len(model), max)
			r.writeAt(len(model), p)
			model = append(model, p...)
		} else if len(model) > 0 {
			n := rng.IntN(len(model) + 1)
			got := make([]byte, n)
			r.readAt(0, got)
			if !bytes.Equal(got, model[:n]) {
				t.Fatal("ring read mismatch")
			}
			r.advance(n)
			model = model[n:]
		}
	}
}
