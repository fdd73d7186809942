// Package remote carries viscript's control protocol (package
// viscript/control: the same requests, responses and errors as on the
// control socket) over the mesh, so that a shell on one node drives the
// apps of another by its public key.
//
// The serving side (Server) registers a mesh port (DefaultPort) on the
// local node's app socket and serves every stream to it with a
// control.Server. Who may call is decided by the key of the stream's
// end-to-end session, which the node reports with the stream (never by
// anything in a message): a key that is not an admin is answered with
// control.ErrUnauthorized naming the key and the stream is closed, and
// every request of an admitted stream is checked again, so an admin
// removed by SetAdmins (viscript's reload) is refused from then on, on
// connections already open too. With no admins the port is not
// registered at all.
//
// The calling side (Dialer) registers on its local node without a port
// and opens one stream per connection to KEY:DefaultPort; a
// control.Client runs over it.
package remote

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/internal/ratelimit"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/viscript/control"
)

const (
	// DefaultPort is the mesh port of remote control, the same on every
	// node.
	DefaultPort = 8
	// DefaultMaxClients caps the admins' connections a Server serves at
	// once; more are closed as they arrive (and logged).
	DefaultMaxClients = 16
	// AppName is the name the server and the dialer register with.
	AppName = "viscript"

	// maxRefusing caps the strangers' streams being answered at once;
	// more are closed without an answer.
	maxRefusing = 8
	// Reconnecting to the node: from retryMin doubling to retryMax.
	retryMin = 100 * time.Millisecond
	retryMax = 2 * time.Second
)

// refuseWait is how long a stranger's stream may take to send the
// request that is answered with the refusal (a variable for tests).
var refuseWait = 2 * time.Second

// ServerConfig configures a Server.
type ServerConfig struct {
	// NodeSocket is the local node's app socket.
	NodeSocket string
	// Port is the mesh port to register (0: DefaultPort).
	Port uint16
	// MaxClients caps the connections served at once (0:
	// DefaultMaxClients).
	MaxClients int
	// Admins are the keys that may call; SetAdmins replaces them.
	Admins []keys.PublicKey
}

// Server offers a Controller on a mesh port to admin keys. Create it with
// NewServer; Run serves until its context ends.
type Server struct {
	ctrl control.Controller
	cfg  ServerConfig
	log  *slog.Logger

	admins  atomic.Pointer[map[keys.PublicKey]bool]
	changed chan struct{} // a token when SetAdmins changed the set

	refusing chan struct{} // semaphore: strangers being answered
	refusals sync.WaitGroup

	logMu      sync.Mutex
	logBucket  ratelimit.Bucket // refusals logged; guarded by logMu
	suppressed int              // refusals not logged since the last one; guarded by logMu

	refused atomic.Uint64 // streams and requests refused, for tests and logs
	key     atomic.Pointer[keys.PublicKey]
}

// NewServer returns a server of ctrl; a nil log discards.
func NewServer(ctrl control.Controller, cfg ServerConfig, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Port = cmp.Or(cfg.Port, DefaultPort)
	cfg.MaxClients = cmp.Or(cfg.MaxClients, DefaultMaxClients)
	s := &Server{
		ctrl:      ctrl,
		cfg:       cfg,
		log:       log,
		changed:   make(chan struct{}, 1),
		refusing:  make(chan struct{}, maxRefusing),
		logBucket: ratelimit.Bucket{Rate: 1, Burst: 10},
	}
	s.SetAdmins(cfg.Admins)
	return s
}

// SetAdmins replaces the admin keys and returns which were added and
// removed. A removed key is refused from its next request on, on
// connections already open too; with none left the mesh port closes.
func (s *Server) SetAdmins(ks []keys.PublicKey) (added, removed []keys.PublicKey) {
	next := make(map[keys.PublicKey]bool, len(ks))
	for _, k := range ks {
		next[k] = true
	}
	var old map[keys.PublicKey]bool
	if p := s.admins.Swap(&next); p != nil {
		old = *p
	}
	for k := range next {
		if !old[k] {
			added = append(added, k)
		}
	}
	for k := range old {
		if !next[k] {
			removed = append(removed, k)
		}
	}
	byText := func(a, b keys.PublicKey) int { return cmp.Compare(a.Hex(), b.Hex()) }
	slices.SortFunc(added, byText)
	slices.SortFunc(removed, byText)
	if len(added)+len(removed) > 0 {
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
	return added, removed
}

// IsAdmin reports whether k may call now.
func (s *Server) IsAdmin(k keys.PublicKey) bool { return (*s.admins.Load())[k] }

func (s *Server) hasAdmins() bool { return len(*s.admins.Load()) > 0 }

// Refused counts the streams and requests refused so far.
func (s *Server) Refused() uint64 { return s.refused.Load() }

// LocalKey is the key of the node the port is registered on (zero until
// registered).
func (s *Server) LocalKey() keys.PublicKey {
	if k := s.key.Load(); k != nil {
		return *k
	}
	return keys.PublicKey{}
}

// Run registers the port and serves it until ctx ends. While there are no
// admins it registers nothing; when the node goes away (it stopped, or
// viscript has not started it yet) it connects again, backing off up to
// 2 s. It returns nil when ctx ends, after every connection it served has
// been closed and its handlers have returned.
func (s *Server) Run(ctx context.Context) error {
	defer s.refusals.Wait()
	retry := retryMin
	var lastErr string
	for ctx.Err() == nil {
		if !s.hasAdmins() {
			s.log.Info("remote control: no admins ([viscript] admins is empty): mesh port closed")
			for !s.hasAdmins() {
				select {
				case <-ctx.Done():
					return nil
				case <-s.changed:
				}
			}
		}
		cl, err := appnet.Connect(ctx, s.cfg.NodeSocket, AppName, s.cfg.Port, appnet.WithLogger(s.log))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The node may not run yet (viscript starts it): say so
			// once, then quietly retry.
			if msg := err.Error(); msg != lastErr {
				lastErr = msg
				s.log.Warn("remote control: cannot register on the node; retrying", "socket", s.cfg.NodeSocket, "port", s.cfg.Port, "err", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(retry):
			}
			retry = min(2*retry, retryMax)
			continue
		}
		retry, lastErr = retryMin, ""
		key := cl.LocalKey()
		s.key.Store(&key)
		s.log.Info("remote control: serving on the mesh", "node", key, "port", s.cfg.Port, "admins", len(*s.admins.Load()))
		s.serve(ctx, cl)
		cl.Close()
		if ctx.Err() == nil && cl.Err() != nil && !errors.Is(cl.Err(), appnet.ErrClosed) {
			s.log.Warn("remote control: lost the node; reconnecting", "err", cl.Err())
		}
	}
	return nil
}

// serve runs a control server on cl's port until ctx ends, the node goes
// away or the last admin is removed.
func (s *Server) serve(ctx context.Context, cl *appnet.Client) {
	srv := control.NewServerWith(s.ctrl, s.log, control.ServerOptions{
		Authorize: s.authorize,
		MaxConns:  s.cfg.MaxClients,
	})
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	ln := &meshListener{s: s, cl: cl, ctx: lctx, stop: stop}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-cl.Done():
			done = true
		case err := <-served:
			served <- err
			done = true
		case <-s.changed:
			if !s.hasAdmins() {
				s.log.Info("remote control: the last admin was removed: closing the mesh port")
				// The port goes at once; open streams stay, so that
				// their next request gets the refusal naming the key
				// rather than a bare end of stream.
				stop()
				cl.Close()
				s.drain(ctx)
				done = true
			}
		}
	}
	stop()
	srv.Close()
	if err := <-served; err != nil && !errors.Is(err, control.ErrServerClosed) && !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
		s.log.Debug("remote control: accept loop ended", "err", err)
	}
}

// drainWait is how long connections open when the last admin goes may
// still make the request that tells them they are refused.
var drainWait = 5 * time.Second

// drain waits drainWait (less if ctx ends or an admin comes back).
func (s *Server) drain(ctx context.Context) {
	t := time.NewTimer(drainWait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-s.changed:
			if s.hasAdmins() {
				return
			}
		}
	}
}

// authorize is asked before every request of an admitted stream.
func (s *Server) authorize(conn net.Conn) error {
	pc, ok := conn.(*peerConn)
	if !ok { // only meshListener's connections reach here
		return fmt.Errorf("%w: not a mesh stream", control.ErrUnauthorized)
	}
	if s.IsAdmin(pc.key) {
		return nil
	}
	err := s.notAdmin(pc.key, "no longer")
	s.logRefusal(pc.key, err)
	return err
}

// notAdmin is the refusal a caller sees.
func (s *Server) notAdmin(k keys.PublicKey, how string) error {
	s.refused.Add(1)
	return fmt.Errorf("%w: %s is %s an admin of node %s's viscript (its [viscript] admins)",
		control.ErrUnauthorized, k, how, s.LocalKey())
}

// logRefusal logs a refusal, at most about one a second with a count of
// those left out.
func (s *Server) logRefusal(k keys.PublicKey, err error) {
	s.logMu.Lock()
	ok := s.logBucket.Allow(time.Now())
	n := s.suppressed
	if ok {
		s.suppressed = 0
	} else {
		s.suppressed++
	}
	s.logMu.Unlock()
	if ok {
		s.log.Warn("remote control: refused", "key", k, "reason", err, "refusals_not_logged", n)
	}
}

// refuse answers a stranger's stream with the refusal, in the
// background, at most maxRefusing at once.
func (s *Server) refuse(conn net.Conn, k keys.PublicKey) {
	err := s.notAdmin(k, "not")
	select {
	case s.refusing <- struct{}{}:
	default:
		conn.Close()
		s.logRefusal(k, fmt.Errorf("%w (closed unanswered: %d refusals in progress)", err, maxRefusing))
		return
	}
	s.logRefusal(k, err)
	s.refusals.Go(func() {
		defer func() { <-s.refusing }()
		control.Refuse(conn, err, refuseWait)
	})
}

// meshListener is a net.Listener over the app's port: it hands admins'
// streams to the control server and refuses everyone else's.
type meshListener struct {
	s    *Server
	cl   *appnet.Client
	ctx  context.Context
	stop context.CancelFunc
}

func (l *meshListener) Accept() (net.Conn, error) {
	for {
		conn, key, err := l.cl.Accept(l.ctx)
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, appnet.ErrClosed) {
				return nil, fmt.Errorf("remote control: %w: %w", net.ErrClosed, err)
			}
			return nil, err
		}
		if !l.s.IsAdmin(key) {
			l.s.refuse(conn, key)
			continue
		}
		return &peerConn{Conn: conn, key: key}, nil
	}
}

func (l *meshListener) Close() error { l.stop(); return nil }

func (l *meshListener) Addr() net.Addr { return appnet.Addr{Key: l.cl.LocalKey(), Port: l.cl.Port()} }

// peerConn is an admitted stream with the key of its session.
type peerConn struct {
	net.Conn
	key keys.PublicKey
}

// RemoteAddr names the caller by key (what the control server logs).
func (c *peerConn) RemoteAddr() net.Addr { return keyAddr(c.key) }

type keyAddr keys.PublicKey

func (keyAddr) Network() string  { return "skywire" }
func (a keyAddr) String() string { return keys.PublicKey(a).String() }
