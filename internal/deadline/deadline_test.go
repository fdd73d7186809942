package deadline

import (
	"testing"
	"time"
)

func TestDeadline(t *testing.T) {
	var d Deadline
	if isClosed(d.Done()) {
		t.Fatal("zero Deadline is done")
	}
	d.Set(time.Now().Add(-time.Second))
	if !isClosed(d.Done()) {
		t.Fatal("past deadline is not done")
	}
	d.Set(time.Time{})
	if isClosed(d.Done()) {
		t.Fatal("cleared deadline is done")
	}
	d.Set(time.Now().Add(10 * time.Millisecond))
	select {
	case <-d.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("deadline did not pass")
	}
	d.Set(time.Now().Add(time.Hour))
	if isClosed(d.Done()) {
		t.Fatal("deadline moved out is still done")
	}
	d.Set(time.Time{})
}
