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
	once   sync.Once
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
func (l *flaky) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
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

// TestGroup: a closed group refuses listeners and connections, Close hands
// out what was recorded once (running the server's locked step under the
// server's mutex), and Wait waits for the connection goroutines.
func TestGroup(t *testing.T) {
	var mu sync.Mutex
	var g Group[int]
	g.Init(&mu)
	ln := &flaky{conns: make(chan net.Conn), closed: make(chan struct{})}
	if !g.AddListener(ln) {
		t.Fatal("AddListener on an open group refused")
	}
	release := make(chan struct{})
	exited := make(chan struct{})
	if !g.Go(1, func() { <-release; close(exited) }) {
		t.Fatal("Go on an open group refused")
	}
	if !g.Go(2, func() {}) {
		t.Fatal("Go on an open group refused")
	}
	lockedHeld := false
	lns, conns, first := g.Close(func() { lockedHeld = !mu.TryLock() })
	if !first || !lockedHeld {
		t.Fatalf("first Close: first=%v, locked step under the mutex=%v", first, lockedHeld)
	}
	if len(lns) != 1 || lns[0] != ln {
		t.Fatalf("Close returned listeners %v, want the one added", lns)
	}
	if len(conns) < 1 || len(conns) > 2 {
		t.Fatalf("Close returned connections %v, want 1 (and 2 unless it ended)", conns)
	}
	if g.AddListener(ln) || g.Go(3, func() { t.Error("Go ran after Close") }) {
		t.Fatal("a closed group took a listener or connection")
	}
	select {
	case <-ln.closed:
	default:
		t.Fatal("AddListener refused a listener without closing it")
	}
	if !g.Closed() {
		t.Fatal("Closed is false after Close")
	}
	g.DoneListener(ln)
	close(release)
	if _, _, again := g.Close(nil); again { // waits for the group
		t.Fatal("second Close reported first")
	}
	select {
	case <-exited:
	default:
		t.Fatal("second Close returned before the connection goroutine ended")
	}
}

// TestGroupServe: a Serve call ends with the loop's fatal error when the
// listener fails, with nil when the group is closed under it or was closed
// before; the listener is closed each time.
func TestGroupServe(t *testing.T) {
	var mu sync.Mutex
	var g Group[int]
	g.Init(&mu)
	serve := func(c net.Conn) bool { c.Close(); return true }
	fatal := errors.New("listener broke")
	broken := &failing{err: fatal}
	if err := g.Serve(context.Background(), broken, Loop[net.Conn]{Serve: serve, Fatal: func(error) bool { return true }}); !errors.Is(err, fatal) {
		t.Errorf("Serve on a failing listener = %v, want its error", err)
	}
	if !broken.isClosed() {
		t.Error("Serve returned without closing the failing listener")
	}

	ln := &flaky{conns: make(chan net.Conn), closed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln, Loop[net.Conn]{Serve: serve}) }()
	a, b := net.Pipe()
	defer a.Close()
	ln.conns <- b // Serve is running
	lns, _, _ := g.Close(nil)
	cancel()
	for _, l := range lns {
		l.Close()
	}
	if err := <-done; err != nil {
		t.Errorf("Serve closed under it = %v, want nil", err)
	}

	again := &failing{err: fatal}
	if err := g.Serve(context.Background(), again, Loop[net.Conn]{Serve: serve}); err != nil {
		t.Errorf("Serve on a closed group = %v, want nil", err)
	}
	if !again.isClosed() {
		t.Error("Serve on a closed group left the listener open")
	}
}

// failing is a listener whose Accept always fails with err.
type failing struct {
	err    error
	mu     sync.Mutex
	closed bool
}

func (l *failing) Accept() (net.Conn, error) { return nil, l.err }
func (l *failing) Addr() net.Addr            { return &net.TCPAddr{} }
func (l *failing) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return nil
}
func (l *failing) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}
