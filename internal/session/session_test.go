package session

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/session/sessiontest"
)

func TestTransferPerfect(t *testing.T) {
	checkGoroutines(t)
	p := newPair(t, testConfig(), testConfig(), sessiontest.LinkConfig{}, nil, nil)
	transfer(t, p.a, p.b, 8<<20, nil)
	t.Logf("a: %+v", p.a.Stats())
	t.Logf("b: %+v", p.b.Stats())
}

func TestTransferLossy(t *testing.T) {
	checkGoroutines(t)
	size := 50 << 20
	if testing.Short() {
		size = 8 << 20
	}
	lc := sessiontest.LinkConfig{Drop: 0.05, Reorder: 0.05, Duplicate: 0.01, Seed: 1}
	p := newPair(t, testConfig(), testConfig(), lc, nil, nil)
	transfer(t, p.a, p.b, size, nil)
	t.Logf("a: %+v", p.a.Stats())
	t.Logf("b: %+v", p.b.Stats())
}
