package nodename

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/node"
)

// dir is a fake Source that counts its queries.
type dir struct {
	es      []node.DirectoryEntry
	err     error
	queries int
}

func (d *dir) Directory(context.Context) ([]node.DirectoryEntry, error) {
	d.queries++
	return d.es, d.err
}

func key(b byte) keys.PublicKey {
	var k keys.PublicKey
	for i := range k {
		k[i] = b
	}
	return k
}

func directory() *dir {
	return &dir{es: []node.DirectoryEntry{
		{Key: key(1), Name: "kitchen-pi"},
		{Key: key(2), Name: "garage"},
		{Key: key(3)}, // an older node: no name
		{Key: key(4), Name: "twin"},
		{Key: key(5), Name: "Twin"},
	}}
}

func TestResolveName(t *testing.T) {
	d := directory()
	r := New(d)
	for _, in := range []string{"kitchen-pi", "Kitchen-PI"} {
		n, err := r.ResolveNode(context.Background(), in)
		if err != nil || n.Key != key(1) || n.Name != "kitchen-pi" {
			t.Errorf("ResolveNode(%q) = %v, %v", in, n, err)
		}
	}
	if got := (Node{Key: key(1), Name: "kitchen-pi"}).String(); got != "kitchen-pi ("+key(1).String()+")" {
		t.Errorf("String = %q", got)
	}
}

// A key resolves to itself without asking the directory (and works while
// the manager is away); a key nobody lists is still a key.
func TestResolveKey(t *testing.T) {
	d := &dir{err: errors.New("manager unreachable")}
	r := New(d)
	for _, in := range []string{key(9).String(), key(9).Hex()} {
		n, err := r.ResolveNode(context.Background(), in)
		if err != nil || n.Key != key(9) {
			t.Errorf("ResolveNode(%q) = %v, %v", in, n, err)
		}
	}
	if d.queries != 0 {
		t.Errorf("resolving a key asked the directory %d times", d.queries)
	}
	n, err := Match(directory().es, key(2).String())
	if err != nil || n.Name != "garage" {
		t.Errorf("Match(key) = %v, %v; want the name filled in", n, err)
	}
}

// resolveFails resolves name in directory() and returns its error, which
// must be a *NameError wrapping want.
func resolveFails(t *testing.T, name string, want error) (*NameError, error) {
	t.Helper()
	_, err := New(directory()).ResolveNode(context.Background(), name)
	var ne *NameError
	if !errors.As(err, &ne) || !errors.Is(err, want) {
		t.Fatalf("ResolveNode(%q) = %v, want a *NameError wrapping %v", name, err, want)
	}
	return ne, err
}

// Two nodes claiming one name (in any case): the name is refused and the
// error lists both keys with their names; never one of them silently.
func TestResolveAmbiguous(t *testing.T) {
	ne, err := resolveFails(t, "twin", ErrAmbiguousName)
	if len(ne.Candidates) != 2 || ne.Candidates[0].Key != key(4) || ne.Candidates[1].Key != key(5) {
		t.Fatalf("candidates %v", ne.Candidates)
	}
	msg := err.Error()
	for _, want := range []string{key(4).String() + "  twin", key(5).String() + "  Twin", "claimed by 2 nodes", "key"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

// An unknown name lists the named nodes, those containing what was typed
// first, and never the unnamed node.
func TestResolveUnknown(t *testing.T) {
	ne, err := resolveFails(t, "pi", ErrUnknownName)
	if len(ne.Candidates) != 4 || ne.Candidates[0].Name != "kitchen-pi" {
		t.Fatalf("candidates %v, want kitchen-pi first of 4", ne.Candidates)
	}
	if strings.Contains(err.Error(), key(3).String()) {
		t.Errorf("the unnamed node is listed:\n%s", err)
	}
	// Many named nodes: the list is capped and says how many it left out.
	var big dir
	for i := range 25 {
		big.es = append(big.es, node.DirectoryEntry{Key: key(byte(i + 1)), Name: fmt.Sprintf("n%02d", i)})
	}
	_, err = New(&big).ResolveNode(context.Background(), "x")
	if !errors.As(err, &ne) || len(ne.Candidates) != maxCandidates || ne.More != 15 || !strings.Contains(err.Error(), "15 more") {
		t.Fatalf("err = %v", err)
	}
	// No names at all: say so.
	_, err = New(&dir{es: []node.DirectoryEntry{{Key: key(1)}}}).ResolveNode(context.Background(), "x")
	if !errors.Is(err, ErrUnknownName) || !strings.Contains(err.Error(), "no node there has a name") {
		t.Fatalf("err = %v", err)
	}
}

func TestResolveBadArgument(t *testing.T) {
	d := directory()
	for _, in := range []string{"", "kitchen pi", "pk:1234", "a:1", "local", "-x"} {
		_, err := New(d).ResolveNode(context.Background(), in)
		if !errors.Is(err, ErrBadArgument) {
			t.Errorf("ResolveNode(%q) = %v, want ErrBadArgument", in, err)
		}
	}
	if d.queries != 0 {
		t.Errorf("bad arguments asked the directory %d times", d.queries)
	}
	_, err := New(d).ResolveNode(context.Background(), "kitchen pi")
	if err == nil || !strings.Contains(err.Error(), "public key") || !strings.Contains(err.Error(), "letters, digits") {
		t.Errorf("error does not say what is wanted: %v", err)
	}
	d.err = errors.New("no manager")
	if _, err := New(d).ResolveNode(context.Background(), "garage"); !errors.Is(err, d.err) {
		t.Errorf("directory error lost: %v", err)
	}
}

func TestNamesLabel(t *testing.T) {
	ns := NewNames(directory().es)
	for _, tt := range []struct {
		k    keys.PublicKey
		want string
	}{
		{key(1), "kitchen-pi"},
		{key(3), ""},
		{key(9), ""},
		{key(4), "twin (claimed by 2 nodes)"},
		{key(5), "Twin (claimed by 2 nodes)"},
	} {
		if got := ns.Label(tt.k); got != tt.want {
			t.Errorf("Label(%s) = %q, want %q", tt.k.Short(), got, tt.want)
		}
	}
	if got := ns.Describe(key(1)); got != key(1).String()+" (kitchen-pi)" {
		t.Errorf("Describe = %q", got)
	}
	if got := ns.Short(key(3)); got != key(3).Short() {
		t.Errorf("Short = %q", got)
	}
	if got := ns.Short(key(4)); got != key(4).Short()+" (twin, claimed by 2 nodes)" {
		t.Errorf("Short of a name claimed twice = %q", got)
	}
	if name, unique := ns.Of(key(4)); name != "twin" || unique {
		t.Errorf("Of = %q %v", name, unique)
	}
	if ns.Claims("TWIN") != 2 {
		t.Error("Claims")
	}
	var zero Names
	if zero.Label(key(1)) != "" || zero.Describe(key(1)) != key(1).String() {
		t.Error("zero Names labels")
	}
}

// BenchmarkMatch10k: resolving a name against a directory of 10,000 nodes.
func BenchmarkMatch10k(b *testing.B) {
	es := make([]node.DirectoryEntry, 10000)
	for i := range es {
		es[i].Key[0], es[i].Key[1] = byte(i>>8), byte(i)
		es[i].Name = fmt.Sprintf("node-%05d", i)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Match(es, "node-09999"); err != nil {
			b.Fatal(err)
		}
	}
}
