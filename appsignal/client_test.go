package appsignal

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

func TestClientReconnectsAfterServerRestart(t *testing.T) {
	tstest.CheckLeaks(t)
	path := filepath.Join(tstest.SocketDir(t), "s.sock")
	start := func() *harness {
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		return newHarnessOn(t, ln, "unix", path, nil)
	}
	h1 := start()
	c := h1.runClient(t, 3, func(c *ClientConfig) { c.MaxBackoff = 50 * time.Millisecond })

	h1.close(t) // the launcher goes away; the socket file is removed
	tstest.WaitFor(t, "client notices the server is gone", func() bool { return !c.Connected() })
	if err := c.SendEvent(Event{Kind: "x"}); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("SendEvent while down: %v, want ErrNotConnected", err)
	}

	h2 := start() // a new launcher on the same path
	h2.waitConnect(t, 3)
	if _, err := h2.srv.Ping(context.Background(), 3); err != nil {
		t.Fatalf("Ping after reconnect: %v", err)
	}
}

// TestClientBackoffCapped: against a server that hangs up on every hello
// (or welcomes and then hangs up at once), the delay between attempts grows
// from ~50ms and stops at MaxBackoff.
func TestClientBackoffCapped(t *testing.T) {
	for _, tt := range []struct {
		name    string
		welcome bool
	}{{"refused", false}, {"welcomed then dropped", true}} {
		t.Run(tt.name, func(t *testing.T) { testBackoff(t, tt.welcome) })
	}
}

func testBackoff(t *testing.T, welcome bool) {
	tstest.CheckLeaks(t)
	ln, addr := listen(t, "unix")
	attempts := make(chan time.Time, 64)
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			attempts <- time.Now()
			if welcome {
				w := newWire(c, MaxFrameSize)
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if m, err := w.recv(); err == nil {
					w.send(Message{ID: m.ID, Payload: Welcome{Version: ProtocolVersion, AppID: 1}}, time.Time{})
				}
			}
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-acceptDone }()

	const maxBackoff = 150 * time.Millisecond
	delays := &retryDelays{mu: new(sync.Mutex), d: new([]time.Duration), next: tstest.Logger(t, "client: ").Handler()}
	c := NewClient(ClientConfig{Network: "unix", Addr: addr, AppID: 1, Token: "t", MaxBackoff: maxBackoff, Logger: slog.New(delays)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	const n = 8
	var times []time.Time
	for len(times) < n {
		select {
		case at := <-attempts:
			times = append(times, at)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d attempts", len(times))
		}
	}
	// The client logs the delay it chose after each attempt; attempt i+1
	// comes after delay i. The delays, not the wall-clock gaps (which a
	// loaded machine stretches), show the cap: without it the 7th delay
	// would be >= 2.4 s. Timers never fire early, so each gap is at least
	// its delay.
	d := delays.get()
	if len(d) < n-1 {
		t.Fatalf("%d retry delays logged for %d attempts", len(d), n)
	}
	for i := 1; i < n; i++ {
		delay := d[i-1]
		if delay < initialBackoff*3/4 || delay > maxBackoff {
			t.Errorf("delay %d = %v, want within [%v, %v]", i, delay, initialBackoff*3/4, maxBackoff)
		}
		if gap := times[i].Sub(times[i-1]); gap < delay {
			t.Errorf("gap %d = %v, shorter than its delay %v", i, gap, delay)
		}
	}
	if longest := slices.Max(d[:n-1]); longest < maxBackoff*3/4 {
		t.Errorf("longest delay %v: the backoff never grew to the cap %v", longest, maxBackoff)
	}
}

// retryDelays records the retry_in of the client's log records (a typed
// attribute, not text) and passes every record on.
type retryDelays struct {
	mu   *sync.Mutex
	d    *[]time.Duration
	next slog.Handler
}

func (h *retryDelays) get() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.d)
}

func (h *retryDelays) Enabled(ctx context.Context, l slog.Level) bool { return true }

func (h *retryDelays) Handle(ctx context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "retry_in" {
			h.mu.Lock()
			*h.d = append(*h.d, a.Value.Duration())
			h.mu.Unlock()
		}
		return true
	})
	return h.next.Handle(ctx, r)
}

func (h *retryDelays) WithAttrs(as []slog.Attr) slog.Handler {
	return &retryDelays{mu: h.mu, d: h.d, next: h.next.WithAttrs(as)}
}

func (h *retryDelays) WithGroup(name string) slog.Handler {
	return &retryDelays{mu: h.mu, d: h.d, next: h.next.WithGroup(name)}
}

func TestClientRunTwice(t *testing.T) {
	tstest.CheckLeaks(t)
	h := newHarness(t, "unix", nil)
	c := h.runClient(t, 1, nil)
	if err := c.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v, want ErrRunning", err)
	}
}

func TestClientStopsOnCancel(t *testing.T) {
	tstest.CheckLeaks(t)
	h := newHarness(t, "unix", nil)
	c := NewClient(ClientConfig{Network: "unix", Addr: h.addr, AppID: 4, Token: tokenFor(4)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	h.waitConnect(t, 4)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	if c.Connected() {
		t.Fatal("Connected after Run returned")
	}
	h.waitDisconnect(t, 4)
}

// TestClientRefused: a refused hello is retried (the launcher may come back
// with the token), and Run still stops on cancel.
func TestClientRefused(t *testing.T) {
	tstest.CheckLeaks(t)
	h := newHarness(t, "unix", nil)
	c := NewClient(ClientConfig{Network: "unix", Addr: h.addr, AppID: 4, Token: "wrong", MaxBackoff: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	tstest.WaitFor(t, "two refusals", func() bool { return h.srv.Stats().Rejected[ReasonUnauthorized] >= 2 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
}

// TestClientAnswersUnknownKind: a newer server's unknown request gets an
// Error with its ID and the session carries on.
func TestClientAnswersUnknownKind(t *testing.T) {
	tstest.CheckLeaks(t)
	ln, addr := listen(t, "unix")
	defer ln.Close()
	c := NewClient(ClientConfig{Network: "unix", Addr: addr, AppID: 8, Token: "t"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := &raw{t: t, c: conn, w: newWire(conn, MaxFrameSize)}
	m := r.recv()
	h, ok := m.Payload.(Hello)
	if !ok || h.AppID != 8 || h.Token != "t" || h.Version != ProtocolVersion || h.Pid != os.Getpid() {
		t.Fatalf("hello = %#v", m)
	}
	r.send(Message{ID: m.ID, Payload: Welcome{Version: ProtocolVersion, AppID: 8}})
	r.writeBytes([]byte{0, 0, 0, 4, 0x93, 0x63, 0x05, 0x90}) // kind 99, id 5
	got := r.recv()
	if e, ok := got.Payload.(Error); !ok || e.Code != CodeUnknownKind || got.ID != 5 {
		t.Fatalf("reply to unknown kind = %#v", got)
	}
	r.send(Message{ID: 6, Payload: Welcome{}}) // unexpected but known: protocol error
	if got := r.recv(); got.Kind() != KindError || got.Payload.(Error).Code != CodeProtocol || got.ID != 6 {
		t.Fatalf("reply to welcome = %#v", got)
	}
	r.send(Message{ID: 7, Payload: Ping{}})
	if got := r.recv(); got.Kind() != KindPong || got.ID != 7 {
		t.Fatalf("reply to ping = %#v", got)
	}
}

func TestClientUsageTooLarge(t *testing.T) {
	tstest.CheckLeaks(t)
	h := newHarness(t, "unix", nil)
	big := map[string]uint64{}
	for i := 0; i < 5000; i++ {
		big[strings.Repeat("k", 10)+string(rune('a'+i%26))+strings.Repeat("x", i%50)+string(rune(0x4e00+i))] = uint64(i)
	}
	h.runClient(t, 2, func(c *ClientConfig) { c.Usage = func() map[string]uint64 { return big } })
	if _, err := h.srv.Usage(context.Background(), 2); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Usage: %v, want ErrFrameTooLarge", err)
	}
	if _, err := h.srv.Ping(context.Background(), 2); err != nil {
		t.Fatalf("Ping after too-large usage: %v", err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	full := map[string]string{EnvAddr: "unix:/run/s.sock", EnvAppID: "17", EnvToken: "tk", EnvName: "vpn"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range full {
			m[a] = b
		}
		if v == "<unset>" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantOK  bool
		wantErr bool
		want    ClientConfig
	}{
		{"unset", map[string]string{}, false, false, ClientConfig{}},
		{"unix", full, true, false, ClientConfig{Network: "unix", Addr: "/run/s.sock", AppID: 17, Token: "tk", Name: "vpn"}},
		{"tcp", with(EnvAddr, "tcp:127.0.0.1:7999"), true, false, ClientConfig{Network: "tcp", Addr: "127.0.0.1:7999", AppID: 17, Token: "tk", Name: "vpn"}},
		{"tcp6", with(EnvAddr, "tcp:[::1]:7999"), true, false, ClientConfig{Network: "tcp", Addr: "[::1]:7999", AppID: 17, Token: "tk", Name: "vpn"}},
		{"tcp with name", with(EnvAddr, "tcp:localhost:7999"), true, false, ClientConfig{Network: "tcp", Addr: "localhost:7999", AppID: 17, Token: "tk", Name: "vpn"}},
		{"unix path with colon", with(EnvAddr, "unix:/tmp/a:b"), true, false, ClientConfig{Network: "unix", Addr: "/tmp/a:b", AppID: 17, Token: "tk", Name: "vpn"}},
		{"max id", with(EnvAppID, "18446744073709551615"), true, false, ClientConfig{Network: "unix", Addr: "/run/s.sock", AppID: 1<<64 - 1, Token: "tk", Name: "vpn"}},
		{"no scheme", with(EnvAddr, "/run/s.sock"), true, true, ClientConfig{}},
		{"bad scheme", with(EnvAddr, "udp:1.2.3.4:5"), true, true, ClientConfig{}},
		{"empty unix path", with(EnvAddr, "unix:"), true, true, ClientConfig{}},
		{"tcp no port", with(EnvAddr, "tcp:127.0.0.1"), true, true, ClientConfig{}},
		{"tcp bad port", with(EnvAddr, "tcp:127.0.0.1:99999"), true, true, ClientConfig{}},
		{"id missing", with(EnvAppID, "<unset>"), true, true, ClientConfig{}},
		{"id negative", with(EnvAppID, "-1"), true, true, ClientConfig{}},
		{"id hex", with(EnvAppID, "0x10"), true, true, ClientConfig{}},
		{"id overflow", with(EnvAppID, "18446744073709551616"), true, true, ClientConfig{}},
		{"token missing", with(EnvToken, "<unset>"), true, true, ClientConfig{}},
		{"token empty", with(EnvToken, ""), true, true, ClientConfig{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ok, err := configFromLookup(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if ok != tt.wantOK || (err != nil) != tt.wantErr {
				t.Fatalf("ok=%v err=%v; want ok=%v err=%v", ok, err, tt.wantOK, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrBadEnv) {
					t.Fatalf("error %v does not wrap ErrBadEnv", err)
				}
				return
			}
			type cmp struct {
				Network, Addr, Token, Name string
				AppID                      uint64
			}
			if got, want := (cmp{cfg.Network, cfg.Addr, cfg.Token, cfg.Name, cfg.AppID}), (cmp{tt.want.Network, tt.want.Addr, tt.want.Token, tt.want.Name, tt.want.AppID}); got != want {
				t.Fatalf("cfg = %+v, want %+v", cfg, tt.want)
			}
		})
	}
	t.Run("name defaults to program", func(t *testing.T) {
		cfg, _, err := configFromLookup(func(k string) (string, bool) { v, ok := with(EnvName, "<unset>")[k]; return v, ok })
		if err != nil || cfg.Name != filepath.Base(os.Args[0]) {
			t.Fatalf("name = %q, %v", cfg.Name, err)
		}
	})
}

func TestStartFromEnv(t *testing.T) {
	tstest.CheckLeaks(t)
	t.Run("unset", func(t *testing.T) {
		t.Setenv(EnvAddr, "")
		ctx := context.Background()
		got, stop, err := StartFromEnv(ctx, nil)
		if err != nil || got != ctx {
			t.Fatalf("StartFromEnv = %v, %v", got, err)
		}
		stop()
	})
	t.Run("malformed", func(t *testing.T) {
		t.Setenv(EnvAddr, "unix:/x")
		t.Setenv(EnvAppID, "nope")
		if _, stop, err := StartFromEnv(context.Background(), nil); !errors.Is(err, ErrBadEnv) {
			t.Fatalf("err = %v", err)
		} else {
			stop()
		}
	})
	t.Run("shutdown cancels the role", func(t *testing.T) {
		h := newHarness(t, "unix", nil)
		t.Setenv(EnvAddr, FormatAddr("unix", h.addr))
		t.Setenv(EnvAppID, "12")
		t.Setenv(EnvToken, tokenFor(12))
		t.Setenv(EnvName, "socks-server")
		ctx, stop, err := StartFromEnv(context.Background(), tstest.Logger(t, "client: "))
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		if hl := h.waitConnect(t, 12); hl.Name != "socks-server" {
			t.Fatalf("hello name %q", hl.Name)
		}
		if err := h.srv.Shutdown(context.Background(), 12); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("role ctx not cancelled by shutdown")
		}
		// The client keeps answering while the role shuts down.
		if _, err := h.srv.Ping(context.Background(), 12); err != nil {
			t.Fatalf("Ping during shutdown: %v", err)
		}
		stop()
		stop() // idempotent
		h.waitDisconnect(t, 12)
	})
	t.Run("parent cancel stops the client", func(t *testing.T) {
		h := newHarness(t, "unix", nil)
		t.Setenv(EnvAddr, "unix:"+h.addr)
		t.Setenv(EnvAppID, "13")
		t.Setenv(EnvToken, tokenFor(13))
		parent, cancel := context.WithCancel(context.Background())
		ctx, stop, err := StartFromEnv(parent, nil)
		if err != nil {
			t.Fatal(err)
		}
		h.waitConnect(t, 13)
		cancel()
		<-ctx.Done()
		h.waitDisconnect(t, 13)
		stop()
	})
}

func BenchmarkPingUnix(b *testing.B) {
	h := newHarness(b, "unix", func(c *ServerConfig) { c.Logger = nil })
	h.runClient(b, 1, func(c *ClientConfig) { c.Logger = nil })
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.srv.Ping(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func TestClientConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     ClientConfig
		wantErr bool
	}{
		{"unix", ClientConfig{Network: "unix", Addr: "/x"}, false},
		{"default network", ClientConfig{Addr: "/x"}, false},
		{"tcp", ClientConfig{Network: "tcp", Addr: "127.0.0.1:1"}, false},
		{"no addr", ClientConfig{Network: "unix"}, true},
		{"udp", ClientConfig{Network: "udp", Addr: "127.0.0.1:1"}, true},
		{"negative backoff", ClientConfig{Addr: "/x", MaxBackoff: -1}, true},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrBadConfig)) {
			t.Errorf("%s: Validate = %v, wantErr %v", tt.name, err, tt.wantErr)
		}
		if tt.wantErr {
			if err := NewClient(tt.cfg).Run(context.Background()); !errors.Is(err, ErrBadConfig) {
				t.Errorf("%s: Run = %v, want ErrBadConfig at once", tt.name, err)
			}
		}
	}
	if c := NewClient(ClientConfig{Addr: "/x"}); c.maxBackoff != 2*time.Second || c.cfg.Network != "unix" {
		t.Errorf("defaults: backoff %v network %q", c.maxBackoff, c.cfg.Network)
	}
}
