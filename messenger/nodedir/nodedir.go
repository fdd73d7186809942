// Package nodedir adapts a node's directory (node.Directory and
// node.RouteTo) to messenger.Directory. The messenger runs in its own
// process, so the command layer gives New a Source that asks the node's
// control socket; in-process users (tests) give it the *node.Node.
package nodedir

import (
	"context"
	"fmt"

	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/messenger"
	"github.com/skywire-mesh/skywire/node"
	"github.com/skywire-mesh/skywire/node/nodename"
)

// Source is what the directory needs from a node. *node.Node implements
// it.
type Source interface {
	Directory(ctx context.Context) ([]node.DirectoryEntry, error)
	RouteTo(ctx context.Context, remote keys.PublicKey) (node.PathInfo, error)
}

// New returns a messenger.Directory backed by src.
func New(src Source) messenger.Directory { return dir{src} }

type dir struct{ src Source }

func (d dir) Nodes(ctx context.Context) ([]messenger.NodeEntry, error) {
	es, err := d.src.Directory(ctx)
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	out := make([]messenger.NodeEntry, 0, len(es))
	for _, e := range es {
		out = append(out, Entry(e))
	}
	return out, nil
}

// Whois finds pk in the directory and asks for the route to it. A
// missing route is reported in Cluster.RouteErr, not as an error.
func (d dir) Whois(ctx context.Context, pk keys.PublicKey) (messenger.Cluster, error) {
	es, err := d.src.Directory(ctx)
	if err != nil {
		return messenger.Cluster{}, fmt.Errorf("whois %s: %w", pk.Short(), err)
	}
	for _, e := range es {
		if e.Key != pk {
			continue
		}
		c := messenger.Cluster{Node: Entry(e)}
		p, err := d.src.RouteTo(ctx, pk)
		if err != nil {
			c.RouteErr = err.Error()
		} else {
			c.Route = Route(p)
		}
		return c, nil
	}
	return messenger.Cluster{}, fmt.Errorf("whois %s: %w", pk.Short(), messenger.ErrUnknownNode)
}

// ResolveName resolves a node name as nodename.ResolveNode does (the
// rules and errors of ping and connect): exactly one node must claim it.
// Text that is not a node name gives an error wrapping
// messenger.ErrNotNodeName.
func (d dir) ResolveName(ctx context.Context, name string) (messenger.NodeEntry, error) {
	if err := proto.CheckName(name); err != nil {
		return messenger.NodeEntry{}, fmt.Errorf("%w: %v", messenger.ErrNotNodeName, err)
	}
	es, err := d.src.Directory(ctx)
	if err != nil {
		return messenger.NodeEntry{}, fmt.Errorf("resolve node name %q: %w", name, err)
	}
	n, err := nodename.Match(es, name)
	if err != nil {
		return messenger.NodeEntry{}, err
	}
	for _, e := range es {
		if e.Key == n.Key {
			return Entry(e), nil
		}
	}
	return messenger.NodeEntry{Key: n.Key, Name: n.Name}, nil
}

// Entry converts a directory entry.
func Entry(e node.DirectoryEntry) messenger.NodeEntry {
	n := messenger.NodeEntry{Key: e.Key, Name: e.Name, Addrs: e.Addrs, Since: e.Since, Apps: []messenger.App{}, AppsHidden: e.AppsHidden, Links: []messenger.Link{}}
	for _, a := range e.Apps {
		n.Apps = append(n.Apps, messenger.App{Name: a.Name, Port: a.Port})
	}
	for _, l := range e.Links {
		n.Links = append(n.Links, messenger.Link{Peer: l.Peer.PublicKey(), RTT: l.RTT})
	}
	return n
}

// Route converts a path.
func Route(p node.PathInfo) messenger.Route {
	return messenger.Route{Hops: p.Hops, Per: p.Per, Latency: p.Latency}
}
