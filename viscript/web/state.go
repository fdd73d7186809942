package web

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/viscript/control"
)

// state is what the page shows, as JSON. Numbers are raw (bytes,
// seconds, milliseconds); the page formats them for people.
type state struct {
	At         int64                `json:"at"` // Unix ms of the sample
	IntervalMS int64                `json:"interval_ms"`
	History    int                  `json:"history"` // points per chart
	Self       string               `json:"self,omitempty"`
	MeshError  string               `json:"mesh_error,omitempty"`
	DirError   string               `json:"dir_error,omitempty"`
	Nodes      []stateNode          `json:"nodes"`
	Links      []stateLink          `json:"links"`
	Paths      [][]string           `json:"paths"`
	LocalLinks []stateLocal         `json:"local_links"`
	Apps       map[string]stateApps `json:"apps"` // by node key, or "local"
	// Series is every chart's history (first message of a stream);
	// Points the newest point of each (the messages after it).
	Series map[string][]point `json:"series,omitempty"`
	Points map[string]point   `json:"points,omitempty"`
}

type stateNode struct {
	Key   string   `json:"key"`
	Name  string   `json:"name,omitempty"`
	Addrs []string `json:"addrs"`
	Since int64    `json:"since,omitempty"` // Unix ms
	Apps  []DirApp `json:"apps"`
	Local bool     `json:"local,omitempty"`
}

type stateLink struct {
	A     string  `json:"a"`
	B     string  `json:"b"`
	RTTms float64 `json:"rtt_ms"`
}

type stateLocal struct {
	Peer   string  `json:"peer"`
	RTTms  float64 `json:"rtt_ms"`
	InBps  float64 `json:"in_bps"`
	OutBps float64 `json:"out_bps"`
	// BytesIn and BytesOut are the link's byte counters the rates come
	// from: the node's skywire_node_link_bytes_total{peer, direction}.
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
	Series   string `json:"series"`
}

type stateApps struct {
	Error   string     `json:"error,omitempty"`
	Apps    []stateApp `json:"apps"`
	Catalog []string   `json:"catalog"`
}

type stateApp struct {
	control.AppInfo
	CPUPercent float64 `json:"cpu_percent"`
	RSSBytes   uint64  `json:"rss_bytes"`
	UsageError string  `json:"usage_error,omitempty"`
	// Mesh is the app's traffic through the local node (nil when it is
	// not registered there).
	Mesh   *appMesh `json:"mesh,omitempty"`
	Series string   `json:"series"`
}

type appMesh struct {
	Port   uint16  `json:"port"`
	InBps  float64 `json:"in_bps"`
	OutBps float64 `json:"out_bps"`
	// The counters of the rates: skywire_node_app_bytes_total.
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
}

// Bounds on what the sampler keeps.
const (
	maxWatched   = 16   // remote nodes watched at once (their apps sampled)
	maxSeries    = 1024 // charts kept
	usageWorkers = 8
)

// sampler reads the mesh and the apps every interval, keeps each chart's
// ring and hands each sample to the subscribers.
type sampler struct {
	mesh    Mesh
	nodes   NodeSource
	every   time.Duration
	history int
	now     func() time.Time

	mu      sync.Mutex
	cur     *state           // last sample; nil before the first
	series  map[string]*ring // by series name
	lastAt  map[string]int64 // Unix ms a series was last extended
	prevCtr map[string][2]uint64
	prevAt  time.Time
	watched map[string]int // remote node key → streams watching it
	subs    map[chan []byte]bool
	self    keys.PublicKey
	selfOK  bool
	poke    chan struct{}
}

func newSampler(mesh Mesh, nodes NodeSource, every time.Duration, history int) *sampler {
	return &sampler{
		mesh: mesh, nodes: nodes, every: every, history: history, now: time.Now,
		series: map[string]*ring{}, lastAt: map[string]int64{}, prevCtr: map[string][2]uint64{},
		watched: map[string]int{}, subs: map[chan []byte]bool{}, poke: make(chan struct{}, 1),
	}
}

// selfKey is the local node's key, once the mesh has been read.
func (s *sampler) selfKey() (keys.PublicKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.self, s.selfOK
}

// run samples until ctx is done.
func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		s.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.poke:
		}
	}
}

// refresh asks for a sample now (after a start or stop from the page).
func (s *sampler) refresh() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// watch adds a remote node whose apps are sampled while the returned
// func has not been called; false when too many are watched.
func (s *sampler) watch(key string) (func(), bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.watched[key]; !ok && len(s.watched) >= maxWatched {
		return nil, false
	}
	s.watched[key]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.watched[key]--; s.watched[key] <= 0 {
			delete(s.watched, key)
		}
	}, true
}

// subscribe returns a channel of encoded samples (each the newest point
// of every series; the first message has the whole history) and a cancel
// func. A slow reader misses samples, never blocks the sampler.
func (s *sampler) subscribe() (<-chan []byte, func()) {
	ch := make(chan []byte, 1)
	s.mu.Lock()
	if s.cur != nil {
		full := *s.cur
		full.Series = s.seriesLocked()
		full.Points = nil
		if b, err := json.Marshal(full); err == nil {
			ch <- b
		}
	}
	s.subs[ch] = true
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

func (s *sampler) seriesLocked() map[string][]point {
	out := make(map[string][]point, len(s.series))
	for k, r := range s.series {
		out[k] = r.points()
	}
	return out
}

// fullState returns the last sample with every series.
func (s *sampler) fullState() ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil, false
	}
	full := *s.cur
	full.Series = s.seriesLocked()
	full.Points = nil
	b, err := json.Marshal(full)
	return b, err == nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// sample takes one reading of everything and publishes it.
func (s *sampler) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(3*s.every, 5*time.Second))
	defer cancel()
	now := s.now()
	st := &state{At: now.UnixMilli(), IntervalMS: s.every.Milliseconds(), History: s.history, Nodes: []stateNode{}, Links: []stateLink{}, Paths: [][]string{},
		LocalLinks: []stateLocal{}, Apps: map[string]stateApps{}, Points: map[string]point{}}

	view, err := s.mesh.Read(ctx)
	if err != nil {
		st.MeshError = err.Error()
	} else {
		st.Self = view.Self.String()
		st.DirError = view.DirectoryErr
	}
	s.mu.Lock()
	if err == nil && !view.Self.IsZero() {
		s.self, s.selfOK = view.Self, true
	}
	prevAt := s.prevAt
	watched := make([]string, 0, len(s.watched))
	for k := range s.watched {
		watched = append(watched, k)
	}
	s.mu.Unlock()
	slices.Sort(watched)
	secs := now.Sub(prevAt).Seconds()
	if prevAt.IsZero() {
		secs = 0
	}
	s.graph(st, view)

	// Apps of the local node, and of every remote node a page watches.
	byPid := map[int]MeshApp{}
	for _, a := range view.Apps {
		if a.PID > 0 {
			byPid[a.PID] = a
		}
	}
	nodes := append([]string{"local"}, watched...)
	type result struct {
		key  string
		apps stateApps
	}
	results := make([]result, len(nodes))
	var wg sync.WaitGroup
	for i, key := range nodes {
		wg.Go(func() { results[i] = result{key, s.nodeApps(ctx, key)} })
	}
	wg.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	extend := func(name string, in, out float64, cpu float64) {
		r := s.series[name]
		if r == nil {
			if len(s.series) >= maxSeries {
				return
			}
			r = newRing(s.history)
			s.series[name] = r
		}
		p := point{T: st.At, In: in, Out: out, CPU: cpu}
		r.add(p)
		s.lastAt[name] = st.At
		st.Points[name] = p
	}
	ctr := map[string][2]uint64{}
	for _, l := range view.Links {
		name := "link:" + l.Peer.String()
		prev, had := s.prevCtr[name]
		ctr[name] = [2]uint64{l.BytesIn, l.BytesOut}
		sl := stateLocal{Peer: l.Peer.String(), RTTms: ms(l.RTT), Series: name, BytesIn: l.BytesIn, BytesOut: l.BytesOut}
		if had && secs > 0 {
			sl.InBps, sl.OutBps = rate(prev[0], l.BytesIn, secs), rate(prev[1], l.BytesOut, secs)
			extend(name, sl.InBps, sl.OutBps, 0)
		}
		st.LocalLinks = append(st.LocalLinks, sl)
	}
	for _, r := range results {
		for i := range r.apps.Apps {
			a := &r.apps.Apps[i]
			a.Series = "app:" + r.key + ":" + fmt.Sprint(a.ID)
			var in, out float64
			if ma, ok := byPid[a.Pid]; ok && r.key == "local" && a.State == control.StateRunning {
				cname := a.Series + ":" + fmt.Sprint(a.Pid)
				prev, had := s.prevCtr[cname]
				ctr[cname] = [2]uint64{ma.BytesIn, ma.BytesOut}
				a.Mesh = &appMesh{Port: ma.Port, BytesIn: ma.BytesIn, BytesOut: ma.BytesOut}
				if had && secs > 0 {
					in, out = rate(prev[0], ma.BytesIn, secs), rate(prev[1], ma.BytesOut, secs)
					a.Mesh.InBps, a.Mesh.OutBps = in, out
				}
			}
			if a.State == control.StateRunning && secs > 0 {
				extend(a.Series, in, out, a.CPUPercent)
			}
		}
		st.Apps[r.key] = r.apps
	}
	s.prevCtr, s.prevAt = ctr, now
	// Forget charts not extended for a whole history.
	horizon := st.At - int64(s.history)*s.every.Milliseconds()
	for name, at := range s.lastAt {
		if at < horizon {
			delete(s.series, name)
			delete(s.lastAt, name)
		}
	}
	s.cur = st
	b, err := json.Marshal(st)
	if err != nil {
		return
	}
	for ch := range s.subs {
		select {
		case ch <- b:
		default: // the reader is behind: it gets the next one
		}
	}
}

// graph fills the nodes, links and routes of st from view.
func (s *sampler) graph(st *state, view MeshView) {
	seen := map[keys.PublicKey]bool{}
	type pair struct{ a, b keys.PublicKey }
	links := map[pair]float64{}
	for _, n := range view.Nodes {
		if seen[n.Key] {
			continue
		}
		seen[n.Key] = true
		sn := stateNode{Key: n.Key.String(), Name: n.Name, Addrs: n.Addrs, Apps: n.Apps, Local: n.Key == view.Self}
		if sn.Addrs == nil {
			sn.Addrs = []string{}
		}
		if sn.Apps == nil {
			sn.Apps = []DirApp{}
		}
		if !n.Since.IsZero() {
			sn.Since = n.Since.UnixMilli()
		}
		st.Nodes = append(st.Nodes, sn)
		for _, l := range n.Links {
			p := pair{n.Key, l.Peer}
			if l.Peer.String() < n.Key.String() {
				p = pair{l.Peer, n.Key}
			}
			// Both ends report a link: show the lower RTT.
			if old, ok := links[p]; !ok || ms(l.RTT) < old {
				links[p] = ms(l.RTT)
			}
		}
	}
	if !view.Self.IsZero() && !seen[view.Self] {
		// Not (yet) in the directory: still draw this node and its links.
		st.Nodes = append(st.Nodes, stateNode{Key: view.Self.String(), Addrs: []string{}, Apps: []DirApp{}, Local: true})
		seen[view.Self] = true
		for _, l := range view.Links {
			p := pair{view.Self, l.Peer}
			if l.Peer.String() < view.Self.String() {
				p = pair{l.Peer, view.Self}
			}
			links[p] = ms(l.RTT)
		}
	}
	for p, rtt := range links {
		if seen[p.a] && seen[p.b] {
			st.Links = append(st.Links, stateLink{A: p.a.String(), B: p.b.String(), RTTms: rtt})
		}
	}
	slices.SortFunc(st.Links, func(x, y stateLink) int {
		if x.A != y.A {
			return cmp.Compare(x.A, y.A)
		}
		return cmp.Compare(x.B, y.B)
	})
	for _, path := range view.Paths {
		p := make([]string, len(path))
		for i, k := range path {
			p[i] = k.String()
		}
		st.Paths = append(st.Paths, p)
	}
}

// nodeApps lists the apps of one node ("local" or a key) with their
// usage, and its catalog.
func (s *sampler) nodeApps(ctx context.Context, key string) stateApps {
	out := stateApps{Apps: []stateApp{}, Catalog: []string{}}
	ctrl, err := s.controller(ctx, key)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	infos, err := ctrl.List(ctx)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	if cat, err := ctrl.Catalog(ctx); err == nil {
		for _, c := range cat {
			out.Catalog = append(out.Catalog, c.Name)
		}
	}
	out.Apps = make([]stateApp, len(infos))
	sem := make(chan struct{}, usageWorkers)
	var wg sync.WaitGroup
	for i, info := range infos {
		out.Apps[i].AppInfo = info
		if info.Args == nil {
			out.Apps[i].Args = []string{}
		}
		if info.State != control.StateRunning {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			u, err := ctrl.Usage(ctx, info.ID)
			if err != nil {
				if !errors.Is(err, control.ErrNotRunning) {
					out.Apps[i].UsageError = err.Error()
				}
				return
			}
			out.Apps[i].CPUPercent, out.Apps[i].RSSBytes = u.CPUPercent, u.RSSBytes
		})
	}
	wg.Wait()
	return out
}

// controller finds the Controller of "local" or a node key.
func (s *sampler) controller(ctx context.Context, key string) (control.Controller, error) {
	var pk keys.PublicKey
	if key != "local" {
		var err error
		if pk, err = keys.ParsePublicKey(key); err != nil {
			return nil, fmt.Errorf("node %q: %w", key, err)
		}
		if self, ok := s.selfKey(); ok && self == pk {
			pk = keys.PublicKey{}
		}
	}
	return s.nodes.Controller(ctx, pk)
}
