package tstest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer safe for one writer (a process's output,
// a logger) and readers at the same time. WaitFor waits for text in it.
type SyncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	notify chan struct{} // made by WaitFor; a Write signals it without blocking
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notify != nil {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitFor waits until the buffer contains want, woken by each write, and
// fails the test (showing what the buffer holds) if it does not within d
// (stretched by TimeScale): like WaitFor's, the bound only turns a hang
// into a failure.
func (s *SyncBuffer) WaitFor(tb testing.TB, want string, d time.Duration) {
	tb.Helper()
	s.mu.Lock()
	if s.notify == nil {
		s.notify = make(chan struct{}, 1)
	}
	ch := s.notify
	s.mu.Unlock()
	d = Scaled(d)
	timer := time.NewTimer(d)
	defer timer.Stop()
	for !strings.Contains(s.String(), want) {
		select {
		case <-ch:
		case <-timer.C:
			tb.Fatalf("timed out after %v waiting for %q in:\n%s", d, want, s.String())
		}
	}
}
