package manager

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

func TestConfigValidate(t *testing.T) {
	id := tstest.KeyPair(t)
	tests := []struct {
		name string
		mod  func(c *Config)
		key  string // in the error; "" = valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"no identity", func(c *Config) { c.Identity = keys.KeyPair{} }, "identity"},
		{"mismatched identity", func(c *Config) { c.Identity.Public = tstest.KeyPair(t).Public }, "identity"},
		{"hop limit", func(c *Config) { c.HopLimit = 1000 }, "hop_limit"},
		{"negative hop limit", func(c *Config) { c.HopLimit = -1 }, "hop_limit"},
		{"install timeout", func(c *Config) { c.InstallTimeout = -time.Second }, "install_timeout"},
		{"dead after", func(c *Config) { c.LinkKeepalive, c.LinkDeadAfter = 2*time.Second, time.Second }, "link_dead_after"},
		{"listen addr", func(c *Config) { c.ListenAddr = "nope" }, "listen_addr"},
		{"routes per node", func(c *Config) { c.MaxRoutesPerNode = -1 }, "max_routes_per_node"},
		{"request rate", func(c *Config) { c.RouteRequestRate = -1 }, "route_request_rate"},
		{"request burst", func(c *Config) { c.RouteRequestBurst = -5 }, "route_request_burst"},
		{"handshakes", func(c *Config) { c.MaxHandshakes = -1 }, "max_handshakes"},
		{"repair workers", func(c *Config) { c.RepairWorkers = -1 }, "repair_workers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Identity = id
			tt.mod(&c)
			tstest.CheckConfigErr(t, c.Validate(), ErrConfig, tt.key)
		})
	}
	var zero Config
	zero.Identity = id
	if err := zero.Validate(); err != nil || zero.HopLimit != DefaultConfig().HopLimit {
		t.Fatalf("zero config: %v, %+v", err, zero)
	}
}

type testManager struct {
	*Manager
	ln *tstest.PipeListener
}

// pipeConfig is the default config with a fresh identity, listening on a
// pipe listener.
func pipeConfig(t *testing.T) (Config, *tstest.PipeListener) {
	ln := tstest.NewPipeListener()
	cfg := DefaultConfig()
	cfg.Identity = tstest.KeyPair(t)
	cfg.Listener = ln
	return cfg, ln
}

func startManager(t *testing.T) *testManager {
	t.Helper()
	cfg, ln := pipeConfig(t)
	cfg.InstallTimeout = time.Second
	cfg.Admit = AdmitOpen
	m, _ := runNew(t, cfg, nil)
	return &testManager{m, ln}
}

// runNew makes a manager of cfg and runs it (see runManager).
func runNew(t *testing.T, cfg Config, log *slog.Logger) (m *Manager, stop func()) {
	t.Helper()
	m, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	return m, runManager(t, m)
}

// runManager runs m until the test ends or stop is called; stop waits for
// Run to return and may be called again.
func runManager(t *testing.T, m *Manager) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// connect links to the manager as a node with key kp.
func (tm *testManager) connect(t *testing.T, kp keys.KeyPair) *link.Conn {
	t.Helper()
	a, err := tm.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lc, err := link.Client(ctx, a, link.Config{Local: kp}, tm.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.Close() })
	return lc
}

func sendMsg(t *testing.T, lc *link.Conn, m proto.Message) {
	t.Helper()
	b, err := proto.Encode(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := lc.Send(proto.LinkControl, b); err != nil {
		t.Fatal(err)
	}
}

func recvMsg(t *testing.T, lc *link.Conn) proto.Message {
	t.Helper()
	typ, p, err := lc.Recv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	if typ != proto.LinkControl {
		t.Fatalf("frame type %d", typ)
	}
	m, err := proto.Decode(p)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func register(t *testing.T, tm *testManager, kp keys.KeyPair, links ...proto.LinkState) *link.Conn {
	t.Helper()
	lc := tm.connect(t, kp)
	sendMsg(t, lc, &proto.Hello{Version: proto.Version, Addrs: []string{"a:1"}, Apps: []proto.App{{Name: "chat", Port: 7}}, Links: links})
	if w, ok := recvMsg(t, lc).(*proto.Welcome); !ok || w.Code != proto.CodeOK {
		t.Fatalf("welcome: %#v", w)
	}
	return lc
}

func TestHelloRules(t *testing.T) {
	tstest.CheckLeaks(t)
	tm := startManager(t)
	t.Run("version", func(t *testing.T) {
		lc := tm.connect(t, tstest.KeyPair(t))
		sendMsg(t, lc, &proto.Hello{Version: 99})
		w, ok := recvMsg(t, lc).(*proto.Welcome)
		if !ok || w.Code != proto.CodeVersion {
			t.Fatalf("got %#v", w)
		}
		<-lc.Done()
	})
	t.Run("first message not hello", func(t *testing.T) {
		lc := tm.connect(t, tstest.KeyPair(t))
		before := tm.Stats().BadMessages
		sendMsg(t, lc, &proto.RouteRequest{Req: 1})
		<-lc.Done()
		if tm.Stats().BadMessages == before {
			t.Fatal("not counted")
		}
	})
	t.Run("garbage", func(t *testing.T) {
		lc := tm.connect(t, tstest.KeyPair(t))
		lc.Send(proto.LinkControl, []byte{1, 0xc1, 0xc1})
		<-lc.Done()
	})
	t.Run("data frame", func(t *testing.T) {
		lc := register(t, tm, tstest.KeyPair(t))
		lc.Send(proto.LinkData, []byte{0, 0, 0, 1, 0})
		<-lc.Done()
	})
	if n := len(tm.Nodes()); n != 0 {
		t.Fatalf("%d nodes registered after bad hellos", n)
	}
}

func TestDirectoryAndRoutes(t *testing.T) {
	tstest.CheckLeaks(t)
	tm := startManager(t)
	a, b, c := tstest.KeyPair(t), tstest.KeyPair(t), tstest.KeyPair(t)
	la := register(t, tm, a, proto.LinkState{Peer: proto.Key(b.Public), RTT: time.Millisecond})
	lb := register(t, tm, b, proto.LinkState{Peer: proto.Key(a.Public), RTT: 2 * time.Millisecond})
	_ = lb
	// Directory.
	sendMsg(t, la, &proto.DirectoryQuery{Req: 1, Limit: 10})
	d, ok := recvMsg(t, la).(*proto.DirectoryReply)
	if !ok || d.Total != 2 || len(d.Nodes) != 2 || d.Nodes[0].Apps[0].Name != "chat" {
		t.Fatalf("directory %#v", d)
	}
	nodes := tm.Nodes()
	if len(nodes) != 2 || !nodes[0].Links[0].Up {
		t.Fatalf("Nodes() = %+v", nodes)
	}
	// Path and route errors.
	tests := []struct {
		name string
		dst  keys.PublicKey
		code proto.Code
	}{
		{"unknown node", c.Public, proto.CodeUnknownNode},
		{"self", a.Public, proto.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sendMsg(t, la, &proto.PathQuery{Req: 2, Dst: proto.Key(tt.dst)})
			if r := recvMsg(t, la).(*proto.PathReply); r.Code != tt.code {
				t.Fatalf("path reply %#v", r)
			}
			sendMsg(t, la, &proto.RouteRequest{Req: 3, Dst: proto.Key(tt.dst)})
			if r := recvMsg(t, la).(*proto.RouteReply); r.Code != tt.code {
				t.Fatalf("route reply %#v", r)
			}
		})
	}
	sendMsg(t, la, &proto.PathQuery{Req: 4, Dst: proto.Key(b.Public)})
	if r := recvMsg(t, la).(*proto.PathReply); r.Code != proto.CodeOK || len(r.Hops) != 2 {
		t.Fatalf("path reply %#v", r)
	}
	// A route request: both endpoints get an Install, then the requester a reply.
	sendMsg(t, la, &proto.RouteRequest{Req: 5, Dst: proto.Key(b.Public)})
	ackInstall := func(lc *link.Conn, initiator bool) *proto.Install {
		in, ok := recvMsg(t, lc).(*proto.Install)
		if !ok || in.End == nil || in.End.Initiator != initiator || in.End.InLabel == 0 || in.End.OutLabel == 0 {
			t.Fatalf("install %#v", in)
		}
		sendMsg(t, lc, &proto.InstallAck{Req: in.Req})
		return in
	}
	ia := ackInstall(la, true)
	ib := ackInstall(lb, false)
	if ia.End.OutLabel != ib.End.InLabel || ia.End.InLabel != ib.End.OutLabel {
		t.Fatalf("labels do not match: %+v %+v", ia.End, ib.End)
	}
	r, ok := recvMsg(t, la).(*proto.RouteReply)
	if !ok || r.Code != proto.CodeOK || r.Route != ia.Route {
		t.Fatalf("route reply %#v", r)
	}
	if rs := tm.Routes(); len(rs) != 1 || rs[0].ID != r.Route {
		t.Fatalf("Routes() = %+v", rs)
	}
	// The link goes down and there is no other path: both endpoints hear.
	sendMsg(t, la, &proto.Links{})
	for _, lc := range []*link.Conn{la, lb} {
		if d, ok := recvMsg(t, lc).(*proto.RouteDown); !ok || d.Route != r.Route || d.Code != proto.CodeNoPath {
			t.Fatalf("route down %#v", d)
		}
	}
	if rs := tm.Routes(); len(rs) != 0 {
		t.Fatalf("Routes() after loss = %+v", rs)
	}
}

func TestInstallLabelClashRetries(t *testing.T) {
	tstest.CheckLeaks(t)
	tm := startManager(t)
	a, b := tstest.KeyPair(t), tstest.KeyPair(t)
	la := register(t, tm, a, proto.LinkState{Peer: proto.Key(b.Public), RTT: time.Millisecond})
	lb := register(t, tm, b, proto.LinkState{Peer: proto.Key(a.Public), RTT: time.Millisecond})
	sendMsg(t, la, &proto.RouteRequest{Req: 1, Dst: proto.Key(b.Public)})
	// First round: b refuses with a clash; second round: both accept.
	ina := recvMsg(t, la).(*proto.Install)
	inb := recvMsg(t, lb).(*proto.Install)
	sendMsg(t, la, &proto.InstallAck{Req: ina.Req})
	sendMsg(t, lb, &proto.InstallAck{Req: inb.Req, Code: proto.CodeLabelInUse})
	ina2 := recvMsg(t, la).(*proto.Install)
	inb2 := recvMsg(t, lb).(*proto.Install)
	if ina2.Route != ina.Route || ina2.End.OutLabel == ina.End.OutLabel && inb2.End.InLabel == inb.End.InLabel {
		t.Fatalf("retry did not pick new labels")
	}
	sendMsg(t, la, &proto.InstallAck{Req: ina2.Req})
	sendMsg(t, lb, &proto.InstallAck{Req: inb2.Req})
	if r := recvMsg(t, la).(*proto.RouteReply); r.Code != proto.CodeOK {
		t.Fatalf("reply %#v", r)
	}
}
