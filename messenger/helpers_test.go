package messenger

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

// node is a fake mesh node with an app server on a unix socket.
type node struct {
	mesh *fakemesh.Node
	path string
}

func newNode(tb testing.TB, n *fakemesh.Network, name string) *node {
	tb.Helper()
	sn := fakemesh.ServeNode(tb, n, name+" node")
	return &node{mesh: sn.Node, path: sn.Path}
}

func (nd *node) key() keys.PublicKey { return nd.mesh.PublicKey() }

// daemonT is a messenger daemon run by a test.
type daemonT struct {
	name   string
	cfg    Config
	cancel context.CancelFunc
	done   chan error
	logs   *tstest.SyncBuffer
}

func testConfig(tb testing.TB, nd *node) Config {
	cfg := DefaultConfig()
	cfg.NodeSocket = nd.path
	cfg.StateDir = tstest.SocketDir(tb)
	cfg.Web = ""
	cfg.RetryMin = 20 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	cfg.DeliveryTimeout = 5 * time.Second
	return cfg
}

// withWeb gives cfg a web listener on a free loopback port and returns
// its base URL, "http://127.0.0.1:PORT".
func withWeb(tb testing.TB, cfg *Config) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	cfg.WebListener = ln
	return "http://" + ln.Addr().String()
}

// startDaemon runs a messenger with cfg and waits until it is registered
// with its node. Cleanup stops it (if stop was not called).
// soloDaemon checks for leaks and runs daemon "a" on a node of a mesh of
// its own.
func soloDaemon(t *testing.T) *daemonT {
	t.Helper()
	tstest.CheckLeaks(t)
	return startDaemon(t, "a", testConfig(t, newNode(t, fakemesh.New(), "a")))
}

// daemonPair checks for leaks and runs daemons "a" and "b" on nodes na and
// nb of mesh n.
func daemonPair(t *testing.T) (n *fakemesh.Network, na, nb *node, a, b *daemonT) {
	t.Helper()
	tstest.CheckLeaks(t)
	n = fakemesh.New()
	na, nb = newNode(t, n, "a"), newNode(t, n, "b")
	return n, na, nb, startDaemon(t, "a", testConfig(t, na)), startDaemon(t, "b", testConfig(t, nb))
}

func startDaemon(tb testing.TB, name string, cfg Config) *daemonT {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemonT{name: name, cfg: cfg, cancel: cancel, done: make(chan error, 1), logs: &tstest.SyncBuffer{}}
	log := slog.New(slog.NewTextHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if tl := tstest.VerboseLogger(tb, name+": "); tl != nil {
		log = slog.New(slog.NewMultiHandler(log.Handler(), tl.Handler()))
	}
	go func() { d.done <- Run(ctx, cfg, log) }()
	tb.Cleanup(func() { d.stop(tb) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := SelfInfo(ctx, cfg)
		if err == nil && s.Registered {
			return d
		}
		select {
		case err := <-d.done:
			d.done <- err
			tb.Fatalf("%s: Run returned early: %v", name, err)
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not registered after 10s: %v", name, err)
		}
		time.Sleep(5 * time.Millisecond) // the daemon is another party with no channel to wait on
	}
}

func (d *daemonT) stop(tb testing.TB) {
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		if err != nil {
			tb.Errorf("%s: Run returned %v", d.name, err)
		}
	case <-time.After(10 * time.Second):
		tb.Fatalf("%s: Run did not return 10s after cancel", d.name)
	}
}

// watcher follows a daemon's events so that tests wait on them instead of
// polling.
type watcher struct {
	cfg    Config
	events chan Event
	cancel context.CancelFunc
	done   chan struct{}
}

// watch subscribes to d's events; the subscription is up when it returns.
func watch(tb testing.TB, cfg Config) *watcher {
	tb.Helper()
	c, err := newClient(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{cfg: cfg, events: make(chan Event, 1024), cancel: cancel, done: make(chan struct{})}
	up := make(chan struct{})
	go func() {
		defer close(w.done)
		defer c.close()
		c.events(ctx, func() { close(up) }, func(ev Event) {
			select {
			case w.events <- ev:
			default:
				tb.Errorf("watcher queue full")
			}
		})
	}()
	select {
	case <-up:
	case <-w.done:
		tb.Fatal("event subscription failed")
	}
	tb.Cleanup(w.close)
	return w
}

func (w *watcher) close() {
	w.cancel()
	<-w.done
}

// waitMessages waits until read(who) on the watched daemon satisfies ok.
func (w *watcher) waitMessages(tb testing.TB, who string, what string, ok func([]Message) bool) []Message {
	tb.Helper()
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	for {
		ms, err := Read(context.Background(), w.cfg, who)
		if err != nil {
			tb.Fatalf("read: %v", err)
		}
		if ok(ms) {
			return ms
		}
		select {
		case <-w.events:
		case <-t.C:
			tb.Fatalf("timed out waiting for %s; messages: %s", what, dump(ms))
		}
	}
}

func dump(ms []Message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "\n  %s %s %q %s %s", m.ID[:8], m.Dir, m.Text, m.State, m.Reason)
	}
	return b.String()
}

func count(ms []Message, dir, text, state string) int {
	n := 0
	for _, m := range ms {
		if m.Dir == dir && m.Text == text && (state == "" || m.State == state) {
			n++
		}
	}
	return n
}

// rawConn dials the messenger on to from an app of nd, like another
// messenger would, and exchanges hellos.
func rawConn(tb testing.TB, nd *node, to keys.PublicKey) (net.Conn, *appnet.Client) {
	tb.Helper()
	cli := fakemesh.ConnectApp(tb, nd.path, "raw", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := cli.Dial(ctx, to, DefaultPort)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn, cli
}
