package node_test

import (
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/node"
)

// A node's [node] name reaches the manager and every node's directory; a
// node without one (as an older node) is listed by key with no name, and
// two nodes may claim the same name: the directory keeps both claims.
func TestDirectoryNames(t *testing.T) {
	tstest.CheckLeaks(t)
	names := []string{"kitchen-pi", "", "Kitchen-Pi"}
	m := meshtest.New(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3), Node: func(i int, c *node.Config) {
		c.Name = names[i]
	}})
	m.WaitReady()
	if st := m.Nodes[0].Status(); st.Name != "kitchen-pi" {
		t.Errorf("status name %q", st.Name)
	}
	m.WaitFor("every node in node 1's directory with the name it claims", func() bool {
		d, err := m.Nodes[1].Directory(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, e := range d {
			for i, n := range m.Nodes {
				if e.Key == n.Keys.Public {
					if e.Name != names[i] {
						t.Fatalf("node %d is listed as %q, want %q", i, e.Name, names[i])
					}
					got[n.Keys.Public.String()] = true
				}
			}
		}
		return len(got) == 3
	})
	for _, ni := range m.Manager().Nodes() {
		for i, n := range m.Nodes {
			if ni.Key == n.Keys.Public && ni.Name != names[i] {
				t.Errorf("manager lists node %d as %q, want %q", i, ni.Name, names[i])
			}
		}
	}
}
