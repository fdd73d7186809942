package sessiontest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

type collector struct {
	mu  sync.Mutex
	got [][]byte
	ch  chan struct{}
}

func (c *collector) HandlePacket(p []byte) {
	c.mu.Lock()
	c.got = append(c.got, append([]byte(nil), p...))
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func TestLink(t *testing.T) {
	tests := []struct {
		name         string
		cfg          LinkConfig
		send         int
		wantMin      int
		wantMax      int
		deliverAfter time.Duration
	}{
		{"perfect", LinkConfig{}, 100, 100, 100, 0},
		{"half dropped", LinkConfig{Drop: 0.5, Seed: 1}, 1000, 400, 600, 0},
		{"all duplicated", LinkConfig{Duplicate: 1, Seed: 2}, 100, 200, 200, 0},
		{"delayed", LinkConfig{Delay: 20 * time.Millisecond}, 10, 10, 10, 20 * time.Millisecond},
		{"queue limit", LinkConfig{Delay: 50 * time.Millisecond, QueueLimit: 5}, 10, 5, 5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &collector{ch: make(chan struct{}, 1)}
			l := NewLink(tt.cfg, c)
			defer l.Close()
			start := time.Now()
			for i := range tt.send {
				if err := l.SendPacket([]byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.After(5 * time.Second)
			for c.count() < tt.wantMin {
				select {
				case <-c.ch:
				case <-deadline:
					t.Fatalf("delivered %d, want at least %d", c.count(), tt.wantMin)
				}
			}
			if el := time.Since(start); el < tt.deliverAfter {
				t.Fatalf("delivered after %v, want >= %v", el, tt.deliverAfter)
			}
			if n := c.count(); n > tt.wantMax {
				t.Fatalf("delivered %d, want at most %d", n, tt.wantMax)
			}
		})
	}
}

func TestLinkDropAllAndClose(t *testing.T) {
	c := &collector{ch: make(chan struct{}, 1)}
	l := NewLink(LinkConfig{Delay: 20 * time.Millisecond, MaxPacket: 4}, c)
	if err := l.SendPacket([]byte("in flight")); !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("oversize packet: %v", err)
	}
	if err := l.SendPacket([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	l.SetDropAll(true) // the packet in flight is lost as well
	tstest.WaitFor(t, "the packet in flight to be dropped", func() bool { return l.Dropped.Load() == 1 })
	if c.count() != 0 || l.Dropped.Load() != 1 || l.Oversize.Load() != 1 {
		t.Fatalf("delivered %d, dropped %d, oversize %d", c.count(), l.Dropped.Load(), l.Oversize.Load())
	}
	l.SetDropAll(false)
	if err := l.SendPacket([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	<-c.ch
	if !bytes.Equal(c.got[0], []byte("ok")) {
		t.Fatalf("got %q", c.got[0])
	}
	l.Close()
	if err := l.SendPacket([]byte("x")); !errors.Is(err, ErrLinkClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

func TestNullCipher(t *testing.T) {
	var c NullCipher
	sealed := c.Seal([]byte("h:"), []byte("data"))
	opened, err := c.Open(nil, sealed[2:])
	if err != nil || string(opened) != "data" || c.Overhead() != 0 {
		t.Fatalf("round trip: %q, %v", opened, err)
	}
}
