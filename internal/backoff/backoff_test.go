package backoff

import (
	"context"
	"testing"
	"time"
)

func TestAccept(t *testing.T) {
	var b Accept
	want := []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}
	for i, w := range want {
		if d := b.Next(); d != w {
			t.Errorf("pause %d = %v, want %v", i, d, w)
		}
	}
	for range 20 {
		b.Next()
	}
	if d := b.Next(); d != Max {
		t.Errorf("pause after many failures = %v, want %v", d, Max)
	}
	b.Reset()
	if d := b.Next(); d != Min {
		t.Errorf("pause after Reset = %v, want %v", d, Min)
	}
}

func TestSleepStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep with a done context reported true")
	}
	if !Sleep(context.Background(), 0) {
		t.Error("Sleep(0) reported false")
	}
}
