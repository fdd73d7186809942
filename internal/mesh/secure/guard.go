package secure

import (
	"fmt"
	"sync"
	"time"

	"github.com/skywire-mesh/skywire/keys"
)

// ReplayGuard lets a responder refuse a msg1 that is not newer than the last
// one it accepted from the same initiator (WireGuard's defence against
// replayed first messages, which would otherwise cost a responder DH
// operations and make it discard a live session for a new one). A replayed
// msg1 can never lead to usable keys either way; the guard only sheds work
// and churn. The zero value is ready to use and safe for concurrent use.
//
// It remembers up to MaxPeers initiators; when full, it forgets an arbitrary
// one (which then gets one replay through).
type ReplayGuard struct {
	// MaxPeers bounds memory; 0 means 4096.
	MaxPeers int

	mu   sync.Mutex
	last map[keys.PublicKey]time.Time // guarded by mu
}

// Check records s.PeerTime for s.Remote and returns an error wrapping
// ErrReplay if it is not after the newest time seen before for that peer.
func (g *ReplayGuard) Check(s *Session) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.last == nil {
		g.last = make(map[keys.PublicKey]time.Time)
	}
	if prev, ok := g.last[s.Remote]; ok && !s.PeerTime.After(prev) {
		return fmt.Errorf("handshake from %s at %s, not after %s: %w", s.Remote.Short(),
			s.PeerTime.UTC().Format(time.RFC3339Nano), prev.UTC().Format(time.RFC3339Nano), ErrReplay)
	}
	limit := g.MaxPeers
	if limit <= 0 {
		limit = 4096
	}
	if _, ok := g.last[s.Remote]; !ok && len(g.last) >= limit {
		for k := range g.last {
			delete(g.last, k)
			break
		}
	}
	g.last[s.Remote] = s.PeerTime
	return nil
}
