package ratelimit

import (
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBucket(t *testing.T) {
	b := Bucket{Rate: 2, Burst: 3}
	for i := range 3 {
		if !b.Allow(t0) {
			t.Fatalf("event %d of the burst refused", i)
		}
	}
	if b.Allow(t0) {
		t.Fatal("a fourth event at once allowed")
	}
	if !b.Allow(t0.Add(500 * time.Millisecond)) {
		t.Fatal("refill at 2/s: one token after 0.5 s")
	}
	if b.Allow(t0.Add(500 * time.Millisecond)) {
		t.Fatal("only one token after 0.5 s")
	}
	// Refill stops at the burst.
	n := 0
	for b.Allow(t0.Add(time.Hour)) {
		n++
	}
	if n != 3 {
		t.Fatalf("after an hour %d events at once, want the burst 3", n)
	}
	// A clock that goes back does not add tokens.
	if b.Allow(t0) {
		t.Fatal("time going back refilled the bucket")
	}
}

func TestKeyedIsolatesKeys(t *testing.T) {
	l := NewKeyed[string](1, 2, 100)
	for range 2 {
		l.Allow("flood", t0)
	}
	if l.Allow("flood", t0) {
		t.Fatal("flooding key not limited")
	}
	for i := range 2 {
		if !l.Allow("quiet", t0) {
			t.Fatalf("another key's event %d was limited by the flood", i)
		}
	}
}

func TestKeyedMemoryBounded(t *testing.T) {
	l := NewKeyed[int](1, 2, 10)
	// Keys that used a token and keep going: none is full, so the least
	// recently used goes.
	for i := range 1000 {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		if !l.Allow(i, now) {
			t.Fatalf("new key %d refused", i)
		}
		if l.Len() > 10 {
			t.Fatalf("%d keys remembered, max 10", l.Len())
		}
	}
	// An empty bucket is remembered while it is in use: the flooder stays
	// limited although new keys keep arriving.
	l = NewKeyed[int](1, 1, 10)
	l.Allow(-1, t0)
	for i := range 5 {
		l.Allow(i, t0)
	}
	if l.Allow(-1, t0) {
		t.Fatal("a flooding key's empty bucket was forgotten while the limiter had room")
	}
}

func TestSource(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7/32"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7/32"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 1}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 1, Zone: "eth0"}, "fe80::/64"},
		{&net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 9}, "127.0.0.1/32"},
		{strAddr("198.51.100.1:80"), "198.51.100.1/32"},
	}
	for _, tt := range tests {
		got, ok := Source(tt.addr)
		if !ok || got != netip.MustParsePrefix(tt.want) {
			t.Errorf("Source(%v) = %v, %v; want %s", tt.addr, got, ok, tt.want)
		}
	}
	for _, a := range []net.Addr{nil, &net.UnixAddr{Name: "/tmp/s", Net: "unix"}, strAddr("pipe")} {
		if p, ok := Source(a); ok {
			t.Errorf("Source(%v) = %v, want no source", a, p)
		}
	}
}

type strAddr string

func (a strAddr) Network() string { return "test" }
func (a strAddr) String() string  { return string(a) }

func TestGate(t *testing.T) {
	g := NewGate(5, 2)
	from := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 1} }
	var leaves []func()
	enter := func(a net.Addr, want Refusal) {
		t.Helper()
		leave, r := g.Enter(a)
		if r != want {
			t.Fatalf("Enter(%v) = %v, want %v", a, r, want)
		}
		leaves = append(leaves, leave)
	}
	enter(from("192.0.2.1"), Admitted)
	enter(from("192.0.2.1"), Admitted)
	enter(from("192.0.2.1"), SourceFull) // one host cannot take every slot
	enter(from("2001:db8::1"), Admitted)
	enter(from("2001:db8::2"), Admitted) // same /64
	enter(from("2001:db8::3"), SourceFull)
	enter(strAddr("pipe"), Admitted) // not IP: only the total counts
	enter(from("198.51.100.1"), Full)
	if c, s := g.InPhase(); c != 5 || s != 2 {
		t.Fatalf("in phase %d from %d sources, want 5 from 2", c, s)
	}
	// Leaving frees the slot; leaving twice frees it once.
	leaves[0]()
	leaves[0]()
	leaves[2]() // a refusal's leave is a no-op
	enter(from("192.0.2.1"), Admitted)
	enter(from("192.0.2.9"), Full)
	for _, l := range leaves {
		l()
	}
	if c, s := g.InPhase(); c != 0 || s != 0 {
		t.Fatalf("after all left: %d in phase from %d sources (the map must not keep empty sources)", c, s)
	}
}

func TestGateManySources(t *testing.T) {
	g := NewGate(100, 1)
	for i := range 100 {
		if _, r := g.Enter(&net.TCPAddr{IP: net.ParseIP("10.0.0." + strconv.Itoa(i)), Port: 1}); r != Admitted {
			t.Fatalf("source %d refused: %v", i, r)
		}
	}
	if _, s := g.InPhase(); s != 100 {
		t.Fatalf("%d sources", s)
	}
}
