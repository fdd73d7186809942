package appnet

import "testing"

// Size classes: the smallest power of two from 1 KiB that holds n, up to
// 64 KiB for MaxDatagram; put keeps only class-sized buffers, at most
// dgramFreePerClass per class.
func TestDgramBufs(t *testing.T) {
	d := newDgramBufs()
	for _, tc := range []struct{ n, cap int }{
		{0, 1 << 10}, {1, 1 << 10}, {1024, 1 << 10}, {1025, 2 << 10},
		{1500, 2 << 10}, {32768, 32 << 10}, {32769, 64 << 10}, {MaxDatagram, 64 << 10},
	} {
		b := d.get(tc.n)
		if len(b) != tc.n || cap(b) != tc.cap {
			t.Errorf("get(%d): len %d cap %d, want cap %d", tc.n, len(b), cap(b), tc.cap)
		}
	}
	b := d.get(1500)
	d.put(b)
	if again := d.get(1100); &again[0] != &b[0] || len(again) != 1100 {
		t.Fatal("a buffer handed back was not reused for the next datagram of its class")
	}
	for _, foreign := range [][]byte{make([]byte, 10), make([]byte, 1500), make([]byte, 0, 1<<17), b[4:]} {
		d.put(foreign)
	}
	for i := range d {
		if len(d[i]) != 0 {
			t.Fatalf("class %d kept a buffer that is not class-sized", i)
		}
	}
	for range 2 * dgramFreePerClass {
		d.put(make([]byte, 0, 1<<16))
	}
	if got := len(d[len(d)-1]); got != dgramFreePerClass {
		t.Fatalf("the largest class keeps %d free buffers, want %d", got, dgramFreePerClass)
	}
}
