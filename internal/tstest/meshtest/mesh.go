package meshtest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager"
	"github.com/skywire-mesh/skywire/node"
)

// Topologies: lists of links between node indices.

// Line links 0-1-2-…-(n-1).
func Line(n int) [][2]int {
	var l [][2]int
	for i := 0; i+1 < n; i++ {
		l = append(l, [2]int{i, i + 1})
	}
	return l
}

// Star links node 0 to every other node.
func Star(n int) [][2]int {
	var l [][2]int
	for i := 1; i < n; i++ {
		l = append(l, [2]int{0, i})
	}
	return l
}

// Random is a random spanning tree over n nodes plus extra random links,
// from a fixed seed.
func Random(n, extra int, seed uint64) [][2]int {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	seen := map[[2]int]bool{}
	var l [][2]int
	add := func(a, b int) bool {
		if a == b {
			return false
		}
		if a > b {
			a, b = b, a
		}
		if seen[[2]int{a, b}] {
			return false
		}
		seen[[2]int{a, b}] = true
		l = append(l, [2]int{a, b})
		return true
	}
	for i := 1; i < n; i++ {
		add(r.IntN(i), i)
	}
	for tries := 0; extra > 0 && tries < 100*n; tries++ {
		if add(r.IntN(n), r.IntN(n)) {
			extra--
		}
	}
	return l
}

// Options describe a mesh.
type Options struct {
	Nodes int
	Links [][2]int
	// RTT pins the RTT a node reports for the link a-b (default: 1ms).
	RTT func(a, b int) time.Duration
	// HopLimit is the manager's hop limit (default 8).
	HopLimit int
	// Node and Manager adjust configs after the test defaults are set.
	Node    func(i int, c *node.Config)
	Manager func(c *manager.Config)
	// NodeKeys, if set, are the nodes' key pairs (tests that must know
	// the keys before the manager starts, such as its member list);
	// missing ones are generated.
	NodeKeys []keys.KeyPair
	// Log enables logging to stderr (or set MESHTEST_LOG=1).
	Log bool
	// TCP runs the mesh over real TCP on loopback instead of in-memory
	// pipes (Cut and Heal are then unavailable).
	TCP bool
}

// FastTimers are the node timers the mesh uses: keepalives every 100 ms,
// links dead after 3 s of silence, rules after 3 s idle (times
// tstest.TimeScale). Detection is fast, yet a loaded machine running
// go test -race (goroutines starved for a second or more) does not take
// healthy links, manager registrations or rules down.
func FastTimers(c *node.Config) {
	c.LinkKeepalive = tstest.Scaled(100 * time.Millisecond)
	c.LinkDeadAfter = tstest.Scaled(3 * time.Second)
	c.ReconnectMin = 10 * time.Millisecond
	c.ReconnectMax = tstest.Scaled(200 * time.Millisecond)
	c.RuleIdle = tstest.Scaled(3 * time.Second)
	c.RouteKeepalive = tstest.Scaled(300 * time.Millisecond)
	c.RequestTimeout = tstest.Scaled(10 * time.Second)
	c.LinkReportInterval = 100 * time.Millisecond
	c.SessionIdle = tstest.Scaled(30 * time.Second)
}

// Manager timers of a mesh, matching FastTimers.
func fastManagerTimers(c *manager.Config) {
	c.LinkKeepalive = tstest.Scaled(100 * time.Millisecond)
	c.LinkDeadAfter = tstest.Scaled(3 * time.Second)
	c.InstallTimeout = tstest.Scaled(5 * time.Second)
}

// Node is one node of a mesh.
type Node struct {
	*node.Node
	Index int
	Name  string
	Keys  keys.KeyPair
	// Addr is where the node listens: its name, or a loopback TCP address.
	Addr string

	ln net.Listener // bound in advance (TCP)

	mesh   *Mesh
	cancel context.CancelFunc
	done   chan struct{}
}

// Mesh is a running in-memory mesh.
type Mesh struct {
	T          testing.TB
	Net        *Network
	ManagerKey keys.KeyPair
	Nodes      []*Node
	opts       Options

	mgrAddr string
	mgrLn   net.Listener

	mu      sync.Mutex
	mgr     *manager.Manager
	mgrStop context.CancelFunc
	mgrDone chan struct{}
}

// ManagerAddr is the manager's address on the in-memory network.
const ManagerAddr = "manager"

// New builds and starts a mesh; t.Cleanup stops it and waits for every
// goroutine.
func New(t testing.TB, opts Options) *Mesh {
	t.Helper()
	m := &Mesh{T: t, Net: NewNetwork(), opts: opts}
	m.ManagerKey = mustKey(t)
	m.mgrAddr = ManagerAddr
	if opts.TCP {
		m.mgrLn = listenTCP(t, "127.0.0.1:0")
		m.mgrAddr = m.mgrLn.Addr().String()
	}
	for i := 0; i < opts.Nodes; i++ {
		kp := mustKey(t)
		if i < len(opts.NodeKeys) {
			kp = opts.NodeKeys[i]
		}
		nd := &Node{Index: i, Name: fmt.Sprintf("n%d", i), Keys: kp, mesh: m}
		nd.Addr = nd.Name
		if opts.TCP {
			nd.ln = listenTCP(t, "127.0.0.1:0")
			nd.Addr = nd.ln.Addr().String()
		}
		m.Nodes = append(m.Nodes, nd)
	}
	m.StartManager()
	for i := range m.Nodes {
		m.StartNode(i)
	}
	t.Cleanup(m.Close)
	return m
}

func listenTCP(t testing.TB, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// listen returns the listener a (re)starting manager or node serves:
// *first, the one made with the mesh, once; then a new one on its TCP
// address tcpAddr, or on its name in the in-memory network.
func (m *Mesh) listen(first *net.Listener, name, tcpAddr string) net.Listener {
	m.T.Helper()
	if ln := *first; ln != nil {
		*first = nil
		return ln
	}
	if m.opts.TCP {
		return listenTCP(m.T, tcpAddr)
	}
	ln, err := m.Net.Listen(name)
	if err != nil {
		m.T.Fatal(err)
	}
	return ln
}

func mustKey(t testing.TB) keys.KeyPair {
	kp, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func (m *Mesh) logger(name string) *slog.Logger {
	if m.opts.Log || os.Getenv("MESHTEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("who", name)
	}
	return nil
}

// Manager returns the running manager (nil while stopped).
func (m *Mesh) Manager() *manager.Manager {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mgr
}

// StartManager starts the manager (again).
func (m *Mesh) StartManager() {
	m.T.Helper()
	ln := m.listen(&m.mgrLn, ManagerAddr, m.mgrAddr)
	cfg := manager.DefaultConfig()
	cfg.Identity = m.ManagerKey
	cfg.Listener = ln
	cfg.HopLimit = m.opts.HopLimit
	fastManagerTimers(&cfg)
	cfg.Admit = manager.AdmitOpen // tests of membership set AdmitMembers
	if m.opts.Manager != nil {
		m.opts.Manager(&cfg)
	}
	mgr, err := manager.New(cfg, m.logger("manager"))
	if err != nil {
		m.T.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); mgr.Run(ctx) }()
	m.mu.Lock()
	m.mgr, m.mgrStop, m.mgrDone = mgr, cancel, done
	m.mu.Unlock()
}

// StopManager stops the manager and waits for it.
func (m *Mesh) StopManager() {
	m.mu.Lock()
	stop, done := m.mgrStop, m.mgrDone
	m.mgr, m.mgrStop, m.mgrDone = nil, nil, nil
	m.mu.Unlock()
	if stop != nil {
		stop()
		m.await(done, "manager to stop")
	}
}

// stopBound bounds how long stopping a node or the manager may take.
const stopBound = 30 * time.Second

// await waits for done, or fails the test (with every goroutine's stack)
// after tstest.Scaled(stopBound). It may be called from any goroutine.
func (m *Mesh) await(done <-chan struct{}, what string) {
	t := time.NewTimer(tstest.Scaled(stopBound))
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		m.T.Errorf("meshtest: timed out after %v waiting for %s; goroutines:\n%s", tstest.Scaled(stopBound), what, buf)
	}
}

func (m *Mesh) nodeConfig(i int) node.Config {
	nd := m.Nodes[i]
	cfg := node.DefaultConfig()
	FastTimers(&cfg)
	cfg.Identity = nd.Keys
	if !m.opts.TCP {
		cfg.Dial = m.Net.Dialer(nd.Name)
	}
	cfg.Managers = []node.Peer{{PublicKey: m.ManagerKey.Public, Addr: m.mgrAddr}}
	index := map[keys.PublicKey]int{}
	for _, o := range m.Nodes {
		index[o.Keys.Public] = o.Index
	}
	for _, l := range m.opts.Links {
		// The lower index dials.
		if l[0] == i {
			o := m.Nodes[l[1]]
			cfg.Peers = append(cfg.Peers, node.Peer{PublicKey: o.Keys.Public, Addr: o.Addr})
		}
	}
	rtt := m.opts.RTT
	cfg.ReportRTT = func(p keys.PublicKey, measured time.Duration) time.Duration {
		j, ok := index[p]
		if !ok || rtt == nil {
			return time.Millisecond
		}
		return rtt(i, j)
	}
	if m.opts.Node != nil {
		m.opts.Node(i, &cfg)
	}
	return cfg
}

// StartNode starts node i (again, with the same key).
func (m *Mesh) StartNode(i int) {
	m.T.Helper()
	nd := m.Nodes[i]
	ln := m.listen(&nd.ln, nd.Name, nd.Addr)
	cfg := m.nodeConfig(i)
	cfg.Listener = ln
	n, err := node.New(cfg, m.logger(nd.Name))
	if err != nil {
		m.T.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	nd.Node, nd.cancel, nd.done = n, cancel, make(chan struct{})
	done := nd.done
	go func() { defer close(done); n.Run(ctx) }()
}

// StopNode stops node i and waits for it (a crash, as far as its peers
// can tell: they see its links die).
func (m *Mesh) StopNode(i int) {
	nd := m.Nodes[i]
	if nd.cancel == nil {
		return
	}
	nd.cancel()
	m.await(nd.done, nd.Name+" to stop")
	nd.cancel = nil
}

// Cut cuts the link between nodes a and b (and keeps it down).
func (m *Mesh) Cut(a, b int) {
	if m.opts.TCP {
		m.T.Fatal("meshtest: Cut needs the in-memory network")
	}
	m.Net.Cut(m.Nodes[a].Name, m.Nodes[b].Name)
}

// Blackhole silently drops everything between nodes a and b (a link that
// dies without closing: only keepalives notice).
func (m *Mesh) Blackhole(a, b int) {
	if m.opts.TCP {
		m.T.Fatal("meshtest: Blackhole needs the in-memory network")
	}
	m.Net.Blackhole(m.Nodes[a].Name, m.Nodes[b].Name)
}

// Heal lets nodes a and b link again.
func (m *Mesh) Heal(a, b int) { m.Net.Heal(m.Nodes[a].Name, m.Nodes[b].Name) }

// Close stops every node and the manager.
func (m *Mesh) Close() {
	var wg sync.WaitGroup
	for i := range m.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); m.StopNode(i) }()
	}
	wg.Wait()
	m.StopManager()
}

// WaitFor is tstest.WaitFor for the mesh's test.
func (m *Mesh) WaitFor(what string, cond func() bool) {
	m.T.Helper()
	tstest.WaitFor(m.T, what, cond)
}

// WaitReady waits until every running node is registered and the manager
// sees every configured link up in both directions.
func (m *Mesh) WaitReady() {
	m.T.Helper()
	m.WaitFor("mesh ready", func() bool { return m.linksUp(m.opts.Links) })
}

// WaitLinks waits until the manager sees exactly the given links up.
func (m *Mesh) WaitLinks(links [][2]int) {
	m.T.Helper()
	m.WaitFor(fmt.Sprintf("links %v", links), func() bool { return m.linksUp(links) })
}

func (m *Mesh) linksUp(links [][2]int) bool {
	mgr := m.Manager()
	if mgr == nil {
		return false
	}
	for _, nd := range m.Nodes {
		if nd.cancel == nil {
			continue // stopped
		}
		if st := nd.Status(); !slices.ContainsFunc(st.Managers, func(ms node.ManagerStatus) bool { return ms.Registered }) {
			return false
		}
	}
	want := map[[2]keys.PublicKey]bool{}
	for _, l := range links {
		a, b := m.Nodes[l[0]].Keys.Public, m.Nodes[l[1]].Keys.Public
		want[[2]keys.PublicKey{a, b}] = true
		want[[2]keys.PublicKey{b, a}] = true
	}
	got := 0
	for _, ni := range mgr.Nodes() {
		for _, li := range ni.Links {
			if !li.Up {
				continue
			}
			if !want[[2]keys.PublicKey{ni.Key, li.Peer}] {
				return false
			}
			got++
		}
	}
	return got == len(want)
}

// Index returns the index of the node with key k, or -1.
func (m *Mesh) Index(k keys.PublicKey) int {
	for _, n := range m.Nodes {
		if n.Keys.Public == k {
			return n.Index
		}
	}
	return -1
}

// Path maps a list of keys to node indices.
func (m *Mesh) Path(hops []keys.PublicKey) []int {
	out := make([]int, len(hops))
	for i, h := range hops {
		out[i] = m.Index(h)
	}
	return out
}
