package bufpool

import "testing"

// Size classes: the smallest power of two from 1 KiB that holds n, up to
// 64 KiB; Put keeps only class-sized buffers, at most perClass per class.
func TestClasses(t *testing.T) {
	const perClass = 4
	c := New(perClass)
	for _, tc := range []struct{ n, cap int }{
		{0, 1 << 10}, {1, 1 << 10}, {1024, 1 << 10}, {1025, 2 << 10}, {1500, 2 << 10},
		{32768, 32 << 10}, {32769, 64 << 10}, {65535, 64 << 10}, {65536, 64 << 10}, {65537, 65537},
	} {
		b := c.Get(tc.n)
		if len(b) != tc.n || cap(b) != tc.cap {
			t.Errorf("Get(%d): len %d cap %d, want cap %d", tc.n, len(b), cap(b), tc.cap)
		}
	}
	b := c.Get(1500)
	c.Put(b)
	if again := c.Get(1100); &again[0] != &b[0] || len(again) != 1100 {
		t.Fatal("a buffer handed back was not reused for the next Get of its class")
	}
	for _, foreign := range [][]byte{make([]byte, 10), make([]byte, 1500), make([]byte, 0, 1<<17), b[4:], nil} {
		c.Put(foreign)
	}
	for i := range c.free {
		if c.Free(i) != 0 {
			t.Fatalf("class %d kept a buffer that is not class-sized", i)
		}
	}
	for range 2 * perClass {
		c.Put(make([]byte, 0, 1<<16))
	}
	if got := c.Free(len(c.free) - 1); got != perClass {
		t.Fatalf("the largest class keeps %d free buffers, want %d", got, perClass)
	}
}

// Get and Put of a pooled class allocate nothing.
func TestNoAllocation(t *testing.T) {
	c := New(2)
	c.Put(c.Get(60000))
	if n := testing.AllocsPerRun(100, func() { c.Put(c.Get(60000)) }); n != 0 {
		t.Fatalf("%v allocations per Get and Put", n)
	}
}
