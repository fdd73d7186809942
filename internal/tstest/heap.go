package tstest

import (
	"bytes"
	"runtime"
	"testing"
)

// HostileStr is a msgpack str32 header that declares 0xFFFFFFF0 bytes,
// followed by the 1 to 10 bytes actually sent.
func HostileStr(i int) []byte {
	return append([]byte{0xdb, 0xff, 0xff, 0xff, 0xf0}, bytes.Repeat([]byte{'a'}, 1+i%10)...)
}

// HostileLimit bounds what HostileFrames frames may cost in all: msgpack
// alone spends at least 1 MiB per frame and keeps a growing buffer pooled.
const (
	HostileFrames = 1000
	HostileLimit  = 64 << 20
)

// CheckHostileStrRefused feeds decode (a protocol's decoder) HostileFrames
// frames, each prefix followed by HostileStr(i), fails if one is
// accepted, and fails if the heap allocated more than HostileLimit
// meanwhile or grew by more than that (see CheckHeapFlat). what names the
// frames in the failure.
func CheckHostileStrRefused[M any](t testing.TB, what string, prefix []byte, decode func(frame []byte) (M, error)) {
	t.Helper()
	CheckHeapFlat(t, what, HostileFrames, func(i int) {
		t.Helper()
		frame := append(bytes.Clone(prefix), HostileStr(i)...)
		if _, err := decode(frame); err == nil {
			t.Fatalf("%x accepted", frame)
		}
	})
}

// CheckHeapFlat runs feed for frames frames and fails if the heap
// allocated more than HostileLimit meanwhile, or grew by more than that.
// It stops as soon as the limit is passed, so a decoder that allocates by
// a declared length (at least 1 MiB per frame, growing by a quarter per
// frame, kept in a pooled decoder) fails fast instead of taking
// gigabytes. Nothing here depends on machine speed.
func CheckHeapFlat(t testing.TB, what string, frames int, feed func(i int)) {
	t.Helper()
	var before, now runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < frames; i++ {
		feed(i)
		if i%8 != 7 && i != frames-1 {
			continue
		}
		runtime.ReadMemStats(&now)
		alloc, inuse := now.TotalAlloc-before.TotalAlloc, now.HeapInuse-min(now.HeapInuse, before.HeapInuse)
		if alloc > HostileLimit || inuse > HostileLimit {
			t.Fatalf("after %d %s frames declaring 4 GiB strings: %d MiB allocated, heap in use grew by %d MiB", i+1, what, alloc>>20, inuse>>20)
		}
	}
}
