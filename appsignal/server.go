package appsignal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/skywire-mesh/skywire/internal/acceptloop"
)

// Hello is the first message a client sends.
type Hello struct {
	Version uint16 // ProtocolVersion of the client
	AppID   uint64 // sequence ID the launcher gave the app (EnvAppID)
	Name    string // app name (EnvName)
	Pid     int    // the app's process ID
	Token   string // per-launch secret (EnvToken)
}

// Event is a status report from an app (for example Kind "ready").
type Event struct {
	Kind string
	Text string
}

// Reasons a server closes a connection, the keys of ServerStats.Rejected.
const (
	ReasonFrameTooLarge = "frame_too_large" // length prefix above the limit
	ReasonMalformed     = "malformed"       // body not a valid message
	ReasonTruncated     = "truncated"       // connection ended inside a frame
	ReasonUnknownKind   = "unknown_kind"    // envelope of an unknown kind
	ReasonNoHello       = "no_hello"        // first message was not a Hello
	ReasonHelloTimeout  = "hello_timeout"   // no Hello within HelloTimeout
	ReasonBadVersion    = "bad_version"     // Hello with an unsupported version
	ReasonUnauthorized  = "unauthorized"    // Authorize refused the Hello
	ReasonProtocol      = "protocol"        // valid message at the wrong time
)

// Default request deadlines, applied when the caller's ctx has none.
const (
	DefaultPingTimeout     = 2 * time.Second
	DefaultUsageTimeout    = 2 * time.Second
	DefaultShutdownTimeout = 5 * time.Second
	DefaultHelloTimeout    = 5 * time.Second
)

// ServerConfig configures a Server. Callbacks run on the connection's reading
// goroutine, one at a time per connection: they must return promptly and must
// not call Server.Close. Close waits for callbacks in progress, so do not call
// Close while holding a lock that a callback takes.
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

// ServerStats are a snapshot of the server's counters.
type ServerStats struct {
	Accepted   uint64            // connections accepted from listeners
	Authorized uint64            // hellos accepted
	Replaced   uint64            // connections replaced by a newer one for the same app ID
	Active     int               // apps connected now
	Timeouts   uint64            // requests (ping, usage, shutdown) that timed out
	Rejected   map[string]uint64 // connections closed for misbehaviour, by Reason*
}

// Server is the launcher side of the signal protocol. It is safe for
// concurrent use. A second authorized connection for the same app ID replaces
// the first (the app reconnected).
type Server struct {
	cfg          ServerConfig
	log          *slog.Logger
	maxFrame     int
	helloTimeout time.Duration
	ctx          context.Context // done once Close is called
	cancel       context.CancelFunc
	connSeq      atomic.Uint64

	accepted, authorized, replaced, timeouts atomic.Uint64

	mu       sync.Mutex                    // guards the fields below
	group    acceptloop.Group[*serverConn] // listeners, connections, closed; Serve calls and connection goroutines
	apps     map[uint64]*serverConn
	rejected map[string]uint64
}

// ErrBadServerConfig is wrapped by ServerConfig.Validate errors.
var ErrBadServerConfig = errors.New("signal: bad server config")

// Validate reports a configuration error by field name. NewServer accepts
// any config (a nil Authorize refuses every app); call Validate to fail at
// start instead of at first use.
func (cfg ServerConfig) Validate() error {
	if cfg.Authorize == nil {
		return fmt.Errorf("%w: Authorize is required", ErrBadServerConfig)
	}
	if cfg.MaxFrame < 0 || cfg.MaxFrame > 1<<30 {
		return fmt.Errorf("%w: MaxFrame %d out of range [0, 1 GiB]", ErrBadServerConfig, cfg.MaxFrame)
	}
	if cfg.MaxFrame != 0 && cfg.MaxFrame < 256 {
		return fmt.Errorf("%w: MaxFrame %d is too small for a hello", ErrBadServerConfig, cfg.MaxFrame)
	}
	if cfg.HelloTimeout < 0 {
		return fmt.Errorf("%w: HelloTimeout %v is negative", ErrBadServerConfig, cfg.HelloTimeout)
	}
	return nil
}

// NewServer returns a server; call Serve to accept connections. A nil
// Authorize refuses every hello.
func NewServer(cfg ServerConfig) *Server {
	s := &Server{
		cfg:          cfg,
		log:          cfg.Logger,
		maxFrame:     cfg.MaxFrame,
		helloTimeout: cfg.HelloTimeout,
		apps:         make(map[uint64]*serverConn),
		rejected:     make(map[string]uint64),
	}
	s.group.Init(&s.mu)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxFrame <= 0 {
		s.maxFrame = MaxFrameSize
	}
	if s.helloTimeout <= 0 {
		s.helloTimeout = DefaultHelloTimeout
	}
	if s.cfg.Authorize == nil {
		s.cfg.Authorize = func(Hello) error { return errors.New("no Authorize function configured") }
	}
	return s
}

// Serve accepts connections on ln until ln fails or the server is closed. It
// may be called for several listeners. It returns ErrClosed after Close; ln
// is closed when Serve returns.
func (s *Server) Serve(ln net.Listener) error {
	err := s.group.Serve(s.ctx, ln, acceptloop.Loop[net.Conn]{
		Serve: func(c net.Conn) bool {
			s.accepted.Add(1)
			sc := &serverConn{
				s:       s,
				id:      s.connSeq.Add(1),
				w:       newWire(c, s.maxFrame),
				remote:  remoteString(c),
				done:    make(chan struct{}),
				pending: make(map[uint32]pendingCall),
			}
			if !s.group.Go(sc, sc.serve) {
				c.Close()
				return false
			}
			return true
		},
		Fatal: func(err error) bool { return !isTemporary(err) },
		Failed: func(err error, d time.Duration) {
			s.log.Warn("signal: accept failed; retrying", "listener", ln.Addr().String(), "err", err, "retry_in", d)
		},
	})
	if err == nil {
		return ErrClosed
	}
	return fmt.Errorf("signal: accept on %s: %w", ln.Addr(), err)
}

func isTemporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.EINTR)
}

func remoteString(c net.Conn) string {
	if s, ok := peerString(c); ok {
		return s
	}
	if a := c.RemoteAddr(); a != nil && a.String() != "" {
		return a.Network() + ":" + a.String()
	}
	if a := c.LocalAddr(); a != nil {
		return a.Network() + ":" + a.String() + "(local)"
	}
	return "unknown"
}

// Close closes all listeners and connections and returns after every
// goroutine of the server (and every Serve call) has returned.
func (s *Server) Close() error {
	lns, conns, first := s.group.Close(s.cancel)
	if !first {
		return nil
	}

	var errs []error
	for _, ln := range lns {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("signal: close listener %s: %w", ln.Addr(), err))
		}
	}
	for _, sc := range conns {
		sc.close()
	}
	s.group.Wait()
	return errors.Join(errs...)
}

// Connected reports whether the app with this ID has an authorized connection.
func (s *Server) Connected(appID uint64) bool {
	return s.lookup(appID) != nil
}

func (s *Server) lookup(appID uint64) *serverConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apps[appID]
}

// Ping sends a ping to the app and returns the round-trip time. Without a
// deadline in ctx, DefaultPingTimeout applies.
func (s *Server) Ping(ctx context.Context, appID uint64) (time.Duration, error) {
	start := time.Now()
	if _, err := s.call(ctx, appID, Ping{}, KindPong, DefaultPingTimeout); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// Usage asks the app for its self-reported counters. Without a deadline in
// ctx, DefaultUsageTimeout applies.
func (s *Server) Usage(ctx context.Context, appID uint64) (map[string]uint64, error) {
	m, err := s.call(ctx, appID, UsageRequest{}, KindUsageReply, DefaultUsageTimeout)
	if err != nil {
		return nil, err
	}
	return m.Payload.(UsageReply).Counters, nil
}

// Shutdown asks the app to shut down and returns when the app acked. Without
// a deadline in ctx, DefaultShutdownTimeout applies.
func (s *Server) Shutdown(ctx context.Context, appID uint64) error {
	_, err := s.call(ctx, appID, ShutdownRequest{Reason: "requested by launcher"}, KindShutdownAck, DefaultShutdownTimeout)
	return err
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() ServerStats {
	st := ServerStats{
		Accepted:   s.accepted.Load(),
		Authorized: s.authorized.Load(),
		Replaced:   s.replaced.Load(),
		Timeouts:   s.timeouts.Load(),
		Rejected:   make(map[string]uint64),
	}
	s.mu.Lock()
	st.Active = len(s.apps)
	for k, v := range s.rejected {
		st.Rejected[k] = v
	}
	s.mu.Unlock()
	return st
}

// call sends request p to the app and waits for a reply of kind want (or an
// Error reply, returned as the error).
func (s *Server) call(ctx context.Context, appID uint64, p Payload, want Kind, def time.Duration) (Message, error) {
	op := p.kind().String()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, def)
		defer cancel()
	}
	select {
	case <-s.ctx.Done():
		return Message{}, fmt.Errorf("signal: %s app %d: %w", op, appID, ErrClosed)
	default:
	}
	sc := s.lookup(appID)
	if sc == nil {
		return Message{}, fmt.Errorf("signal: %s app %d: %w", op, appID, ErrNotConnected)
	}
	id, ch, ok := sc.addPending(want)
	if !ok {
		return Message{}, fmt.Errorf("signal: %s app %d: %w", op, appID, ErrNotConnected)
	}
	defer sc.removePending(id)
	if ctx.Err() != nil {
		return Message{}, s.ctxError(ctx, op, appID)
	}
	// The write gets its own deadline, not ctx's: a write cut short would
	// leave half a frame and force closing the app's connection.
	if err := sc.w.send(Message{ID: id, Payload: p}, time.Time{}); err != nil {
		sc.close()
		return Message{}, fmt.Errorf("signal: %s app %d: %w: %w", op, appID, ErrNotConnected, err)
	}
	select {
	case m := <-ch:
		if e, ok := m.Payload.(Error); ok {
			return Message{}, fmt.Errorf("signal: %s app %d: %w", op, appID, e)
		}
		return m, nil
	case <-sc.done:
		return Message{}, fmt.Errorf("signal: %s app %d: connection lost: %w", op, appID, ErrNotConnected)
	case <-s.ctx.Done():
		return Message{}, fmt.Errorf("signal: %s app %d: %w", op, appID, ErrClosed)
	case <-ctx.Done():
		return Message{}, s.ctxError(ctx, op, appID)
	}
}

// ctxError wraps the error of a done ctx; a passed deadline also matches
// ErrTimeout and is counted.
func (s *Server) ctxError(ctx context.Context, op string, appID uint64) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		s.timeouts.Add(1)
		return fmt.Errorf("signal: %s app %d: %w (%w)", op, appID, ErrTimeout, ctx.Err())
	}
	return fmt.Errorf("signal: %s app %d: %w", op, appID, ctx.Err())
}

type pendingCall struct {
	want Kind
	ch   chan Message // buffered 1; receives exactly one reply
}

// serverConn is one accepted connection.
type serverConn struct {
	s      *Server
	id     uint64 // for logs
	w      *wire
	remote string
	done   chan struct{} // closed by close

	closeOnce sync.Once
	nextID    atomic.Uint32

	mu      sync.Mutex // guards the fields below
	appID   uint64     // valid once authorized
	authed  bool
	pending map[uint32]pendingCall
	closed  bool
}

func (sc *serverConn) close() {
	sc.closeOnce.Do(func() {
		sc.mu.Lock()
		sc.closed = true
		sc.mu.Unlock()
		close(sc.done)
		sc.w.conn.Close()
	})
}

func (sc *serverConn) addPending(want Kind) (uint32, chan Message, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.closed {
		return 0, nil, false
	}
	for {
		id := sc.nextID.Add(1)
		if _, busy := sc.pending[id]; id == 0 || busy {
			continue
		}
		ch := make(chan Message, 1)
		sc.pending[id] = pendingCall{want: want, ch: ch}
		return id, ch, true
	}
}

func (sc *serverConn) removePending(id uint32) {
	sc.mu.Lock()
	delete(sc.pending, id)
	sc.mu.Unlock()
}

// deliver hands a reply to its waiting caller. It reports false if the reply
// is of the wrong kind for the request (a protocol violation).
func (sc *serverConn) deliver(m Message) bool {
	sc.mu.Lock()
	pc, ok := sc.pending[m.ID]
	if ok {
		delete(sc.pending, m.ID)
	}
	sc.mu.Unlock()
	if !ok {
		// The caller gave up (timeout) or the ID was never used: drop it.
		sc.s.log.Debug("signal: reply to no pending request", "conn", sc.id, "remote", sc.remote, "kind", m.Kind(), "id", m.ID)
		return true
	}
	if k := m.Kind(); k != pc.want && k != KindError {
		return false
	}
	pc.ch <- m
	return true
}

// reject counts and logs why the connection is being closed, tells the peer
// (best effort) and closes it.
func (sc *serverConn) reject(reason string, replyID uint32, code ErrorCode, err error) {
	s := sc.s
	s.mu.Lock()
	s.rejected[reason]++
	s.mu.Unlock()
	sc.mu.Lock()
	appID, authed := sc.appID, sc.authed
	sc.mu.Unlock()
	attrs := []any{"conn", sc.id, "remote", sc.remote, "reason", reason, "err", err}
	if authed {
		attrs = append(attrs, "app_id", appID)
	}
	s.log.Warn("signal: closing connection", attrs...)
	if code != 0 {
		msg := reason
		if code == CodeMalformed || code == CodeUnknownKind || code == CodeProtocol || code == CodeBadVersion {
			msg = err.Error()
		}
		_ = sc.w.send(Message{ID: replyID, Payload: Error{Code: code, Message: msg}}, time.Now().Add(time.Second))
	}
	sc.close()
}

// readError classifies a read error: it rejects the connection for bad
// input, or logs a plain disconnect.
func (sc *serverConn) readError(m Message, err error) {
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		sc.reject(ReasonFrameTooLarge, 0, CodeTooLarge, err)
	case errors.Is(err, ErrUnknownKind):
		sc.reject(ReasonUnknownKind, m.ID, CodeUnknownKind, err)
	case errors.Is(err, ErrMalformed):
		sc.reject(ReasonMalformed, 0, CodeMalformed, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		sc.reject(ReasonTruncated, 0, 0, err)
	default:
		select {
		case <-sc.done: // closed by us: Close, or replaced
		default:
			lvl := slog.LevelInfo
			if !errors.Is(err, io.EOF) {
				lvl = slog.LevelWarn
			}
			sc.s.log.Log(context.Background(), lvl, "signal: connection ended", "conn", sc.id, "remote", sc.remote, "err", err)
		}
		sc.close()
	}
}

// serve is the connection's reading goroutine: handshake, then dispatch.
func (sc *serverConn) serve() {
	s := sc.s
	defer sc.cleanup()

	h, helloID, ok := sc.handshake()
	if !ok {
		return
	}
	if err := sc.w.send(Message{ID: helloID, Payload: Welcome{Version: ProtocolVersion, AppID: h.AppID}}, time.Time{}); err != nil {
		s.log.Warn("signal: send welcome failed", "conn", sc.id, "remote", sc.remote, "app_id", h.AppID, "err", err)
		sc.close()
		return
	}
	s.mu.Lock()
	if s.group.ClosedLocked() {
		s.mu.Unlock()
		return
	}
	old := s.apps[h.AppID]
	s.apps[h.AppID] = sc
	s.mu.Unlock()
	sc.mu.Lock()
	sc.appID, sc.authed = h.AppID, true
	sc.mu.Unlock()
	s.authorized.Add(1)
	if old != nil {
		s.replaced.Add(1)
		s.log.Info("signal: app reconnected; replacing its old connection", "app_id", h.AppID, "old_conn", old.id, "conn", sc.id)
		_ = old.w.send(Message{Payload: Error{Code: CodeReplaced, Message: "replaced by a newer connection"}}, time.Now().Add(time.Second))
		old.close()
	}
	s.log.Info("signal: app connected", "conn", sc.id, "remote", sc.remote, "app_id", h.AppID, "name", h.Name, "pid", h.Pid)
	if s.cfg.OnConnect != nil {
		s.cfg.OnConnect(h)
	}

	for {
		m, err := sc.w.recv()
		if err != nil {
			sc.readError(m, err)
			return
		}
		switch p := m.Payload.(type) {
		case Pong, UsageReply, ShutdownAck:
			if !sc.deliver(m) {
				sc.reject(ReasonProtocol, m.ID, CodeProtocol, fmt.Errorf("unexpected %v reply to request %d", m.Kind(), m.ID))
				return
			}
		case Error:
			if m.ID == 0 {
				s.log.Warn("signal: app reported an error", "conn", sc.id, "app_id", h.AppID, "code", p.Code, "message", p.Message)
				continue
			}
			sc.deliver(m)
		case Event:
			if s.cfg.OnEvent != nil {
				s.cfg.OnEvent(h.AppID, p)
			}
		case Ping:
			if err := sc.w.send(Message{ID: m.ID, Payload: Pong{}}, time.Time{}); err != nil {
				sc.readError(Message{}, err)
				return
			}
		default: // Hello, Welcome, UsageRequest, ShutdownRequest
			sc.reject(ReasonProtocol, m.ID, CodeProtocol, fmt.Errorf("unexpected %v from an app", m.Kind()))
			return
		}
	}
}

// handshake reads the Hello and authorizes it. On failure the connection is
// rejected and ok is false.
func (sc *serverConn) handshake() (h Hello, id uint32, ok bool) {
	s := sc.s
	if err := sc.w.conn.SetReadDeadline(time.Now().Add(s.helloTimeout)); err != nil {
		sc.readError(Message{}, err)
		return h, 0, false
	}
	m, err := sc.w.recv()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			sc.reject(ReasonHelloTimeout, 0, CodeProtocol, fmt.Errorf("no hello within %v", s.helloTimeout))
			return h, 0, false
		}
		sc.readError(m, err)
		return h, 0, false
	}
	h, ok = m.Payload.(Hello)
	if !ok {
		sc.reject(ReasonNoHello, m.ID, CodeProtocol, fmt.Errorf("first message is %v, want hello", m.Kind()))
		return h, 0, false
	}
	if h.Version != ProtocolVersion {
		sc.reject(ReasonBadVersion, m.ID, CodeBadVersion, fmt.Errorf("protocol version %d, want %d", h.Version, ProtocolVersion))
		return h, 0, false
	}
	if err := s.cfg.Authorize(h); err != nil {
		sc.reject(ReasonUnauthorized, m.ID, CodeUnauthorized, fmt.Errorf("app %d (%q, pid %d): %w", h.AppID, h.Name, h.Pid, err))
		return h, 0, false
	}
	if err := sc.w.conn.SetReadDeadline(time.Time{}); err != nil {
		sc.readError(Message{}, err)
		return h, 0, false
	}
	return h, m.ID, true
}

// cleanup unregisters the connection and reports the disconnect if it was
// the app's current connection.
func (sc *serverConn) cleanup() {
	sc.close()
	s := sc.s
	sc.mu.Lock()
	appID, authed := sc.appID, sc.authed
	sc.mu.Unlock()
	s.mu.Lock()
	s.group.RemoveLocked(sc)
	current := authed && s.apps[appID] == sc
	if current {
		delete(s.apps, appID)
	}
	s.mu.Unlock()
	if current {
		s.log.Info("signal: app disconnected", "conn", sc.id, "app_id", appID)
		if s.cfg.OnDisconnect != nil {
			s.cfg.OnDisconnect(appID)
		}
	}
}
