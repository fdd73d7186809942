package acceptloop

import (
	"context"
	"testing"
	"time"
)

func TestPause(t *testing.T) {
	var b pause
	want := []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}
	for i, w := range want {
		if d := b.next(); d != w {
			t.Errorf("pause %d = %v, want %v", i, d, w)
		}
	}
	for range 20 {
		b.next()
	}
	if d := b.next(); d != MaxBackoff {
		t.Errorf("pause after many failures = %v, want %v", d, MaxBackoff)
	}
	b.reset()
	if d := b.next(); d != MinBackoff {
		t.Errorf("pause after Reset = %v, want %v", d, MinBackoff)
	}
}

func TestSleepStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if sleep(ctx, time.Hour) {
		t.Error("sleep with a done context reported true")
	}
	if !sleep(context.Background(), 0) {
		t.Error("sleep(0) reported false")
	}
}
