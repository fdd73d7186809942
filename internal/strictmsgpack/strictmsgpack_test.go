package strictmsgpack

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

func TestScan(t *testing.T) {
	for _, tt := range []struct {
		name, hex string
		lim       Limits
		ok        bool
	}{
		{"fixint", "07", Limits{}, true},
		{"negative fixint", "ff", Limits{}, true},
		{"nil true false", "93 c0 c3 c2", Limits{}, true},
		{"uint8..64", "94 cc ff cd ffff ce ffffffff cf ffffffffffffffff", Limits{}, true},
		{"int8..64", "94 d0 80 d1 8000 d2 80000000 d3 8000000000000000", Limits{}, true},
		{"floats", "92 ca 3f800000 cb 3ff0000000000000", Limits{}, true},
		{"fixstr", "a3 616263", Limits{}, true},
		{"str8 str16 str32", "93 d9 01 61 da 0001 61 db 00000001 61", Limits{}, true},
		{"bin8 bin16 bin32", "93 c4 01 00 c5 0001 00 c6 00000001 00", Limits{}, true},
		{"fixmap", "81 a1 6b 01", Limits{}, true},
		{"map16 map32", "92 de 0001 01 02 df 00000001 01 02", Limits{}, true},
		{"array16 array32", "92 dc 0001 01 dd 00000001 01", Limits{}, true},
		{"empty containers", "94 90 80 dc 0000 df 00000000", Limits{}, true},
		{"fixext", "95 d4 01 00 d5 01 0000 d6 ff 00000000 d7 ff 0000000000000000 d8 01 00000000000000000000000000000000", Limits{}, true},
		{"ext8 16 32", "93 c7 01 05 00 c8 0001 05 00 c9 00000001 05 00", Limits{}, true},
		{"ext refused", "d4 01 00", Limits{NoExt: true}, false},
		{"ext8 refused", "c7 00 05", Limits{NoExt: true}, false},
		{"depth at limit", "91 91 07", Limits{MaxDepth: 2}, true},
		{"depth over limit", "91 91 91 07", Limits{MaxDepth: 2}, false},
		{"default depth", strings.Repeat("91", DefaultMaxDepth) + "07", Limits{}, true},
		{"default depth over", strings.Repeat("91", DefaultMaxDepth+1) + "07", Limits{}, false},

		{"empty", "", Limits{}, false},
		{"never used c1", "c1", Limits{}, false},
		{"trailing", "07 07", Limits{}, false},
		{"truncated uint16", "cd 01", Limits{}, false},
		{"truncated str8 header", "d9", Limits{}, false},
		{"truncated str16 header", "da 00", Limits{}, false},
		{"str32 declares 4 GiB", "db fffffff0 616263", Limits{}, false},
		{"bin32 declares 4 GiB", "c6 fffffff0 00", Limits{}, false},
		{"str16 one short", "da 0004 616263", Limits{}, false},
		{"fixstr one short", "a4 616263", Limits{}, false},
		{"array32 declares 4G items", "dd ffffffff 01", Limits{}, false},
		{"map32 declares 4G entries", "df ffffffff 01 02", Limits{}, false},
		{"map16 odd", "de 0001 01", Limits{}, false},
		{"fixmap missing value", "81 01", Limits{}, false},
		{"ext32 declares 4 GiB", "c9 fffffff0 05 00", Limits{}, false},
		{"fixext16 short", "d8 01 00", Limits{}, false},
		{"fixext no type", "d4", Limits{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := tstest.Unhex(t, tt.hex)
			err := Scan(b, tt.lim)
			if tt.ok && err != nil {
				t.Fatalf("Scan(%x): %v", b, err)
			}
			if !tt.ok {
				if err == nil {
					t.Fatalf("Scan(%x) accepted", b)
				}
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Scan(%x): %v does not wrap ErrMalformed", b, err)
				}
			}
			if tt.ok && !tt.lim.NoExt {
				// msgpack agrees that it is one whole value.
				d := msgpack.NewDecoder(bytes.NewReader(b))
				if err := d.Skip(); err != nil {
					t.Fatalf("msgpack refuses what Scan accepts: %v", err)
				}
			}
		})
	}
}

type sample struct {
	A uint16 `msgpack:"a"`
	S string `msgpack:"s"`
}

func TestUnmarshal(t *testing.T) {
	b, err := msgpack.Marshal(&sample{A: 3, S: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var v sample
	if err := Unmarshal(b, &v, Limits{}); err != nil || v != (sample{3, "x"}) {
		t.Fatalf("Unmarshal: %+v, %v", v, err)
	}
	if err := Unmarshal(append(b, 0), &v, Limits{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
	// A type mismatch is msgpack's error, not a scan error.
	if err := Unmarshal([]byte{0xa1, 'x'}, &v, Limits{}); err == nil || errors.Is(err, ErrMalformed) {
		t.Fatalf("string into a struct: %v", err)
	}
	// Decode refuses what fn leaves unread.
	err = Decode([]byte{0x92, 1, 2}, Limits{}, func(d *msgpack.Decoder) error {
		_, err := d.DecodeArrayLen()
		return err
	})
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("unread elements: %v", err)
	}
	sentinel := errors.New("x")
	if err := Decode([]byte{1}, Limits{}, func(*msgpack.Decoder) error { return sentinel }); err != sentinel {
		t.Fatalf("fn's error: %v", err)
	}
}

// hostileFrames are short inputs that each declare a str/bin of almost
// 4 GiB with only a few real bytes behind it, at the top level and inside a
// map.
func hostileFrames() [][]byte {
	var out [][]byte
	for i := 1; i <= 10; i++ {
		str := append([]byte{0xdb, 0xff, 0xff, 0xff, 0xf0}, bytes.Repeat([]byte{'a'}, i)...)
		bin := append([]byte{0xc6, 0xff, 0xff, 0xff, 0xf0}, bytes.Repeat([]byte{'a'}, i)...)
		out = append(out, str, bin, append([]byte{0x81, 0xa1, 's'}, str...))
	}
	return out
}

// memoryGrowth runs fn n times and returns how many bytes the heap
// allocated meanwhile and how much HeapInuse grew.
func memoryGrowth(n int, fn func()) (alloc, inuse uint64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		fn()
	}
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, after.HeapInuse - min(after.HeapInuse, before.HeapInuse)
}

// TestClaimedLengthsDoNotAllocate: frames that declare 4 GiB strings cost
// nothing, however many arrive (msgpack.Unmarshal alone grows a pooled
// buffer by at least 1 MiB per frame and keeps it).
func TestClaimedLengthsDoNotAllocate(t *testing.T) {
	frames := hostileFrames()
	i := 0
	alloc, inuse := memoryGrowth(100*len(frames), func() {
		var v sample
		var s string
		b := frames[i%len(frames)]
		i++
		if Unmarshal(b, &v, Limits{}) == nil || Unmarshal(b, &s, Limits{}) == nil {
			t.Fatalf("%x accepted", b)
		}
	})
	const limit = 64 << 20
	if alloc > limit || inuse > limit {
		t.Fatalf("%d hostile frames allocated %d bytes, heap in use grew by %d", 100*len(frames), alloc, inuse)
	}
}

// TestLongStringDecoderNotPooled: a decoder that read a long string is not
// reused, so its buffer is garbage once the call returns.
func TestLongStringDecoderNotPooled(t *testing.T) {
	long, err := msgpack.Marshal(strings.Repeat("x", keepBuf+1))
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := Unmarshal(long, &s, Limits{}); err != nil || len(s) != keepBuf+1 {
		t.Fatalf("long string: %d bytes, %v", len(s), err)
	}
	// Nothing to observe directly (sync.Pool may drop anything); this
	// checks the decode path with a dropped decoder stays correct.
	if err := Unmarshal([]byte{0xa1, 'y'}, &s, Limits{}); err != nil || s != "y" {
		t.Fatalf("after a long string: %q, %v", s, err)
	}
}

// FuzzScan: Scan never panics, and what it accepts msgpack reads as
// exactly one value; what Decode then returns is the same as decoding
// without the scan.
func FuzzScan(f *testing.F) {
	for _, s := range []string{"07", "93c0c3c2", "81a16b01", "db fffffff0 616263", "dd ffffffff 01", "c7 01 05 00", "9191919191919191919191919191919191919107"} {
		f.Add(tstest.Unhex(f, s))
	}
	for _, b := range hostileFrames() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := Scan(b, Limits{}); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Scan(%x): %v does not wrap ErrMalformed", b, err)
			}
			return
		}
		r := bytes.NewReader(b)
		d := msgpack.NewDecoder(r)
		if err := d.Skip(); err != nil || r.Len() != 0 {
			t.Fatalf("Scan accepts %x, msgpack Skip: %v, %d left", b, err, r.Len())
		}
		var v any
		if err := Unmarshal(b, &v, Limits{}); err != nil {
			// msgpack may still refuse a value (e.g. a map key it cannot
			// hash); it must refuse it without the scan too.
			var w any
			if msgpack.Unmarshal(b, &w) == nil {
				t.Fatalf("Unmarshal(%x): %v, but msgpack alone accepts it", b, err)
			}
		}
	})
}

// TestIsMapIsArray checks the header predicates against every first byte:
// exactly fixmap (0x80-0x8f), map16 and map32 are maps, exactly fixarray
// (0x90-0x9f), array16 and array32 arrays, and an empty body is no map.
func TestIsMapIsArray(t *testing.T) {
	for c := 0; c <= 0xff; c++ {
		wantMap := c >= 0x80 && c <= 0x8f || c == 0xde || c == 0xdf
		wantArray := c >= 0x90 && c <= 0x9f || c == 0xdc || c == 0xdd
		if got := IsMapCode(byte(c)); got != wantMap {
			t.Errorf("IsMapCode(0x%02x) = %v, want %v", c, got, wantMap)
		}
		if got := IsMap([]byte{byte(c), 0}); got != wantMap {
			t.Errorf("IsMap(0x%02x 00) = %v, want %v", c, got, wantMap)
		}
		if got := IsArrayCode(byte(c)); got != wantArray {
			t.Errorf("IsArrayCode(0x%02x) = %v, want %v", c, got, wantArray)
		}
	}
	if IsMap(nil) {
		t.Error("IsMap(nil) = true")
	}
}
