package acceptloop

import (
	"context"
	"net"
	"sync"
)

// Group is what a server of accepted connections keeps so that its Close
// can end it: the listeners its Serve calls run on, the connections they
// accepted, whether it is closed, and a WaitGroup of its goroutines. It is
// guarded by the server's own mutex, given to Init, so that the server can
// keep more state consistent with closed under the same lock (a table of
// apps that must not gain an entry once Close has emptied it).
type Group[C comparable] struct {
	mu     sync.Locker
	closed bool                      // guarded by mu
	lns    map[net.Listener]struct{} // guarded by mu
	conns  map[C]struct{}            // guarded by mu
	wg     sync.WaitGroup            // Serve calls and connection goroutines
}

// Init readies the group; mu is the server's mutex.
func (g *Group[C]) Init(mu sync.Locker) {
	g.mu = mu
	g.lns = map[net.Listener]struct{}{}
	g.conns = map[C]struct{}{}
}

// AddListener records ln for a Serve call and counts the call in the
// group; false, and ln closed, once the group is closed. A Serve call that
// got true calls DoneListener when it returns.
func (g *Group[C]) AddListener(ln net.Listener) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		ln.Close()
		return false
	}
	g.lns[ln] = struct{}{}
	g.wg.Add(1)
	return true
}

// DoneListener forgets ln and ends its Serve call's count.
func (g *Group[C]) DoneListener(ln net.Listener) {
	g.mu.Lock()
	delete(g.lns, ln)
	g.mu.Unlock()
	g.wg.Done()
}

// Serve is one Serve call of the group's server: it records ln, runs l
// with ln's Accept under ctx, and closes ln when it returns. It returns
// nil when the group was closed (before or during the call) or the loop
// stopped, else the loop's fatal accept error.
func (g *Group[C]) Serve(ctx context.Context, ln net.Listener, l Loop[net.Conn]) error {
	if !g.AddListener(ln) {
		return nil
	}
	defer g.DoneListener(ln)
	defer ln.Close()
	l.Accept = ln.Accept
	if err := l.Run(ctx); err != nil && !g.Closed() {
		return err
	}
	return nil
}

// Go records c and runs serve in a goroutine of the group; false once the
// group is closed (c is not recorded and serve does not run). The
// goroutine starts under the lock, so Close, which sets closed under it and
// then waits, waits for this goroutine too.
func (g *Group[C]) Go(c C, serve func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.conns[c] = struct{}{}
	g.wg.Go(serve)
	return true
}

// RemoveLocked forgets c (its goroutine is ending); the lock is held.
func (g *Group[C]) RemoveLocked(c C) { delete(g.conns, c) }

// ClosedLocked reports whether Close was called; the lock is held.
func (g *Group[C]) ClosedLocked() bool { return g.closed }

// Closed reports whether Close was called.
func (g *Group[C]) Closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// Close marks the group closed and returns the listeners and connections
// for the server to close; locked, if not nil, runs under the lock first,
// for the server to take the rest of its state. Only the first call gets
// them and first true; later calls wait for the group and return nothing.
func (g *Group[C]) Close(locked func()) (lns []net.Listener, conns []C, first bool) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		g.wg.Wait()
		return nil, nil, false
	}
	g.closed = true
	if locked != nil {
		locked()
	}
	for ln := range g.lns {
		lns = append(lns, ln)
	}
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	return lns, conns, true
}

// Wait waits for every Serve call and connection goroutine of the group.
func (g *Group[C]) Wait() { g.wg.Wait() }
