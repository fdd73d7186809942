// Package nodemesh adapts a node's view (its status, rules, sessions and
// directory, as `skywire node status|routes` read them, and its metrics)
// to web.Mesh. The link and app counters the dashboard charts come from
// the node's Prometheus metrics — the same registry [node] metrics serves
// (docs/metrics.md) — so that the charts and a scrape are one source.
// viscript runs the node as another process, so the command layer gives
// New a Source that asks the node's control socket; tests give it an
// in-process node through FromNode.
package nodemesh

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/node"
	"github.com/skywire-mesh/skywire/viscript/web"
)

// Source is what the dashboard needs from a node.
type Source interface {
	Status(ctx context.Context) (node.Status, error)
	Directory(ctx context.Context) ([]node.DirectoryEntry, error)
	Routes(ctx context.Context) ([]node.RouteInfo, error)
	Sessions(ctx context.Context) ([]node.SessionInfo, error)
	RouteTo(ctx context.Context, remote keys.PublicKey) (node.PathInfo, error)
	// Metrics returns the node's metrics (internal/metrics.NodeRegistry
	// gathered, or its text parsed by ParseMetrics).
	Metrics(ctx context.Context) (Families, error)
}

// Families are metric families by name.
type Families = map[string]*dto.MetricFamily

// The metrics the dashboard reads (docs/metrics.md).
const (
	MetricLinkBytes = "skywire_node_link_bytes_total" // {peer, direction}
	MetricLinkRTT   = "skywire_node_link_rtt_seconds" // {peer}
	MetricAppBytes  = "skywire_node_app_bytes_total"  // {app, port, pid, direction}
)

// ParseMetrics parses metrics in the Prometheus text format.
func ParseMetrics(text string) (Families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("node metrics: %w", err)
	}
	return fams, nil
}

// Gathered returns g's metric families by name.
func Gathered(g prometheus.Gatherer) (Families, error) {
	mfs, err := g.Gather()
	if err != nil && len(mfs) == 0 {
		return nil, fmt.Errorf("node metrics: %w", err)
	}
	out := make(Families, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out, nil
}

func labelsOf(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.Label))
	for _, l := range m.Label {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func valueOf(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// Links are the node's links with their counters, from its metrics
// (sorted by peer).
func Links(fams Families) []web.LinkCounters {
	byPeer := map[keys.PublicKey]*web.LinkCounters{}
	get := func(peer string) *web.LinkCounters {
		pk, err := keys.ParsePublicKey(peer)
		if err != nil {
			return nil
		}
		l := byPeer[pk]
		if l == nil {
			l = &web.LinkCounters{Peer: pk}
			byPeer[pk] = l
		}
		return l
	}
	if mf := fams[MetricLinkBytes]; mf != nil {
		for _, m := range mf.Metric {
			ls := labelsOf(m)
			l := get(ls["peer"])
			if l == nil {
				continue
			}
			switch ls["direction"] {
			case "in":
				l.BytesIn = uint64(valueOf(m))
			case "out":
				l.BytesOut = uint64(valueOf(m))
			}
		}
	}
	if mf := fams[MetricLinkRTT]; mf != nil {
		for _, m := range mf.Metric {
			if l := get(labelsOf(m)["peer"]); l != nil {
				l.RTT = time.Duration(valueOf(m) * float64(time.Second))
			}
		}
	}
	out := make([]web.LinkCounters, 0, len(byPeer))
	for _, l := range byPeer {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b web.LinkCounters) int { return strings.Compare(a.Peer.String(), b.Peer.String()) })
	return out
}

// Apps are the apps registered on the node's app socket with their
// traffic, from its metrics (sorted by name, port and PID).
func Apps(fams Families) []web.MeshApp {
	mf := fams[MetricAppBytes]
	if mf == nil {
		return nil
	}
	type id struct {
		name      string
		port, pid int
	}
	byID := map[id]*web.MeshApp{}
	for _, m := range mf.Metric {
		ls := labelsOf(m)
		port, err1 := strconv.ParseUint(ls["port"], 10, 16)
		pid, err2 := strconv.Atoi(ls["pid"])
		if err1 != nil || err2 != nil {
			continue
		}
		k := id{ls["app"], int(port), pid}
		a := byID[k]
		if a == nil {
			a = &web.MeshApp{Name: k.name, Port: uint16(port), PID: pid}
			byID[k] = a
		}
		switch ls["direction"] {
		case "in":
			a.BytesIn = uint64(valueOf(m))
		case "out":
			a.BytesOut = uint64(valueOf(m))
		}
	}
	out := make([]web.MeshApp, 0, len(byID))
	for _, a := range byID {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b web.MeshApp) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if a.Port != b.Port {
			return int(a.Port) - int(b.Port)
		}
		return a.PID - b.PID
	})
	return out
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
	fams, err := m.src.Metrics(ctx)
	if err != nil {
		return v, err
	}
	v.Links, v.Apps = Links(fams), Apps(fams)
	if v.Paths, err = m.paths(ctx, st.Key); err != nil {
		return v, err
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

// FromNode is the Source of an in-process node whose metrics reg
// gathers (internal/metrics.NodeRegistry of n and its app server).
func FromNode(n *node.Node, reg prometheus.Gatherer) Source { return local{n, reg} }

type local struct {
	n   *node.Node
	reg prometheus.Gatherer
}

func (l local) Status(context.Context) (node.Status, error) { return l.n.Status(), nil }
func (l local) Directory(ctx context.Context) ([]node.DirectoryEntry, error) {
	return l.n.Directory(ctx)
}
func (l local) Routes(context.Context) ([]node.RouteInfo, error)     { return l.n.Routes(), nil }
func (l local) Sessions(context.Context) ([]node.SessionInfo, error) { return l.n.Sessions(), nil }
func (l local) Metrics(context.Context) (Families, error)            { return Gathered(l.reg) }
func (l local) RouteTo(ctx context.Context, remote keys.PublicKey) (node.PathInfo, error) {
	return l.n.RouteTo(ctx, remote)
}

// ErrNoNode is Read's error when no node is configured for the dashboard.
var ErrNoNode = errors.New("no [node] in the config: the dashboard shows this viscript's apps only")
