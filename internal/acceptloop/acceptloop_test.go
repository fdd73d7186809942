package acceptloop

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// flaky fails its first n accepts with EMFILE, then hands out conns.
type flaky struct {
	mu     sync.Mutex
	fails  int
	conns  chan net.Conn
	closed chan struct{}
}

func (l *flaky) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	l.mu.Unlock()
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}
func (l *flaky) Close() error   { close(l.closed); return nil }
func (l *flaky) Addr() net.Addr { return &net.TCPAddr{} }

func TestServeBacksOffAndRecovers(t *testing.T) {
	l := &flaky{fails: 10, conns: make(chan net.Conn), closed: make(chan struct{})}
	var waits []time.Duration
	served := make(chan net.Conn, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(context.Background(), l, func(c net.Conn) { served <- c },
			func(err error, d time.Duration) {
				if !errors.Is(err, syscall.EMFILE) {
					t.Errorf("err = %v", err)
				}
				waits = append(waits, d)
			})
	}()
	a, b := net.Pipe()
	defer a.Close()
	l.conns <- b // taken only after the ten failures
	if c := <-served; c != b {
		t.Fatal("wrong conn")
	}
	l.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve = %v, want net.ErrClosed", err)
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
}

func TestServeStopsWithContext(t *testing.T) {
	l := &flaky{fails: 1 << 30, conns: make(chan net.Conn), closed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	failed := make(chan struct{}, 1)
	go func() {
		done <- Serve(ctx, l, func(net.Conn) {}, func(error, time.Duration) {
			select {
			case failed <- struct{}{}:
			default:
			}
		})
	}()
	<-failed
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v after cancel", err)
	}
}
