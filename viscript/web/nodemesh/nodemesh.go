// Package nodemesh adapts a node's view (its status, links, rules,
// sessions, directory and app list, as `skywire node status|links|routes`
// read them) to web.Mesh. viscript runs the node as another process, so
// the command layer gives New a Source that asks the node's control
// socket; tests give it an in-process node through FromNode.
package nodemesh

import (
	"context"
	"errors"
	"fmt"

	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/node"
	"github.com/skywire-mesh/skywire/viscript/web"
)

// Source is what the dashboard needs from a node.
type Source interface {
	Status(ctx context.Context) (node.Status, error)
	Directory(ctx context.Context) ([]node.DirectoryEntry, error)
	Links(ctx context.Context) ([]node.LinkInfo, error)
	Routes(ctx context.Context) ([]node.RouteInfo, error)
	Sessions(ctx context.Context) ([]node.SessionInfo, error)
	Apps(ctx context.Context) ([]appserver.AppInfo, error)
	RouteTo(ctx context.Context, remote keys.PublicKey) (node.PathInfo, error)
}

// New returns the web.Mesh of src.
func New(src Source) web.Mesh { return mesh{src} }

type mesh struct{ src Source }

// Read implements web.Mesh: the status first (a node that does not answer
// is an error), then the rest; a directory the manager does not give is
// reported in DirectoryErr.
func (m mesh) Read(ctx context.Context) (web.MeshView, error) {
	st, err := m.src.Status(ctx)
	if err != nil {
		return web.MeshView{}, err
	}
	v := web.MeshView{Self: st.Key}
	links, err := m.src.Links(ctx)
	if err != nil {
		return v, fmt.Errorf("links: %w", err)
	}
	for _, l := range links {
		v.Links = append(v.Links, web.LinkCounters{Peer: l.Peer, RTT: l.RTT, BytesIn: l.Stats.BytesIn, BytesOut: l.Stats.BytesOut})
	}
	if v.Paths, err = m.paths(ctx, st.Key); err != nil {
		return v, err
	}
	apps, err := m.src.Apps(ctx)
	if err != nil {
		return v, fmt.Errorf("apps: %w", err)
	}
	for _, a := range apps {
		v.Apps = append(v.Apps, web.MeshApp{Name: a.Name, Port: a.Port, PID: a.PID, BytesIn: a.BytesIn, BytesOut: a.BytesOut})
	}
	dir, err := m.src.Directory(ctx)
	if err != nil {
		v.DirectoryErr = err.Error()
	}
	for _, e := range dir {
		v.Nodes = append(v.Nodes, Entry(e))
	}
	return v, nil
}

// paths are the routes in use here: each session's hops, and each rule
// this node relays as previous hop → here → next hop.
func (m mesh) paths(ctx context.Context, self keys.PublicKey) ([][]keys.PublicKey, error) {
	var out [][]keys.PublicKey
	ss, err := m.src.Sessions(ctx)
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	for _, s := range ss {
		hops := s.Hops
		if len(hops) > 0 && hops[0] != self && hops[len(hops)-1] != self {
			hops = append([]keys.PublicKey{self}, hops...)
		}
		if len(hops) >= 2 {
			out = append(out, hops)
		}
	}
	rs, err := m.src.Routes(ctx)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	for _, r := range rs {
		if !r.Endpoint && !r.OutPeer.IsZero() {
			out = append(out, []keys.PublicKey{r.InPeer, self, r.OutPeer})
		}
	}
	return out, nil
}

// Route implements web.Mesh.
func (m mesh) Route(ctx context.Context, pk keys.PublicKey) (web.Route, error) {
	p, err := m.src.RouteTo(ctx, pk)
	if err != nil {
		return web.Route{}, err
	}
	return web.Route{Hops: p.Hops, Per: p.Per, Latency: p.Latency}, nil
}

// Entry converts a directory entry.
func Entry(e node.DirectoryEntry) web.DirNode {
	n := web.DirNode{Key: e.Key, Name: e.Name, Addrs: e.Addrs, Since: e.Since}
	for _, a := range e.Apps {
		n.Apps = append(n.Apps, web.DirApp{Name: a.Name, Port: a.Port})
	}
	for _, l := range e.Links {
		n.Links = append(n.Links, web.DirLink{Peer: l.Peer.PublicKey(), RTT: l.RTT})
	}
	return n
}

// FromNode is the Source of an in-process node; apps, if set, is its app
// server (else no apps are listed).
func FromNode(n *node.Node, apps *appserver.Server) Source { return local{n, apps} }

type local struct {
	n    *node.Node
	apps *appserver.Server
}

func (l local) Status(context.Context) (node.Status, error) { return l.n.Status(), nil }
func (l local) Directory(ctx context.Context) ([]node.DirectoryEntry, error) {
	return l.n.Directory(ctx)
}
func (l local) Links(context.Context) ([]node.LinkInfo, error)       { return l.n.Links(), nil }
func (l local) Routes(context.Context) ([]node.RouteInfo, error)     { return l.n.Routes(), nil }
func (l local) Sessions(context.Context) ([]node.SessionInfo, error) { return l.n.Sessions(), nil }
func (l local) Apps(context.Context) ([]appserver.AppInfo, error) {
	if l.apps == nil {
		return nil, nil
	}
	return l.apps.Apps(), nil
}
func (l local) RouteTo(ctx context.Context, remote keys.PublicKey) (node.PathInfo, error) {
	return l.n.RouteTo(ctx, remote)
}

// ErrNoNode is Read's error when no node is configured for the dashboard.
var ErrNoNode = errors.New("no [node] in the config: the dashboard shows this viscript's apps only")
