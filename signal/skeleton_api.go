package signal

import (
	"context"
	"log/slog"
	"net"
	"time"
)

// Hello is the first message a client sends.
type Hello struct {
	Version uint16
	AppID   uint64
	Name    string
	Pid     int
	Token   string
}

// Event is a status report from an app (for example Kind "ready").
type Event struct {
	Kind string
	Text string
}

// ServerConfig configures a Server.
type ServerConfig struct {
	Logger *slog.Logger
	// Authorize decides whether a hello may take the connection (checks ID and token). A non-nil
	// error is logged and the connection closed. Required.
	Authorize    func(Hello) error
	OnConnect    func(Hello)                 // optional, after Authorize succeeded
	OnDisconnect func(appID uint64)          // optional
	OnEvent      func(appID uint64, e Event) // optional
	MaxFrame     int                         // 0 = MaxFrameSize
	HelloTimeout time.Duration               // 0 = 5s: no hello in time -> close
}

// ServerStats are the server's counters.
type ServerStats struct {
	Accepted uint64
	Rejected map[string]uint64
}

// Server is the launcher side of the signal protocol.
type Server struct{}

func NewServer(cfg ServerConfig) *Server                                      { return &Server{} }
func (s *Server) Serve(ln net.Listener) error                                 { return ErrClosed }
func (s *Server) Close() error                                                { return nil }
func (s *Server) Connected(appID uint64) bool                                 { return false }
func (s *Server) Ping(ctx context.Context, appID uint64) (time.Duration, error) { return 0, ErrNotConnected }
func (s *Server) Usage(ctx context.Context, appID uint64) (map[string]uint64, error) {
	return nil, ErrNotConnected
}
func (s *Server) Shutdown(ctx context.Context, appID uint64) error { return ErrNotConnected }
func (s *Server) Stats() ServerStats                                { return ServerStats{} }

// Environment variables the launcher sets for each app.
const (
	EnvAddr  = "SKYWIRE_SIGNAL_ADDR" // "unix:/path/signal.sock" or "tcp:127.0.0.1:7999"
	EnvAppID = "SKYWIRE_APP_ID"      // decimal uint64
	EnvToken = "SKYWIRE_APP_TOKEN"   // per-launch secret token
	EnvName  = "SKYWIRE_APP_NAME"
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

// Client is the app side of the signal protocol.
type Client struct{}

func ConfigFromEnv() (cfg ClientConfig, ok bool, err error) { return cfg, false, nil }
func NewClient(cfg ClientConfig) *Client                   { return &Client{} }
func (c *Client) Run(ctx context.Context) error            { <-ctx.Done(); return ctx.Err() }
func (c *Client) Connected() bool                          { return false }
func (c *Client) SendEvent(e Event) error                  { return ErrNotConnected }
func StartFromEnv(ctx context.Context, log *slog.Logger) (context.Context, func(), error) {
	return ctx, func() {}, nil
}
