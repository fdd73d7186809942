package messenger

import (
	"sync"
	"time"

	"github.com/skywire-mesh/skywire/keys"
)

// maxBuckets bounds the limiter's memory: beyond it, full buckets (keys
// that have been quiet long enough to refill) are forgotten.
const maxBuckets = 4096

// limiter is a token bucket per key: a flood from one key empties its own
// bucket and nobody else's.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[keys.PublicKey]*bucket // guarded by mu
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	if now == nil {
		now = time.Now
	}
	return &limiter{rate: rate, burst: float64(burst), now: now, buckets: map[keys.PublicKey]*bucket{}}
}

// allow takes a token from k's bucket; false if it is empty.
func (l *limiter) allow(k keys.PublicKey) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.pruneLocked(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[k] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *limiter) refill(b *bucket, now time.Time) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
	}
	b.last = now
}

// pruneLocked forgets full buckets (a new bucket starts full, so nothing
// changes for those keys); if all are in use, it forgets the one used
// least recently.
func (l *limiter) pruneLocked(now time.Time) {
	var oldest keys.PublicKey
	var oldestAt time.Time
	for k, b := range l.buckets {
		if oldestAt.IsZero() || b.last.Before(oldestAt) {
			oldest, oldestAt = k, b.last
		}
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxBuckets {
		delete(l.buckets, oldest)
	}
}
