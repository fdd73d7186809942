package nodedir_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/messenger"
	"github.com/skywire-mesh/skywire/messenger/nodedir"
	"github.com/skywire-mesh/skywire/node"
	"github.com/skywire-mesh/skywire/node/nodeapp"
)

// startMessenger serves n's app socket and runs a messenger on it.
func startMessenger(t *testing.T, n *node.Node, with ...func(*messenger.Config)) messenger.Config {
	_, sock, _ := fakemesh.ServeApps(t, nodeapp.Mesh(n), nil) // stopped after the messenger
	cfg := messenger.DefaultConfig()
	cfg.NodeSocket = sock
	cfg.StateDir = filepath.Join(filepath.Dir(sock), "state")
	cfg.Web = ""
	cfg.RetryMin, cfg.RetryMax = 50*time.Millisecond, 500*time.Millisecond
	cfg.Directory = nodedir.New(n)
	for _, f := range with {
		f(&cfg)
	}
	tstest.RunUntilCleanup(t, "the messenger", func(ctx context.Context) error { return messenger.Run(ctx, cfg, nil) })
	tstest.WaitFor(t, "registration", func() bool {
		s, err := messenger.SelfInfo(t.Context(), cfg)
		return err == nil && s.Registered
	})
	return cfg
}

// TestOverRealMesh runs two messengers on the ends of a line of three real
// nodes (one relay between them) with a manager: messages both ways,
// peers and whois from the real directory.
func TestOverRealMesh(t *testing.T) {
	tstest.CheckLeaks(t)
	m := meshtest.New(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3)})
	m.WaitReady()
	a := startMessenger(t, m.Nodes[0].Node)
	b := startMessenger(t, m.Nodes[2].Node)
	ka, kb := m.Nodes[0].PublicKey(), m.Nodes[2].PublicKey()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	has := func(cfg messenger.Config, from keys.PublicKey, text string) func() bool {
		return func() bool {
			ms, err := messenger.Read(ctx, cfg, from.String())
			return err == nil && slices.ContainsFunc(ms, func(m messenger.Message) bool { return m.Dir == "in" && m.Text == text })
		}
	}
	if _, err := messenger.Send(ctx, a, kb.String(), "hello over the relay"); err != nil {
		t.Fatal(err)
	}
	tstest.WaitFor(t, "b receives", has(b, ka, "hello over the relay"))
	if _, err := messenger.Send(ctx, b, ka.String(), "and back"); err != nil {
		t.Fatal(err)
	}
	tstest.WaitFor(t, "a receives", has(a, kb, "and back"))
	tstest.WaitFor(t, "a's message delivered", func() bool {
		ms, _ := messenger.Read(ctx, a, kb.String())
		return len(ms) > 0 && ms[0].State == "delivered"
	})

	var peers []messenger.NodeEntry
	tstest.WaitFor(t, "the directory lists b's messenger port", func() bool {
		var err error
		peers, err = messenger.Peers(ctx, a)
		i := slices.IndexFunc(peers, func(e messenger.NodeEntry) bool { return e.Key == kb })
		return err == nil && len(peers) == 3 && i >= 0 &&
			slices.ContainsFunc(peers[i].Apps, func(a messenger.App) bool { return a.Port == messenger.DefaultPort })
	})
	c, err := messenger.Whois(ctx, a, kb.String())
	if err != nil {
		t.Fatal(err)
	}
	relay := m.Nodes[1].PublicKey()
	if len(c.Route.Hops) != 3 || c.Route.Hops[1] != relay || c.Route.Hops[2] != kb {
		t.Errorf("route = %+v, want a → relay → b", c.Route)
	}
	if len(c.Node.Links) != 1 || c.Node.Links[0].Peer != relay {
		t.Errorf("b's links = %+v, want the relay", c.Node.Links)
	}
	if c.Node.Uptime(time.Now()) <= 0 {
		t.Errorf("uptime %v", c.Node.Uptime(time.Now()))
	}
	other, _ := keys.Generate()
	if _, err := messenger.Whois(ctx, a, other.Public.String()); !errors.Is(err, messenger.ErrUnknownNode) {
		t.Errorf("whois of a key not in the directory: %v", err)
	}
}
