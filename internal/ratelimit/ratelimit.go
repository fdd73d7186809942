// Package ratelimit is the token bucket every skywire rate limit uses: one
// bucket (Bucket), or one per key with bounded memory (Keyed), so that a
// flood from one key or one source empties its own bucket and nobody
// else's.
package ratelimit

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Bucket admits Rate events per second, Burst at once. The zero time is
// never a valid now; a new bucket starts full. It is not safe for
// concurrent use (Keyed is).
type Bucket struct {
	Rate, Burst float64

	tokens float64
	last   time.Time
}

// Allow takes a token; false if the bucket is empty.
func (b *Bucket) Allow(now time.Time) bool {
	b.refill(now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *Bucket) refill(now time.Time) {
	if b.last.IsZero() {
		b.tokens = b.Burst
	} else if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(b.Burst, b.tokens+dt*b.Rate)
	}
	b.last = now
}

// full reports whether the bucket has refilled completely by now: such a
// bucket can be forgotten, since a new one starts full.
func (b *Bucket) full(now time.Time) bool {
	b.refill(now)
	return b.tokens >= b.Burst
}

// Keyed is a Bucket per key, holding at most Max buckets: beyond that,
// full buckets are forgotten and, if none is full, the one used least
// recently. Safe for concurrent use.
type Keyed[K comparable] struct {
	rate, burst float64
	max         int

	mu      sync.Mutex
	buckets map[K]*Bucket // guarded by mu
}

// NewKeyed returns a limiter of rate events per second and burst at once
// per key, remembering at most max keys.
func NewKeyed[K comparable](rate float64, burst, max int) *Keyed[K] {
	return &Keyed[K]{rate: rate, burst: float64(burst), max: max, buckets: make(map[K]*Bucket)}
}

// Allow takes a token from k's bucket; false if it is empty.
func (l *Keyed[K]) Allow(k K, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.pruneLocked(now)
		}
		b = &Bucket{Rate: l.rate, Burst: l.burst}
		l.buckets[k] = b
	}
	return b.Allow(now)
}

// Len returns how many keys the limiter remembers.
func (l *Keyed[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

func (l *Keyed[K]) pruneLocked(now time.Time) {
	var oldest K
	var oldestAt time.Time
	for k, b := range l.buckets {
		if oldestAt.IsZero() || b.last.Before(oldestAt) {
			oldest, oldestAt = k, b.last
		}
		if b.full(now) {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= l.max {
		delete(l.buckets, oldest)
	}
}

// Source is the network source of a connection's remote address, for
// limits per source: the IPv4 address, or the /64 of an IPv6 address (one
// host or site usually holds a whole /64). ok is false for addresses that
// are not IP (unix sockets, in-memory pipes).
func Source(addr net.Addr) (src netip.Prefix, ok bool) {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		if addr == nil {
			return netip.Prefix{}, false
		}
		p, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return netip.Prefix{}, false
		}
		ap = p
	}
	ip := ap.Addr().Unmap()
	if !ip.IsValid() {
		return netip.Prefix{}, false
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.WithZone("").Prefix(bits)
	return p, true
}
