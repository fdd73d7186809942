// Package sessiontest provides an in-memory, lossy packet link for testing
// sessions: configurable drop, duplication, reordering and delay, and a
// null cipher.
package sessiontest

import (
	"container/heap"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Handler receives packets; *session.Session implements it.
type Handler interface {
	HandlePacket(p []byte)
}

// LinkConfig describes how a Link mangles traffic. The zero value is a
// perfect link that delivers synchronously inside SendPacket.
type LinkConfig struct {
	Drop      float64       // probability a packet is dropped
	Duplicate float64       // probability a packet is delivered twice
	Reorder   float64       // probability a packet is held back by ReorderDelay
	Delay     time.Duration // one-way delay of every packet
	// ReorderDelay is the extra delay of reordered packets (default 1 ms).
	ReorderDelay time.Duration
	// QueueLimit bounds packets in flight on the link; more are dropped
	// (default 4096).
	QueueLimit int
	// MaxPacket, if set, rejects larger packets with ErrPacketTooLarge
	// and counts them in Oversize.
	MaxPacket int
	Seed      uint64
}

// Errors returned by SendPacket.
var (
	ErrLinkClosed     = errors.New("sessiontest: link closed")
	ErrPacketTooLarge = errors.New("sessiontest: packet larger than MaxPacket")
)

// Link is one direction of an in-memory path. It implements session.Path.
type Link struct {
	cfg   LinkConfig
	async bool

	dst     atomic.Pointer[handlerBox]
	dropAll atomic.Bool

	// Counters of packets: offered, handed to the receiver, lost on
	// purpose, rejected as larger than MaxPacket.
	Sent, Delivered, Dropped, Oversize atomic.Uint64

	mu     sync.Mutex
	rng    *rand.Rand
	q      packetHeap
	seq    uint64
	closed bool

	kick chan struct{}
	quit chan struct{}
	done chan struct{}
}

type handlerBox struct{ h Handler }

// NewLink creates a link delivering to dst (which may be set later with
// Connect). An asynchronous link owns a goroutine: call Close.
func NewLink(cfg LinkConfig, dst Handler) *Link {
	if cfg.ReorderDelay == 0 {
		cfg.ReorderDelay = time.Millisecond
	}
	if cfg.QueueLimit == 0 {
		cfg.QueueLimit = 4096
	}
	l := &Link{
		cfg:   cfg,
		async: cfg.Drop > 0 || cfg.Duplicate > 0 || cfg.Reorder > 0 || cfg.Delay > 0,
		rng:   rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		kick:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if dst != nil {
		l.Connect(dst)
	}
	if l.async {
		go l.loop()
	} else {
		close(l.done)
	}
	return l
}

// Connect sets the receiver of the link's packets.
func (l *Link) Connect(dst Handler) { l.dst.Store(&handlerBox{dst}) }

// SetDropAll makes the link drop every packet, including those already in
// flight (a dead route), or work again.
func (l *Link) SetDropAll(drop bool) { l.dropAll.Store(drop) }

// SendPacket implements session.Path.
func (l *Link) SendPacket(p []byte) error {
	l.Sent.Add(1)
	if l.cfg.MaxPacket > 0 && len(p) > l.cfg.MaxPacket {
		l.Oversize.Add(1)
		return ErrPacketTooLarge
	}
	if l.dropAll.Load() {
		l.Dropped.Add(1)
		return nil
	}
	if !l.async {
		select {
		case <-l.quit:
			return ErrLinkClosed
		default:
		}
		l.deliver(p)
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrLinkClosed
	}
	if l.rng.Float64() < l.cfg.Drop || len(l.q) >= l.cfg.QueueLimit {
		l.Dropped.Add(1)
		return nil
	}
	copies := 1
	if l.rng.Float64() < l.cfg.Duplicate {
		copies = 2
	}
	now := time.Now()
	for range copies {
		at := now.Add(l.cfg.Delay)
		if l.rng.Float64() < l.cfg.Reorder {
			at = at.Add(l.cfg.ReorderDelay)
		}
		l.seq++
		heap.Push(&l.q, queued{at: at, seq: l.seq, p: append([]byte(nil), p...)})
	}
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return nil
}

func (l *Link) deliver(p []byte) {
	if l.dropAll.Load() { // packets in flight on a dead route are lost too
		l.Dropped.Add(1)
		return
	}
	if b := l.dst.Load(); b != nil {
		l.Delivered.Add(1)
		b.h.HandlePacket(p)
	}
}

// loop delivers queued packets when they are due.
func (l *Link) loop() {
	defer close(l.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var batch [][]byte
	for {
		l.mu.Lock()
		now := time.Now()
		batch = batch[:0]
		for len(l.q) > 0 && !l.q[0].at.After(now) {
			batch = append(batch, heap.Pop(&l.q).(queued).p)
		}
		var wait time.Duration = -1
		if len(l.q) > 0 {
			wait = l.q[0].at.Sub(now)
		}
		l.mu.Unlock()
		for i, p := range batch {
			l.deliver(p)
			batch[i] = nil
		}
		if len(batch) > 0 {
			continue
		}
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-l.kick:
		case <-tc:
		case <-l.quit:
			return
		}
	}
}

// Close stops the link and waits for its goroutine.
func (l *Link) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.quit)
	}
	l.mu.Unlock()
	<-l.done
	return nil
}

type queued struct {
	at  time.Time
	seq uint64
	p   []byte
}

type packetHeap []queued

func (h packetHeap) Len() int { return len(h) }
func (h packetHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h packetHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *packetHeap) Push(x any)   { *h = append(*h, x.(queued)) }
func (h *packetHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = queued{}
	*h = old[:len(old)-1]
	return x
}

// NullCipher seals by copying; it has no overhead and never fails.
type NullCipher struct{}

// Seal appends plaintext to dst.
func (NullCipher) Seal(dst, plaintext []byte) []byte { return append(dst, plaintext...) }

// Open appends packet to dst.
func (NullCipher) Open(dst, packet []byte) ([]byte, error) { return append(dst, packet...), nil }

// Overhead is zero.
func (NullCipher) Overhead() int { return 0 }
