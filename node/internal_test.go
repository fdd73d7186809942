package node

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

func TestConfigValidate(t *testing.T) {
	id := tstest.KeyPair(t)
	peer := Peer{PublicKey: tstest.KeyPair(t).Public, Addr: "127.0.0.1:1"}
	tests := []struct {
		name string
		mod  func(c *Config)
		key  string
	}{
		{"defaults", func(c *Config) {}, ""},
		{"with peers", func(c *Config) { c.Peers = []Peer{peer}; c.Managers = []Peer{peer} }, ""},
		{"no identity", func(c *Config) { c.Identity = keys.KeyPair{} }, "identity"},
		{"hop limit", func(c *Config) { c.HopLimit = 65 }, "hop_limit"},
		{"dead after", func(c *Config) { c.LinkDeadAfter = c.LinkKeepalive }, "link_dead_after"},
		{"reconnect", func(c *Config) { c.ReconnectMax = time.Millisecond }, "reconnect_max"},
		{"keepalive vs idle", func(c *Config) { c.RouteKeepalive = c.RuleIdle }, "route_keepalive"},
		{"listen", func(c *Config) { c.ListenAddr = "x" }, "listen_addr"},
		{"peer without key", func(c *Config) { c.Peers = []Peer{{Addr: "a:1"}} }, "peers[0]"},
		{"peer is self", func(c *Config) { c.Peers = []Peer{{PublicKey: id.Public, Addr: "a:1"}} }, "peers[0]"},
		{"negative cap", func(c *Config) { c.MaxPeers = -1 }, "max_peers"},
		{"manager without addr", func(c *Config) { c.Managers = []Peer{{PublicKey: peer.PublicKey}} }, "managers[0]"},
		{"name", func(c *Config) { c.Name = "kitchen-pi" }, ""},
		{"name with a space", func(c *Config) { c.Name = "kitchen pi" }, "name"},
		{"name too long", func(c *Config) { c.Name = string(make([]byte, 64)) }, "name"},
		{"name local", func(c *Config) { c.Name = "local" }, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Identity = id
			tt.mod(&c)
			tstest.CheckConfigErr(t, c.Validate(), ErrConfig, tt.key)
		})
	}
}

// The core never imports the CLI or the config-file library.
func TestNoCLIImports(t *testing.T) {
	tstest.CheckImports(t, ".", "urfave/cli", "BurntSushi/toml")
}

// fakeLink links n to a new key over net.Pipe; the far end discards what
// it receives. It returns n's end.
func fakeLink(t testing.TB, n *Node) *link.Conn {
	t.Helper()
	far := tstest.KeyPair(t)
	c1, c2 := net.Pipe()
	srv := make(chan *link.Conn, 1)
	go func() {
		lc, _ := link.Server(context.Background(), c2, link.Config{Local: far}, nil)
		srv <- lc
	}()
	lc, err := link.Client(context.Background(), c1, link.Config{Local: n.cfg.Identity}, far.Public)
	if err != nil {
		t.Fatal(err)
	}
	farLC := <-srv
	if farLC == nil {
		t.Fatal("far end handshake failed")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, _, err := farLC.Recv(); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { lc.Close(); farLC.Close(); <-done })
	return lc
}

// newTestNode is a Node that is not running, linked to peers a and b, with
// a relay rule a:5 -> b:6 and an endpoint rule a:7 (out a:8).
func newTestNode(t testing.TB) (n *Node, a, b *peer) {
	cfg := DefaultConfig()
	cfg.Identity = tstest.KeyPair(t)
	cfg.ListenAddr = ""
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b = n.addLink(fakeLink(t, n)), n.addLink(fakeLink(t, n))
	code, msg := n.installRules(&proto.Install{Route: 1, Rules: []proto.Rule{{InPeer: proto.Key(a.key), InLabel: 5, OutPeer: proto.Key(b.key), OutLabel: 6}}})
	if code != proto.CodeOK {
		t.Fatal(code, msg)
	}
	code, msg = n.installRules(&proto.Install{Route: 2, End: &proto.Endpoint{Remote: proto.Key(b.key), Peer: proto.Key(a.key), InLabel: 7, OutLabel: 8}})
	if code != proto.CodeOK {
		t.Fatal(code, msg)
	}
	return n, a, b
}

func TestInstallRules(t *testing.T) {
	n, a, _ := newTestNode(t)
	stranger := proto.Key(tstest.KeyPair(t).Public)
	tests := []struct {
		name string
		in   *proto.Install
		want proto.Code
	}{
		{"label clash", &proto.Install{Route: 3, Rules: []proto.Rule{{InPeer: proto.Key(a.key), InLabel: 5, OutPeer: proto.Key(a.key), OutLabel: 9}}}, proto.CodeLabelInUse},
		{"same route again is fine", &proto.Install{Route: 1, Rules: []proto.Rule{{InPeer: proto.Key(a.key), InLabel: 5, OutPeer: proto.Key(a.key), OutLabel: 9}}}, proto.CodeOK},
		{"no link", &proto.Install{Route: 4, Rules: []proto.Rule{{InPeer: stranger, InLabel: 1, OutPeer: proto.Key(a.key), OutLabel: 1}}}, proto.CodeNoLink},
		{"label zero", &proto.Install{Route: 5, Rules: []proto.Rule{{InPeer: proto.Key(a.key), InLabel: 0, OutPeer: proto.Key(a.key), OutLabel: 1}}}, proto.CodeBadRequest},
		{"endpoint remote changes", &proto.Install{Route: 2, End: &proto.Endpoint{Remote: stranger, Peer: proto.Key(a.key), InLabel: 10, OutLabel: 11}}, proto.CodeBadRequest},
		{"endpoint clash", &proto.Install{Route: 6, End: &proto.Endpoint{Remote: stranger, Peer: proto.Key(a.key), InLabel: 7, OutLabel: 11}}, proto.CodeLabelInUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, msg := n.installRules(tt.in); got != tt.want {
				t.Fatalf("code %s (%s), want %s", got, msg, tt.want)
			}
		})
	}
	if len(n.Routes()) != 2 {
		t.Fatalf("routes %+v", n.Routes())
	}
}

func TestHandleDataCounters(t *testing.T) {
	n, a, b := newTestNode(t)
	tests := []struct {
		name  string
		frame []byte
		ctr   func(Counters) uint64
	}{
		{"short", []byte{0, 0}, func(c Counters) uint64 { return c.Malformed }},
		{"unknown label", []byte{0, 0, 0, 99, 0}, func(c Counters) uint64 { return c.UnknownLabel }},
		{"relay", []byte{0, 0, 0, 5, 0, 1}, func(c Counters) uint64 { return c.Forwarded }},
		{"endpoint bad kind", []byte{0, 0, 0, 7, 200}, func(c Counters) uint64 { return c.Malformed }},
		{"endpoint short ping", []byte{0, 0, 0, 7, byte(proto.KindPing), 1}, func(c Counters) uint64 { return c.Malformed }},
		{"endpoint keepalive", []byte{0, 0, 0, 7, byte(proto.KindKeepalive)}, func(c Counters) uint64 { return c.Delivered }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.ctr(n.Counters())
			n.handleData(a, append([]byte{proto.LinkData}, tt.frame...))
			if tt.ctr(n.Counters()) != before+1 {
				t.Fatalf("counter did not move: %+v", n.Counters())
			}
		})
	}
	// The next hop's link is gone: the frame is dropped and counted.
	b.mu.Lock()
	lc := b.links[0]
	b.mu.Unlock()
	n.removeLink(b, lc)
	before := n.Counters().NoLink
	n.handleData(a, []byte{proto.LinkData, 0, 0, 0, 5, 0, 1})
	if n.Counters().NoLink != before+1 {
		t.Fatalf("NoLink did not move: %+v", n.Counters())
	}
}

func FuzzHandleData(f *testing.F) {
	f.Add([]byte{0, 0, 0, 5, 0, 1, 2, 3})
	f.Add([]byte{0, 0, 0, 7, 0, 1, 2, 3})
	f.Add([]byte{0, 0, 0, 7, 1})
	f.Add([]byte{0, 0, 0, 7, 2, 9})
	f.Add([]byte{0, 0, 0, 7, 4, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{0, 0, 0, 7, 5, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{1})
	n, a, _ := newTestNode(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		n.handleData(a, append([]byte{proto.LinkData}, frame...))
		n.wg.Wait() // handshake responses run asynchronously
	})
}

func FuzzInstall(f *testing.F) {
	n, a, _ := newTestNode(f)
	seed, _ := proto.Encode(nil, &proto.Install{Route: 9, Rules: []proto.Rule{{InPeer: proto.Key(a.key), InLabel: 1, OutPeer: proto.Key(a.key), OutLabel: 2}}})
	f.Add(seed)
	seed, _ = proto.Encode(nil, &proto.Install{Route: 10, End: &proto.Endpoint{Remote: proto.Key(a.key), Peer: proto.Key(a.key), InLabel: 3, OutLabel: 4}})
	f.Add(seed)
	seed, _ = proto.Encode(nil, &proto.RouteDown{Route: 10})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := proto.Decode(b)
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *proto.Install:
			n.installRules(m)
		case *proto.RouteDown:
			n.routeDown(m)
		}
	})
}

// A port read with ReadFrom holds at most maxQueuedPacketBytes of
// datagrams nobody has read (and at most packetQueue of them); reading
// makes room again.
func TestPacketQueueBounded(t *testing.T) {
	n, _, _ := newTestNode(t)
	pc, err := n.ListenPacket(9)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	p := pc.(*packetConn)
	from := Addr{Key: tstest.KeyPair(t).Public, Port: 1}
	big := make([]byte, 60000)
	fit := maxQueuedPacketBytes / len(big)
	for range fit + 10 {
		p.deliver(from, big)
	}
	if got := len(p.in.C()); got != fit {
		t.Fatalf("%d datagrams of %d bytes queued, want %d (%d bytes)", got, len(big), fit, maxQueuedPacketBytes)
	}
	buf := make([]byte, len(big))
	if k, _, err := pc.ReadFrom(buf); err != nil || k != len(big) {
		t.Fatalf("ReadFrom: %d, %v", k, err)
	}
	p.deliver(from, big)
	if got := len(p.in.C()); got != fit {
		t.Fatalf("after one read and one more datagram: %d queued, want %d", got, fit)
	}
	// Small datagrams stop at packetQueue.
	for range fit {
		pc.ReadFrom(buf)
	}
	for range packetQueue + 10 {
		p.deliver(from, []byte{1})
	}
	if got, q := len(p.in.C()), p.queued.Load(); got != packetQueue || q != packetQueue {
		t.Fatalf("%d one-byte datagrams queued (%d bytes counted), want %d", got, q, packetQueue)
	}
}
