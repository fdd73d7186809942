package meshtest

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

func TestTopologies(t *testing.T) {
	tests := []struct {
		name  string
		links [][2]int
		n     int
		want  int
	}{
		{"line", Line(5), 5, 4},
		{"star", Star(5), 5, 4},
		{"random", Random(20, 10, 7), 20, 29},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.links) != tt.want {
				t.Fatalf("%d links, want %d", len(tt.links), tt.want)
			}
			// Connected, no self links, no duplicates.
			parent := make([]int, tt.n)
			for i := range parent {
				parent[i] = i
			}
			var find func(int) int
			find = func(x int) int {
				if parent[x] != x {
					parent[x] = find(parent[x])
				}
				return parent[x]
			}
			seen := map[[2]int]bool{}
			for _, l := range tt.links {
				a, b := min(l[0], l[1]), max(l[0], l[1])
				if a == b || seen[[2]int{a, b}] {
					t.Fatalf("bad link %v", l)
				}
				seen[[2]int{a, b}] = true
				parent[find(a)] = find(b)
			}
			for i := range parent {
				if find(i) != find(0) {
					t.Fatalf("node %d not connected", i)
				}
			}
		})
	}
	if a, b := Random(10, 3, 1), Random(10, 3, 1); len(a) != len(b) || a[3] != b[3] {
		t.Fatal("Random is not deterministic")
	}
}

func TestNetwork(t *testing.T) {
	nw := NewNetwork()
	ln, err := nw.Listen("b")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := nw.Listen("b"); err == nil {
		t.Fatal("second listener on the same name")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dial := nw.Dialer("a")
	if _, err := dial(ctx, "nobody"); !errors.Is(err, ErrRefused) {
		t.Fatalf("dial nobody: %v", err)
	}
	acc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = io.Copy(io.Discard, c)
		}
		acc <- err
	}()
	c, err := dial(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if c.RemoteAddr().String() != "b" || c.LocalAddr().String() != "a" {
		t.Fatalf("addrs %v %v", c.LocalAddr(), c.RemoteAddr())
	}
	nw.Cut("b", "a")
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("write after cut")
	}
	select {
	case <-acc:
	case <-time.After(10 * time.Second):
		t.Fatal("the accepted side did not see the cut")
	}
	if _, err := dial(ctx, "b"); !errors.Is(err, ErrRefused) {
		t.Fatalf("dial across a cut: %v", err)
	}
	nw.Heal("a", "b")
	go ln.Accept()
	if _, err := dial(ctx, "b"); err != nil {
		t.Fatalf("dial after heal: %v", err)
	}
}
