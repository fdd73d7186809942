package ratelimit

import (
	"net"
	"net/netip"
	"sync"
)

// Gate caps connections in a phase (their handshake, say) in all and per
// source (Source): one host cannot take every slot. Connections whose
// address is not IP count only against the total. Safe for concurrent use.
type Gate struct {
	max, perSource int

	mu    sync.Mutex
	total int                  // guarded by mu
	by    map[netip.Prefix]int // guarded by mu; at most max entries
}

// NewGate returns a gate of max connections, perSource of them from one
// source.
func NewGate(max, perSource int) *Gate {
	return &Gate{max: max, perSource: perSource, by: make(map[netip.Prefix]int)}
}

// Refusal says why Enter refused a connection.
type Refusal int

const (
	// Admitted: not refused.
	Admitted Refusal = iota
	// Full: max connections are in the phase.
	Full
	// SourceFull: perSource connections from this source are in the phase.
	SourceFull
)

// Enter admits a connection from addr into the phase, or says why not.
// The returned leave (never nil) ends its phase; calling it more than once
// is harmless.
func (g *Gate) Enter(addr net.Addr) (leave func(), r Refusal) {
	src, ok := Source(addr)
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.total >= g.max:
		return func() {}, Full
	case ok && g.by[src] >= g.perSource:
		return func() {}, SourceFull
	}
	g.total++
	if ok {
		g.by[src]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.total--
			if ok {
				if g.by[src]--; g.by[src] <= 0 {
					delete(g.by, src)
				}
			}
		})
	}, Admitted
}

// InPhase returns how many connections are in the phase, and from how
// many sources.
func (g *Gate) InPhase() (conns, sources int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total, len(g.by)
}
