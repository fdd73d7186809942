package node

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// logEvery is how often a rate-limited message is logged at most.
const logEvery = 5 * time.Second

// rateLog logs one kind of message at most once per logEvery, with the
// number of occurrences not logged since. A peer that can make the node
// refuse something at will must not be able to fill its log.
type rateLog struct {
	next       atomic.Int64  // Unix ns before which nothing is logged
	suppressed atomic.Uint64 // occurrences since the last line
}

// log logs msg at level unless one was logged less than logEvery ago.
func (r *rateLog) log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	now := time.Now().UnixNano()
	next := r.next.Load()
	if now < next || !r.next.CompareAndSwap(next, now+int64(logEvery)) {
		r.suppressed.Add(1)
		return
	}
	if s := r.suppressed.Swap(0); s > 0 {
		args = append(args, "not_logged_since", s)
	}
	l.Log(context.Background(), level, msg, args...)
}

// logs are the node's rate-limited messages, one per kind of refusal.
type logs struct {
	badReply, badMsg1, hsDropped, sessRefused, streamRefused rateLog
	pingDropped, peerRefused, linkHSRefused, acceptErr       rateLog
	untrusted, badControl, notMember                         rateLog
}

// budget is a counting semaphore that never waits: take fails when the
// budget is spent.
type budget struct {
	used atomic.Int64
	max  int64
}

func (b *budget) take() bool {
	if b.used.Add(1) > b.max {
		b.used.Add(-1)
		return false
	}
	return true
}

func (b *budget) give() { b.used.Add(-1) }
