package node_test

import (
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/node"
)

// A node with hide_apps shows in the directory with its app list marked
// private and empty; the others' apps still show.
func TestDirectoryHiddenApps(t *testing.T) {
	tstest.CheckLeaks(t)
	m := meshtest.New(t, meshtest.Options{Nodes: 2, Links: meshtest.Line(2), Node: func(i int, c *node.Config) {
		c.HideApps = i == 1
	}})
	m.WaitReady()
	for _, n := range m.Nodes {
		l, err := n.ListenApp("chat", 42)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
	}
	m.WaitFor("node 0's app listed, node 1's hidden", func() bool {
		d, err := m.Nodes[0].Directory(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var shown, hidden bool
		for _, e := range d {
			switch e.Key {
			case m.Nodes[0].Keys.Public:
				shown = !e.AppsHidden && len(e.Apps) == 1 && e.Apps[0].Name == "chat"
			case m.Nodes[1].Keys.Public:
				if len(e.Apps) != 0 {
					t.Fatalf("hidden node's apps leaked into the directory: %+v", e.Apps)
				}
				hidden = e.AppsHidden
			}
		}
		return shown && hidden
	})
}
