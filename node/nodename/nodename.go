// Package nodename turns what a person types for a node — a public key or
// the name the node claims ([node] name) — into a key, through a manager's
// directory, and labels keys with their names for output.
//
// A name is a claim, not an identity: any node may claim any name, and two
// nodes may claim the same one (docs/SECURITY.md, "Node names"). So
// ResolveNode accepts a name only when exactly one node in the directory
// claims it; otherwise it fails with a *NameError that lists the
// candidates by key and name, and the person picks a key. A key is always
// accepted as itself, without asking anyone. Labels mark a name claimed by
// more than one node, so that output never lets a name stand in for a key.
//
// The directory comes from a Source: *node.Node in-process; over a node's
// control socket, the command layer's adapter (internal/cli), which is
// what the CLI tools (nc, ping, route, messenger) and the viscript shell's
// connect use.
package nodename

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/node"
)

// Sentinel errors, wrapped by *NameError and the argument errors.
var (
	// ErrUnknownName: no node in the directory claims the name.
	ErrUnknownName = errors.New("no node has this name")
	// ErrAmbiguousName: more than one node claims the name.
	ErrAmbiguousName = errors.New("more than one node claims this name")
	// ErrBadArgument: the text is neither a public key nor a valid name.
	ErrBadArgument = errors.New("not a public key or a node name")
)

// maxCandidates bounds the candidates an unknown name's error lists.
const maxCandidates = 10

// Source is a node's view of its manager's directory. *node.Node
// implements it.
type Source interface {
	Directory(ctx context.Context) ([]node.DirectoryEntry, error)
}

var _ Source = (*node.Node)(nil)

// Node is a resolved node: its key and the name it claims ("" when it
// claims none or was given by key).
type Node struct {
	Key  keys.PublicKey `json:"key"`
	Name string         `json:"name,omitempty"`
}

// String is "NAME (pk:…)" or, without a name, the key.
func (n Node) String() string {
	if n.Name == "" {
		return n.Key.String()
	}
	return n.Name + " (" + n.Key.String() + ")"
}

// NameError is a name that does not resolve to exactly one node.
type NameError struct {
	Name string
	// Candidates: with ErrAmbiguousName every node claiming the name;
	// with ErrUnknownName up to 10 named nodes, those whose name contains
	// Name first.
	Candidates []Node
	// More is how many further named nodes were left out of Candidates.
	More int
	Err  error // ErrUnknownName or ErrAmbiguousName
}

func (e *NameError) Error() string {
	var b strings.Builder
	switch {
	case errors.Is(e.Err, ErrAmbiguousName):
		fmt.Fprintf(&b, "node name %q is claimed by %d nodes (a name is a claim, not an identity): give the key of the one you mean", e.Name, len(e.Candidates))
	case len(e.Candidates) == 0:
		fmt.Fprintf(&b, "no node in the directory is named %q, and no node there has a name: give its key (pk:…)", e.Name)
	default:
		fmt.Fprintf(&b, "no node in the directory is named %q; named nodes:", e.Name)
	}
	for _, c := range e.Candidates {
		fmt.Fprintf(&b, "\n  %s  %s", c.Key, c.Name)
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n  … and %d more (skywire manager nodes lists them all)", e.More)
	}
	return b.String()
}

func (e *NameError) Unwrap() error { return e.Err }

// Resolver resolves names through a Source.
type Resolver struct {
	src Source
}

// New returns a Resolver reading the directory from src.
func New(src Source) *Resolver { return &Resolver{src: src} }

// ResolveNode returns the node that nameOrKey means. A public key
// ("pk:" and 64 hex digits, or the bare hex) is returned as it is, without
// a directory query and without a name. A name (proto.CheckName; compared
// without regard to case) is looked up in the directory and must be
// claimed by exactly one node: otherwise the error is a *NameError (wrapping
// ErrUnknownName or ErrAmbiguousName) listing the candidates. Anything
// else is an error wrapping ErrBadArgument that says what was expected.
func (r *Resolver) ResolveNode(ctx context.Context, nameOrKey string) (Node, error) {
	if k, ok, err := parseKey(nameOrKey); ok || err != nil {
		return Node{Key: k}, err
	}
	es, err := r.src.Directory(ctx)
	if err != nil {
		return Node{}, fmt.Errorf("resolve node name %q: %w", nameOrKey, err)
	}
	return Match(es, nameOrKey)
}

// Names fetches the directory and indexes it for labels.
func (r *Resolver) Names(ctx context.Context) (Names, error) {
	es, err := r.src.Directory(ctx)
	if err != nil {
		return Names{}, fmt.Errorf("directory: %w", err)
	}
	return NewNames(es), nil
}

// parseKey reads s as a public key. ok is false (and err nil) for text
// that is not meant as a key: a valid name. Text that is neither is an
// error naming both forms.
func parseKey(s string) (k keys.PublicKey, ok bool, err error) {
	k, kerr := keys.ParsePublicKey(s)
	if kerr == nil {
		return k, true, nil
	}
	nerr := proto.CheckName(s)
	if nerr == nil {
		return keys.PublicKey{}, false, nil
	}
	if strings.HasPrefix(s, "pk:") {
		return keys.PublicKey{}, false, fmt.Errorf("%q: %w: %w", s, ErrBadArgument, kerr)
	}
	return keys.PublicKey{}, false, fmt.Errorf("%q: %w: want a public key (pk: and 64 hex digits) or a node name (%w)", s, ErrBadArgument, nerr)
}

// Match resolves nameOrKey against the directory es, as ResolveNode does
// (a key is returned as it is, with its name if es lists it).
func Match(es []node.DirectoryEntry, nameOrKey string) (Node, error) {
	if k, ok, err := parseKey(nameOrKey); ok || err != nil {
		if err == nil {
			for _, e := range es {
				if e.Key == k {
					return Node{Key: k, Name: e.Name}, nil
				}
			}
		}
		return Node{Key: k}, err
	}
	var claims []Node
	for _, e := range es {
		if e.Name != "" && proto.EqualName(e.Name, nameOrKey) {
			claims = append(claims, Node{Key: e.Key, Name: e.Name})
		}
	}
	byKey := func(a, b Node) int { return cmp.Compare(a.Key.Hex(), b.Key.Hex()) }
	switch len(claims) {
	case 1:
		return claims[0], nil
	case 0:
		var named []Node
		for _, e := range es {
			if e.Name != "" {
				named = append(named, Node{Key: e.Key, Name: e.Name})
			}
		}
		// Names that contain what was typed first, then the rest by name.
		want := strings.ToLower(nameOrKey)
		slices.SortFunc(named, func(a, b Node) int {
			ca, cb := strings.Contains(strings.ToLower(a.Name), want), strings.Contains(strings.ToLower(b.Name), want)
			if ca != cb {
				if ca {
					return -1
				}
				return 1
			}
			return cmp.Or(cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), byKey(a, b))
		})
		more := max(0, len(named)-maxCandidates)
		return Node{}, &NameError{Name: nameOrKey, Candidates: named[:len(named)-more], More: more, Err: ErrUnknownName}
	default:
		slices.SortFunc(claims, byKey)
		return Node{}, &NameError{Name: nameOrKey, Candidates: claims, Err: ErrAmbiguousName}
	}
}

// Names labels keys with the names their nodes claim in one directory.
// The zero Names labels nothing.
type Names struct {
	byKey  map[keys.PublicKey]string
	claims map[string]int // lower-cased name → nodes claiming it
}

// NewNames indexes a directory.
func NewNames(es []node.DirectoryEntry) Names {
	n := Names{byKey: map[keys.PublicKey]string{}, claims: map[string]int{}}
	for _, e := range es {
		if e.Name == "" {
			continue
		}
		n.byKey[e.Key] = e.Name
		n.claims[strings.ToLower(e.Name)]++
	}
	return n
}

// Of returns the name k claims ("" for none) and whether no other node
// claims it.
func (n Names) Of(k keys.PublicKey) (name string, unique bool) {
	name = n.byKey[k]
	return name, name != "" && n.claims[strings.ToLower(name)] == 1
}

// Label is the name k claims for a NAME column: "" for none, the name,
// or, when other nodes claim it too, "NAME (claimed by N nodes)".
func (n Names) Label(k keys.PublicKey) string {
	name, unique := n.Of(k)
	if name == "" || unique {
		return name
	}
	return fmt.Sprintf("%s (claimed by %d nodes)", name, n.claims[strings.ToLower(name)])
}

// Describe is k with its name: "pk:… (NAME)", "pk:… (NAME, claimed by N
// nodes)", or the key alone.
func (n Names) Describe(k keys.PublicKey) string { return n.describe(k, k.String()) }

// Short is Describe with the short form of the key.
func (n Names) Short(k keys.PublicKey) string { return n.describe(k, k.Short()) }

func (n Names) describe(k keys.PublicKey, key string) string {
	name, unique := n.Of(k)
	switch {
	case name == "":
		return key
	case unique:
		return key + " (" + name + ")"
	}
	return fmt.Sprintf("%s (%s, claimed by %d nodes)", key, name, n.claims[strings.ToLower(name)])
}

// Claims returns how many nodes claim name (without regard to case).
func (n Names) Claims(name string) int { return n.claims[strings.ToLower(name)] }
