package control

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/skywire-mesh/skywire/internal/acceptloop"
	"github.com/skywire-mesh/skywire/internal/strictmsgpack"
)

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("control: server closed")

const (
	// maxInFlight bounds concurrent requests per connection; the reader
	// stops reading while that many are being handled.
	maxInFlight = 32
	// writeTimeout bounds one response write to a slow client.
	writeTimeout = 10 * time.Second
	// releaseTimeout bounds ReleaseOwner after a connection ends.
	releaseTimeout = 30 * time.Second
	// defaultAuthTimeout is how long a connection to a token server may
	// stay without a first authenticated request.
	defaultAuthTimeout = 10 * time.Second
	// MaxConns bounds the connections a Server serves at once; more are
	// closed as soon as they are accepted.
	MaxConns = 128
)

// Server serves the control protocol for one Controller on any number of
// listeners. Each accepted connection is a session with its own owner ID:
// apps it starts are owned by it, and Controller.ReleaseOwner is called
// with that owner when the connection ends.
type Server struct {
	ctrl      Controller
	log       *slog.Logger
	token     string
	authorize func(net.Conn) error // ServerOptions.Authorize
	maxConns  int                  // ServerOptions.MaxConns
	prefix    string               // random per server, so owner IDs are not reused across restarts

	authTimeout time.Duration // see defaultAuthTimeout; tests shorten it

	ctx    context.Context // cancelled by Close; parent of every request
	cancel context.CancelFunc

	mu        sync.Mutex
	group     acceptloop.Group[net.Conn] // listeners, connections, closed; guarded by mu
	nconns    int                        // connections counted against MaxConns; guarded by mu
	nextOwner uint64                     // guarded by mu
}

// NewServer returns a server for ctrl. If token is not empty every request
// must carry it (use this for TCP listeners); a request with a wrong or
// missing token is answered with ErrUnauthorized and its connection is
// closed. A nil log discards log output.
func NewServer(ctrl Controller, log *slog.Logger, token string) *Server {
	return NewServerWith(ctrl, log, ServerOptions{Token: token})
}

// ServerOptions configure NewServerWith.
type ServerOptions struct {
	// Token, if not empty, must be carried by every request (see
	// NewServer).
	Token string
	// Authorize, if set, is asked before every request whether the
	// connection may still make it (the mesh listener asks whether the
	// key of the stream's session is an admin now). An error refuses the
	// request with it (it should wrap ErrUnauthorized; it is wrapped if
	// not) and closes the connection. Until the first request passes,
	// the connection must send one within the auth timeout, as with a
	// token.
	Authorize func(conn net.Conn) error
	// MaxConns bounds the connections served at once (0: MaxConns).
	MaxConns int
}

// NewServerWith returns a server for ctrl with opts. A nil log discards
// log output.
func NewServerWith(ctrl Controller, log *slog.Logger, opts ServerOptions) *Server {
	token := opts.Token
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails on supported platforms
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		ctrl:      ctrl,
		log:       log,
		token:     token,
		authorize: opts.Authorize,
		maxConns:  cmp.Or(opts.MaxConns, MaxConns),
		prefix:    hex.EncodeToString(rnd[:]),

		authTimeout: defaultAuthTimeout,
		ctx:         ctx,
		cancel:      cancel,
	}
	s.group.Init(&s.mu)
	return s
}

// Serve accepts connections on ln until Close, then returns
// ErrServerClosed. Serve may be called for several listeners at once. ln is
// closed when Serve returns.
func (s *Server) Serve(ln net.Listener) error {
	err := s.group.Serve(s.ctx, ln, acceptloop.Loop[net.Conn]{
		Serve: func(conn net.Conn) bool {
			owner, err := s.track(conn)
			if errors.Is(err, errTooManyConns) {
				s.log.Warn("control: refusing connection", "remote", remoteName(conn), "reason", err)
				conn.Close()
				return true
			}
			if err != nil {
				conn.Close()
				return false
			}
			if !s.group.Go(conn, func() { s.serveConn(conn, owner) }) {
				s.untrack(conn)
				conn.Close()
				return false
			}
			return true
		},
		Fatal: func(err error) bool { return s.group.Closed() || errors.Is(err, net.ErrClosed) },
		// Transient (e.g. EMFILE): back off like net/http does.
		Failed: func(err error, d time.Duration) {
			s.log.Warn("control: accept failed; retrying", "err", err, "backoff", d)
		},
	})
	if err == nil {
		return ErrServerClosed
	}
	return fmt.Errorf("control: accept: %w", err)
}

// errTooManyConns: the server serves its MaxConns connections already.
var errTooManyConns = errors.New("too many connections")

// track counts conn against MaxConns and returns its owner ID; the
// connection's goroutine calls untrack when it ends.
func (s *Server) track(conn net.Conn) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.group.ClosedLocked() {
		return "", ErrServerClosed
	}
	if s.nconns >= s.maxConns {
		return "", fmt.Errorf("%w (%d served at once)", errTooManyConns, s.maxConns)
	}
	s.nconns++
	s.nextOwner++
	return fmt.Sprintf("ctl-%s-%d", s.prefix, s.nextOwner), nil
}

// untrack forgets conn and frees its place under MaxConns.
func (s *Server) untrack(conn net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.group.RemoveLocked(conn)
	s.nconns--
}

// Close closes every listener and connection, cancels requests in flight
// and waits until all connection handlers (including their ReleaseOwner
// calls) have returned.
func (s *Server) Close() error {
	lns, conns, first := s.group.Close(s.cancel)
	if !first {
		return nil
	}
	for _, ln := range lns {
		ln.Close()
	}
	for _, c := range conns {
		c.Close()
	}
	s.group.Wait()
	return nil
}

// serverConn is the state of one accepted connection.
type serverConn struct {
	s     *Server
	conn  net.Conn
	owner string
	log   *slog.Logger

	writeMu sync.Mutex // serialises response frames
}

// serveConn runs the read loop of one connection, then releases its owner.
func (s *Server) serveConn(conn net.Conn, owner string) {
	log := s.log.With("owner", owner, "remote", remoteName(conn))
	sc := &serverConn{s: s, conn: conn, owner: owner, log: log}
	ctx, cancel := context.WithCancel(s.ctx)

	var handlers sync.WaitGroup
	reason := sc.readLoop(ctx, &handlers)
	cancel()
	conn.Close()
	handlers.Wait()
	s.untrack(conn)

	if reason != nil {
		log.Warn("control: closing connection", "reason", reason)
	} else {
		log.Debug("control: connection ended")
	}

	rctx, rcancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer rcancel()
	if err := s.ctrl.ReleaseOwner(rctx, owner); err != nil {
		log.Warn("control: release owner failed", "err", err)
	}
}

func remoteName(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil && a.String() != "" {
		return a.String()
	}
	return "local"
}

// readLoop reads requests until the connection ends. It returns nil for
// an orderly end (EOF, server closing) and the reason otherwise.
func (sc *serverConn) readLoop(ctx context.Context, handlers *sync.WaitGroup) error {
	sem := make(chan struct{}, maxInFlight)
	authed := sc.s.token == "" && sc.s.authorize == nil
	if !authed {
		// A stranger may not hold a connection open without talking.
		_ = sc.conn.SetReadDeadline(time.Now().Add(sc.s.authTimeout))
	}
	for {
		body, err := readFrame(sc.conn, MaxFrame)
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			if !authed && errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("no request within %v: %w", sc.s.authTimeout, ErrUnauthorized)
			}
			return err
		}
		req, err := decodeRequest(body)
		if err != nil {
			if req.Method != "" || req.V != 0 {
				// A well-formed envelope we refuse: tell the client why.
				sc.reply(req.ID, nil, err)
			}
			return err
		}
		if sc.s.token != "" && subtle.ConstantTimeCompare([]byte(req.Token), []byte(sc.s.token)) != 1 {
			err := fmt.Errorf("control %s: wrong or missing token: %w", req.Method, ErrUnauthorized)
			sc.reply(req.ID, nil, err)
			return err
		}
		if sc.s.authorize != nil {
			if err := sc.s.authorize(sc.conn); err != nil {
				if !errors.Is(err, ErrUnauthorized) {
					err = fmt.Errorf("%w: %w", ErrUnauthorized, err)
				}
				err = fmt.Errorf("control %s: %w", req.Method, err)
				sc.reply(req.ID, nil, err)
				return err
			}
		}
		if !authed {
			authed = true
			_ = sc.conn.SetReadDeadline(time.Time{})
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			defer func() { <-sem }()
			sc.handle(ctx, req)
		}()
	}
}

// handle runs one request and writes its response.
func (sc *serverConn) handle(ctx context.Context, req request) {
	if req.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	result, err := sc.call(ctx, req)
	sc.reply(req.ID, result, err)
}

// call dispatches req to the Controller, recovering from a panic in it so
// that one bad call cannot take the process down.
func (sc *serverConn) call(ctx context.Context, req request) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			sc.log.Error("control: controller panicked", "method", req.Method, "panic", p)
			result, err = nil, fmt.Errorf("control %s: internal error", req.Method)
		}
	}()
	ctrl := sc.s.ctrl
	switch req.Method {
	case MethodCatalog:
		return ctrl.Catalog(ctx)
	case MethodList:
		return ctrl.List(ctx)
	case MethodStart:
		return withArgs(req, func(a StartRequest) (any, error) {
			a.Owner = sc.owner
			return ctrl.Start(ctx, a)
		})
	case MethodReload:
		return ctrl.Reload(ctx)
	case MethodRemove:
		return withArgs(req, func(a idArgs) (any, error) { return nil, ctrl.Remove(ctx, a.ID) })
	case MethodPing, MethodUsage, MethodShutdown, MethodRestart:
		return withArgs(req, func(a idArgs) (any, error) {
			switch req.Method {
			case MethodPing:
				d, err := ctrl.Ping(ctx, a.ID)
				if err != nil {
					return nil, err
				}
				return pingResult{RTTNanos: d.Nanoseconds()}, nil
			case MethodUsage:
				return ctrl.Usage(ctx, a.ID)
			case MethodShutdown:
				return ctrl.Shutdown(ctx, a.ID)
			default:
				return ctrl.Restart(ctx, a.ID)
			}
		})
	case MethodLogs:
		return withArgs(req, func(a logsArgs) (any, error) {
			if a.Max <= 0 || a.Max > MaxLogChunk {
				a.Max = MaxLogChunk
			}
			return ctrl.Logs(ctx, a.ID, a.Offset, a.Max)
		})
	case MethodReleaseOwner:
		return withArgs(req, func(a ownerArgs) (any, error) {
			if a.Owner == "" {
				a.Owner = sc.owner
			}
			return nil, ctrl.ReleaseOwner(ctx, a.Owner)
		})
	default:
		return nil, fmt.Errorf("control: unknown method %q: %w", req.Method, ErrBadRequest)
	}
}

// withArgs decodes the request's arguments into an A and calls fn with
// them; arguments that are missing or do not decode are ErrBadRequest.
func withArgs[A any](req request, fn func(A) (any, error)) (any, error) {
	var a A
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	return fn(a)
}

func decodeArgs(req request, v any) error {
	if len(req.Args) == 0 {
		return fmt.Errorf("control %s: missing arguments: %w", req.Method, ErrBadRequest)
	}
	if err := strictmsgpack.Unmarshal(req.Args, v, strictmsgpack.Limits{}); err != nil {
		return fmt.Errorf("control %s: decode arguments: %w: %w", req.Method, ErrBadRequest, err)
	}
	return nil
}

// reply encodes and writes the response to request id.
func (sc *serverConn) reply(id uint64, result any, callErr error) {
	resp := response{ID: id}
	if callErr == nil && result != nil {
		raw, err := msgpack.Marshal(result)
		if err != nil {
			callErr = fmt.Errorf("control: encode result: %w", err)
		} else {
			resp.Result = raw
		}
	}
	if callErr != nil {
		resp.Code, resp.Error, resp.Result = ErrorCode(callErr), callErr.Error(), nil
	}
	body, err := msgpack.Marshal(&resp)
	if err == nil && len(body) > MaxFrame {
		resp = response{ID: id, Code: CodeInternal, Error: fmt.Sprintf("control: response of %d bytes exceeds the %d-byte frame limit", len(body), MaxFrame)}
		body, err = msgpack.Marshal(&resp)
	}
	if err != nil {
		sc.log.Error("control: encode response", "err", err)
		return
	}
	sc.writeMu.Lock()
	defer sc.writeMu.Unlock()
	_ = sc.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := writeFrame(sc.conn, body); err != nil {
		sc.log.Debug("control: write response", "err", err)
		sc.conn.Close() // a partial frame would desynchronise the stream
	}
}

// refuseFrame bounds the request Refuse reads: a stranger is not worth
// a megabyte.
const refuseFrame = 64 << 10

// Refuse answers the first request on conn with err (its code and text,
// so that the caller sees why) and closes conn. It waits at most wait for
// that request; a connection that sends none, or sends something that is
// not a request, is closed without an answer. A listener that knows at
// accept time that a caller may not use it (a mesh stream from a key that
// is no admin) refuses it here instead of serving it.
func Refuse(conn net.Conn, err error, wait time.Duration) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	body, rerr := readFrame(conn, refuseFrame)
	if rerr != nil {
		return
	}
	req, derr := decodeRequest(body)
	if derr != nil && req.Method == "" && req.V == 0 {
		return
	}
	sc := &serverConn{conn: conn, log: slog.New(slog.DiscardHandler)}
	sc.reply(req.ID, nil, err)
}
