package messenger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantKey string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"zeros filled", func(c *Config) { *c = Config{StateDir: "/tmp/x"} }, ""},
		{"huge message", func(c *Config) { c.MaxMessage = 1 << 20 }, "messenger.max_message"},
		{"negative message", func(c *Config) { c.MaxMessage = -1 }, "messenger.max_message"},
		{"negative rate", func(c *Config) { c.RateLimit = -1 }, "messenger.rate_limit"},
		{"negative burst", func(c *Config) { c.RateBurst = -2 }, "messenger.rate_burst"},
		{"retry max below min", func(c *Config) { c.RetryMin, c.RetryMax = time.Minute, time.Second }, "messenger.retry_max"},
		{"negative retry", func(c *Config) { c.RetryMin = -1 }, "messenger.retry_min"},
		{"negative timeout", func(c *Config) { c.DeliveryTimeout = -1 }, "messenger.delivery_timeout"},
		{"web not host:port", func(c *Config) { c.Web = "8001" }, "messenger.web"},
		{"web not loopback", func(c *Config) { c.Web = "0.0.0.0:8001" }, "messenger.web"},
		{"web remote allowed", func(c *Config) { c.Web, c.WebAllowRemote = "0.0.0.0:8001", true }, ""},
		{"web localhost", func(c *Config) { c.Web = "localhost:8001" }, ""},
		{"web ipv6 loopback", func(c *Config) { c.Web = "[::1]:8001" }, ""},
		{"web off", func(c *Config) { c.Web = "" }, ""},
	}
	t.Run("no node socket", func(t *testing.T) {
		t.Setenv("SKYWIRE_NODE_SOCKET", "")
		c := DefaultConfig()
		c.StateDir = tstest.SocketDir(t)
		err := Run(context.Background(), c, nil)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "messenger.node_socket") {
			t.Errorf("Run: %v, want ErrConfig naming messenger.node_socket", err)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.StateDir = "/tmp/x"
			tt.mod(&c)
			err := c.Validate()
			wantKey := tt.wantKey
			if wantKey != "" {
				wantKey += ":"
			}
			tstest.CheckConfigErr(t, err, ErrConfig, wantKey)
			if tt.wantKey == "" && err == nil && (c.Port == 0 || c.MaxMessage == 0 || c.RetryMin == 0 || c.RateBurst == 0) {
				t.Errorf("zeros not filled: %+v", c)
			}
		})
	}
}

func TestStateDirDefault(t *testing.T) {
	t.Setenv("SKYWIRE_STATE_DIR", "/srv/sky")
	c := Config{}
	if p, _ := c.ControlSocket(); p != "/srv/sky/messenger/messenger.sock" {
		t.Errorf("ControlSocket = %q", p)
	}
	t.Setenv("SKYWIRE_STATE_DIR", "")
	t.Setenv("XDG_STATE_HOME", "/x")
	if p, _ := c.ControlSocket(); p != "/x/skywire/messenger/messenger.sock" {
		t.Errorf("ControlSocket = %q", p)
	}
}

// fakeDirectory is a Directory with fixed answers.
type fakeDirectory struct {
	nodes []NodeEntry
	route Route
}

func (f *fakeDirectory) Nodes(ctx context.Context) ([]NodeEntry, error) { return f.nodes, nil }

func (f *fakeDirectory) Whois(ctx context.Context, pk keys.PublicKey) (Cluster, error) {
	for _, n := range f.nodes {
		if n.Key == pk {
			return Cluster{Node: n, Route: f.route}, nil
		}
	}
	return Cluster{}, fmt.Errorf("whois: %w", ErrUnknownNode)
}

func TestPeersAndWhois(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	na := newNode(t, n, "a")
	b, _ := keys.Generate()
	relay, _ := keys.Generate()
	since := time.Now().Add(-90 * time.Minute)
	dir := &fakeDirectory{
		nodes: []NodeEntry{
			{Key: na.key(), Apps: []App{{"messenger", 7}}, Since: since},
			{Key: b.Public, Apps: []App{{"messenger", 7}, {"socks-server", 1080}}, Links: []Link{{Peer: relay.Public, RTT: 3 * time.Millisecond}}, Since: since},
			{Key: relay.Public, Since: since, AppsHidden: true},
		},
		route: Route{Hops: []keys.PublicKey{na.key(), relay.Public, b.Public}, Per: []time.Duration{time.Millisecond, 3 * time.Millisecond}, Latency: 4 * time.Millisecond},
	}
	cfg := testConfig(t, na)
	cfg.Directory = dir
	a := startDaemon(t, "a", cfg)
	ctx := ctxT(t)
	SetNick(ctx, cfg, b.Public.String(), "bob")
	SetNick(ctx, cfg, relay.Public.String(), "relay")

	peers, err := Peers(ctx, cfg)
	if err != nil || len(peers) != 3 || peers[1].Nick != "bob" || peers[1].Links[0].Nick != "relay" {
		t.Fatalf("Peers = %+v, %v", peers, err)
	}
	var out strings.Builder
	WritePeers(&out, peers, since.Add(90*time.Minute))
	for _, want := range []string{"KEY", b.Public.String(), "bob", "messenger:7,socks-server:1080", "1h30m0s", "(private)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("peers output lacks %q:\n%s", want, out.String())
		}
	}

	c, err := Whois(ctx, cfg, "bob")
	if err != nil || c.Node.Key != b.Public || len(c.Route.Hops) != 3 {
		t.Fatalf("Whois = %+v, %v", c, err)
	}
	out.Reset()
	WriteCluster(&out, c, since.Add(time.Hour))
	for _, want := range []string{"(bob)", "uptime  1h0m0s", "socks-server", "port 1080", "relay  3ms", "route   2 hops, 4ms", "→ " + relay.Public.Short()} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("whois output lacks %q:\n%s", want, out.String())
		}
	}
	c, err = Whois(ctx, cfg, "relay")
	out.Reset()
	WriteCluster(&out, c, since)
	if err != nil || !strings.Contains(out.String(), "apps    private") || !strings.Contains(out.String(), "links\n  none") {
		t.Errorf("whois relay: %v\n%s", err, out.String())
	}
	other, _ := keys.Generate()
	if _, err := Whois(ctx, cfg, other.Public.String()); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("whois of an unknown key: %v, want ErrUnknownNode", err)
	}
	a.stop(t)

	cfg2 := testConfig(t, newNode(t, n, "c"))
	startDaemon(t, "c", cfg2)
	if _, err := Peers(ctx, cfg2); !errors.Is(err, ErrNoDirectory) {
		t.Errorf("no directory: %v, want ErrNoDirectory", err)
	}
}

func TestChat(t *testing.T) {
	n, na, nb, a, b := daemonPair(t)
	ctx := ctxT(t)
	if _, err := Send(ctx, b.cfg, na.key().String(), "earlier"); err != nil {
		t.Fatal(err)
	}
	watch(t, a.cfg).waitMessages(t, "", "first message", func(ms []Message) bool { return len(ms) == 1 })

	inR, inW := io.Pipe()
	out := &tstest.SyncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Chat(ctx, a.cfg, inR, out) }()
	type step struct{ input, want string }
	steps := []step{
		{"", "/help lists the commands"},
		{"", "earlier"}, // the conversation list
		{"/help", "/whois PK|NICK"},
		{"hello?", "no open conversation"},
		{"/nick " + nb.key().String() + " bob", ""},
		{"/open bob", "— conversation with bob"},
		{"", "bob: earlier"},
		{"hi bob", "me → bob: hi bob ✓"},
		{"", "✓✓ delivered to bob: hi bob"},
		{"/bogus", "unknown command /bogus"},
		{strings.Repeat("x", a.cfg.MaxMessage+1), "not sent: send: message too large"},
		{"/open nobody", "not a public key or a known nickname"},
		{"/peers", "no directory configured"},
	}
	for _, s := range steps {
		if s.input != "" {
			fmt.Fprintln(inW, s.input)
		}
		if s.want != "" {
			out.WaitFor(t, s.want, tstest.WaitTimeout)
		}
	}
	// A message from b while the conversation is open is printed live.
	if _, err := Send(ctx, b.cfg, na.key().String(), "live reply"); err != nil {
		t.Fatal(err)
	}
	out.WaitFor(t, "bob: live reply", tstest.WaitTimeout)
	// A message from someone else is announced.
	nc := newNode(t, n, "c")
	c := startDaemon(t, "c", testConfig(t, nc))
	Send(ctx, c.cfg, na.key().String(), "from carol")
	out.WaitFor(t, "* new message from "+nc.key().Short()+": from carol", tstest.WaitTimeout)

	fmt.Fprintln(inW, "/quit")
	if err := <-done; err != nil {
		t.Errorf("Chat: %v", err)
	}
	inW.Close()

	// End of input ends the chat too, and a cancelled context.
	inR2, inW2 := io.Pipe()
	cctx, cancel := context.WithCancel(ctx)
	out2 := &tstest.SyncBuffer{}
	go func() { done <- Chat(cctx, a.cfg, inR2, out2) }()
	out2.WaitFor(t, "/help lists", tstest.WaitTimeout)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Chat after cancel: %v", err)
	}
	inW2.Close()
	inR3, inW3 := io.Pipe()
	go func() { done <- Chat(ctx, a.cfg, inR3, io.Discard) }()
	inW3.Close()
	if err := <-done; err != nil {
		t.Errorf("Chat at EOF: %v", err)
	}
}

func TestWebGuard(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	na := newNode(t, n, "a")
	cfg := testConfig(t, na)
	base := withWeb(t, &cfg)
	startDaemon(t, "a", cfg)
	other, _ := keys.Generate()
	body := `{"to":"` + other.Public.String() + `","text":"x"}`
	tests := []struct {
		name         string
		method, path string
		host, origin string
		ctype, body  string
		want         int
		wantInBody   string
	}{
		{"page", "GET", "/", "", "", "", "", 200, "skywire messenger"},
		{"api", "GET", "/api/conversations", "", "", "", "", 200, "[]"},
		{"rebinding host", "GET", "/api/conversations", "evil.example:8001", "", "", "", 403, "not this machine"},
		{"cross-origin post", "POST", "/api/send", "", "http://evil.example", "application/json", body, 403, "cross-origin"},
		{"form post", "POST", "/api/send", "", "", "text/plain", body, 415, "application/json"},
		{"same-origin post", "POST", "/api/send", "", base, "application/json", body, 200, `"state":"pending"`},
		{"unknown field", "POST", "/api/send", "", "", "application/json", `{"to":"x","txt":"y"}`, 400, "bad request"},
		{"not found", "GET", "/nope", "", "", "", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
			if tt.host != "" {
				req.Host = tt.host
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want || !strings.Contains(string(b), tt.wantInBody) {
				t.Errorf("%d %q, want %d containing %q", resp.StatusCode, b, tt.want, tt.wantInBody)
			}
		})
	}
	http.DefaultClient.CloseIdleConnections()
}

// ResolveName answers by exact name, as nodedir does (through
// node/nodename, tested there on a real directory).
func (f *fakeDirectory) ResolveName(ctx context.Context, name string) (NodeEntry, error) {
	var found []NodeEntry
	for _, n := range f.nodes {
		if n.Name != "" && strings.EqualFold(n.Name, name) {
			found = append(found, n)
		}
	}
	if len(found) != 1 {
		return NodeEntry{}, fmt.Errorf("%d nodes claim %q", len(found), name)
	}
	return found[0], nil
}
