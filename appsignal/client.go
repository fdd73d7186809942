package appsignal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Client backoff and handshake timing.
const (
	DefaultMaxBackoff = 2 * time.Second
	initialBackoff    = 50 * time.Millisecond
	dialTimeout       = 5 * time.Second
	eventTimeout      = 2 * time.Second
)

// ClientConfig configures a Client.
type ClientConfig struct {
	Network, Addr string // "unix"/"tcp"
	AppID         uint64
	Token, Name   string
	Logger        *slog.Logger
	OnShutdown    func()                   // called once when the server asks to shut down (after the ack is sent)
	Usage         func() map[string]uint64 // optional extra counters merged into usage replies
	MaxBackoff    time.Duration            // 0 = 2s; reconnect backoff starts ~50ms, doubles, capped
}

// Client is the app side of the signal protocol: it connects to the
// launcher's server, says hello, answers its requests and reconnects with
// capped exponential backoff whenever the connection is lost.
type Client struct {
	cfg        ClientConfig
	log        *slog.Logger
	maxBackoff time.Duration

	running      atomic.Bool
	shutdownOnce sync.Once

	mu sync.Mutex // guards w
	w  *wire      // current welcomed connection, nil when down
}

// NewClient returns a client; Run connects it.
func NewClient(cfg ClientConfig) *Client {
	c := &Client{cfg: cfg, log: cfg.Logger, maxBackoff: cfg.MaxBackoff}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.maxBackoff <= 0 {
		c.maxBackoff = DefaultMaxBackoff
	}
	if c.cfg.Network == "" {
		c.cfg.Network = "unix"
	}
	return c
}

// ErrRunning is returned by Run when the client is already running.
var ErrRunning = errors.New("signal: client already running")

// ErrBadConfig is wrapped by Validate errors.
var ErrBadConfig = errors.New("signal: bad config")

// Validate reports a configuration that can never connect. A zero Network
// means "unix".
func (cfg ClientConfig) Validate() error {
	switch cfg.Network {
	case "", "unix", "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("%w: Network %q is not unix or tcp", ErrBadConfig, cfg.Network)
	}
	if cfg.Addr == "" {
		return fmt.Errorf("%w: Addr is empty", ErrBadConfig)
	}
	if cfg.MaxBackoff < 0 {
		return fmt.Errorf("%w: MaxBackoff %v is negative", ErrBadConfig, cfg.MaxBackoff)
	}
	return nil
}

// Run connects to the server, answers its requests and reconnects with
// capped backoff until ctx is done; it then returns ctx.Err() after closing
// the connection. An invalid config (see Validate) is returned at once.
// OnShutdown is called on Run's goroutine.
func (c *Client) Run(ctx context.Context) error {
	if err := c.cfg.Validate(); err != nil {
		return err
	}
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)
	backoff := initialBackoff
	failures := 0 // consecutive attempts that were not welcomed
	for {
		start := time.Now()
		welcomed, err := c.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A session that was welcomed and lasted resets the backoff; one
		// that ends at once (e.g. two processes fighting over one app ID)
		// keeps backing off.
		if welcomed && time.Since(start) >= c.maxBackoff {
			backoff = initialBackoff
		}
		// Jitter in [3/4, 1] of the delay spreads reconnects of many apps.
		delay := backoff - time.Duration(rand.Int64N(int64(backoff)/4+1))
		if welcomed {
			failures = 0
		}
		failures++
		// The first failure is news; the retries while viscript is away
		// (every 2 s, for as long as it is away) are not.
		lvl := slog.LevelInfo
		if failures > 1 {
			lvl = slog.LevelDebug
		}
		if errors.Is(err, ErrRemote) || errors.Is(err, ErrProtocol) || errors.Is(err, ErrMalformed) {
			lvl = slog.LevelWarn
		}
		c.log.Log(ctx, lvl, "signal: not connected; retrying", "addr", c.cfg.Network+":"+c.cfg.Addr, "app_id", c.cfg.AppID, "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, c.maxBackoff)
	}
}

// Connected reports whether the client has a welcomed connection.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w != nil
}

// SendEvent reports a status event to the server, best effort. It returns
// ErrNotConnected when there is no connection.
func (c *Client) SendEvent(e Event) error {
	c.mu.Lock()
	w := c.w
	c.mu.Unlock()
	if w == nil {
		return fmt.Errorf("signal: send event %q: %w", e.Kind, ErrNotConnected)
	}
	if err := w.send(Message{Payload: e}, time.Now().Add(eventTimeout)); err != nil {
		return fmt.Errorf("signal: send event %q: %w", e.Kind, err)
	}
	return nil
}

func (c *Client) setWire(w *wire) {
	c.mu.Lock()
	c.w = w
	c.mu.Unlock()
}

// session runs one connection: dial, hello, then serve requests until the
// connection fails or ctx is done. welcomed reports whether the server
// accepted the hello.
func (c *Client) session(ctx context.Context) (welcomed bool, err error) {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, c.cfg.Network, c.cfg.Addr)
	if err != nil {
		return false, fmt.Errorf("signal: dial: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	w := newWire(conn, MaxFrameSize)
	hello := Hello{Version: ProtocolVersion, AppID: c.cfg.AppID, Name: c.cfg.Name, Pid: os.Getpid(), Token: c.cfg.Token}
	if err := w.send(Message{ID: 1, Payload: hello}, time.Time{}); err != nil {
		return false, fmt.Errorf("signal: hello: %w", err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(DefaultHelloTimeout)); err != nil {
		return false, fmt.Errorf("signal: hello: %w", err)
	}
	m, err := w.recv()
	if err != nil {
		return false, fmt.Errorf("signal: await welcome: %w", err)
	}
	switch p := m.Payload.(type) {
	case Welcome:
	case Error:
		return false, fmt.Errorf("signal: hello refused: %w", p)
	default:
		return false, fmt.Errorf("signal: await welcome: got %v: %w", m.Kind(), ErrProtocol)
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return true, fmt.Errorf("signal: clear deadline: %w", err)
	}
	c.setWire(w)
	defer c.setWire(nil)
	c.log.Info("signal: connected", "addr", c.cfg.Network+":"+c.cfg.Addr, "app_id", c.cfg.AppID)

	for {
		m, err := w.recv()
		if err != nil {
			if errors.Is(err, ErrUnknownKind) {
				// A newer server may send requests we do not know: say so and carry on.
				if err := c.reply(w, m.ID, Error{Code: CodeUnknownKind, Message: err.Error()}); err != nil {
					return true, err
				}
				continue
			}
			if errors.Is(err, io.EOF) {
				return true, fmt.Errorf("signal: server closed the connection: %w", err)
			}
			return true, fmt.Errorf("signal: read: %w", err)
		}
		switch p := m.Payload.(type) {
		case Ping:
			err = c.reply(w, m.ID, Pong{})
		case UsageRequest:
			err = c.reply(w, m.ID, UsageReply{Counters: c.usage()})
			if errors.Is(err, ErrFrameTooLarge) {
				err = c.reply(w, m.ID, Error{Code: CodeTooLarge, Message: "usage reply exceeds the frame limit"})
			}
		case ShutdownRequest:
			c.log.Info("signal: shutdown requested", "app_id", c.cfg.AppID, "reason", p.Reason)
			err = c.reply(w, m.ID, ShutdownAck{})
			c.shutdownOnce.Do(func() {
				if c.cfg.OnShutdown != nil {
					c.cfg.OnShutdown()
				}
			})
		case Error:
			if p.Code == CodeReplaced {
				return true, fmt.Errorf("signal: %w", p)
			}
			c.log.Warn("signal: server reported an error", "code", p.Code, "message", p.Message, "id", m.ID)
		default:
			err = c.reply(w, m.ID, Error{Code: CodeProtocol, Message: fmt.Sprintf("unexpected %v from the server", m.Kind())})
		}
		if err != nil {
			return true, err
		}
	}
}

func (c *Client) reply(w *wire, id uint32, p Payload) error {
	if err := w.send(Message{ID: id, Payload: p}, time.Time{}); err != nil {
		return fmt.Errorf("signal: reply: %w", err)
	}
	return nil
}

var usageMetrics = [...]struct{ name, key string }{
	{"/sched/goroutines:goroutines", "goroutines"},
	{"/memory/classes/heap/objects:bytes", "heap_bytes"},
	{"/memory/classes/total:bytes", "sys_bytes"},
	{"/gc/cycles/total:gc-cycles", "gc_cycles"},
}

// usage returns the runtime counters merged with the app's own (the app's
// value wins on a name clash).
func (c *Client) usage() map[string]uint64 {
	samples := make([]metrics.Sample, len(usageMetrics))
	for i, m := range usageMetrics {
		samples[i].Name = m.name
	}
	metrics.Read(samples)
	out := make(map[string]uint64, len(samples))
	for i, s := range samples {
		if s.Value.Kind() == metrics.KindUint64 {
			out[usageMetrics[i].key] = s.Value.Uint64()
		}
	}
	if c.cfg.Usage != nil {
		for k, v := range c.cfg.Usage() {
			out[k] = v
		}
	}
	return out
}
