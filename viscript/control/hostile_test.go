package control

import (
	"bytes"
	"runtime"
	"testing"
)

// hostileStr is a msgpack str32 header that declares 0xFFFFFFF0 bytes,
// followed by the 1 to 10 bytes actually sent.
func hostileStr(i int) []byte {
	return append([]byte{0xdb, 0xff, 0xff, 0xff, 0xf0}, bytes.Repeat([]byte{'a'}, 1+i%10)...)
}

// hostileLimit bounds what hostileFrames frames may cost in all: msgpack
// alone spends at least 1 MiB per frame and keeps a growing buffer pooled.
const (
	hostileFrames = 1000
	hostileLimit  = 64 << 20
)

// checkHeapFlat runs fn for hostileFrames frames and fails if the heap
// allocated more than hostileLimit meanwhile, or grew by more than that.
// It stops as soon as the limit is passed, so the unfixed code (at least
// 1 MiB per frame, growing by a quarter per frame, kept in a pooled
// decoder) fails fast instead of taking gigabytes. Nothing here depends on
// machine speed.
func checkHeapFlat(t *testing.T, what string, fn func(i int)) {
	t.Helper()
	var before, now runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < hostileFrames; i++ {
		fn(i)
		if i%8 != 7 && i != hostileFrames-1 {
			continue
		}
		runtime.ReadMemStats(&now)
		alloc, inuse := now.TotalAlloc-before.TotalAlloc, now.HeapInuse-min(now.HeapInuse, before.HeapInuse)
		if alloc > hostileLimit || inuse > hostileLimit {
			t.Fatalf("after %d %s frames declaring 4 GiB strings: %d MiB allocated, heap in use grew by %d MiB", i+1, what, alloc>>20, inuse>>20)
		}
	}
}

// TestHostileLengthsHeapFlat: request bodies (decoded before the token
// check) and response bodies that declare a 4 GiB string are refused
// without allocating by the claim (33 such 16-byte frames took viscript
// from 12 MB to 1.1 GB RSS).
func TestHostileLengthsHeapFlat(t *testing.T) {
	checkHeapFlat(t, "request", func(i int) {
		body := append([]byte{0x81, 0xa6, 'm', 'e', 't', 'h', 'o', 'd'}, hostileStr(i)...)
		if _, err := decodeRequest(body); err == nil {
			t.Fatalf("%x accepted", body)
		}
	})
	checkHeapFlat(t, "response", func(i int) {
		body := append([]byte{0x81, 0xa5, 'e', 'r', 'r', 'o', 'r'}, hostileStr(i)...)
		if _, err := decodeResponse(body); err == nil {
			t.Fatalf("%x accepted", body)
		}
	})
}
