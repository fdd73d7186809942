package node_test

import (
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/secure"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/node"
)

// End-to-end sessions negotiate their cipher as links do: two nodes of
// this release agree on version 2 and the best suite both CPUs have
// (AES-256-GCM with AES instructions), also through a relay of an older
// release; a node of an older release (LegacySessions: version 1 only)
// still gets a session either way, with ChaCha20-Poly1305, from the
// initiator's version 1 retransmission or by answering in kind.
func TestSessionCipherMixedReleases(t *testing.T) {
	// 0 (new) — 1 (old) — 2 (new)
	m := readyMesh(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3), Node: func(i int, c *node.Config) {
		c.LegacySessions = i == 1
	}})
	best := secure.DefaultSuites()[0].String()
	tests := []struct {
		name     string
		from, to int
		cipher   string
		version  int
	}{
		{"new to new through an old relay", 0, 2, best, secure.Version2},
		{"new to old", 0, 1, "chacha20poly1305", secure.Version1},
		{"old to new", 1, 2, "chacha20poly1305", secure.Version1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := uint16(10 + i)
			echo(t, m.Nodes[tt.to].Node, port)
			c, err := m.Nodes[tt.from].Dial(ctxT(t, 20*time.Second), m.Nodes[tt.to].Keys.Public, port)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			roundTrip(t, c, 256<<10)
			check := func(at, remote int, initiator bool) {
				t.Helper()
				for _, s := range m.Nodes[at].Sessions() {
					if s.Remote == m.Nodes[remote].Keys.Public && s.Initiator == initiator {
						if s.Cipher != tt.cipher || s.HandshakeVersion != tt.version {
							t.Errorf("node %d's session with node %d: %s, handshake version %d; want %s, %d",
								at, remote, s.Cipher, s.HandshakeVersion, tt.cipher, tt.version)
						}
						return
					}
				}
				t.Errorf("node %d has no session with node %d (initiator %v)", at, remote, initiator)
			}
			check(tt.from, tt.to, true)
			check(tt.to, tt.from, false)
		})
	}
}
