// Package appserver is the node side of the app API (docs/app-api.md): it
// serves the apps that connect to the node's unix socket, registers their
// names and mesh ports, and joins their stream connections to the mesh.
//
// The node adapts itself to the small Mesh interface; package
// appnet/fakemesh implements it in memory for tests.
package appserver

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/internal/wire"
	"github.com/skywire-mesh/skywire/internal/acceptloop"
	"github.com/skywire-mesh/skywire/internal/rawio"
	"github.com/skywire-mesh/skywire/keys"
)

// Mesh is what the server needs from the node. Errors should wrap the
// sentinels of package appnet (appnet.ErrNoRoute, appnet.ErrRefused,
// appnet.ErrPortInUse, appnet.ErrTimeout, …) so that apps get the right
// code; see appnet.CodeOf. Streams should implement CloseWrite() error so
// half-closes reach the remote app.
type Mesh interface {
	PublicKey() keys.PublicKey
	Listen(port uint16) (Listener, error)
	Dial(ctx context.Context, remote keys.PublicKey, port uint16) (net.Conn, error)
	ListenPacket(port uint16) (PacketConn, error)
}

// NamedMesh is a Mesh that also records which app holds a port (a node
// lists its apps by name in the directory). The server uses ListenApp
// instead of Listen when the Mesh has it.
type NamedMesh interface {
	Mesh
	ListenApp(name string, port uint16) (Listener, error)
}

// PacketFuncMesh is a Mesh that can hand a port's datagrams to a function
// as they arrive instead of queueing them for ReadFrom: a copy and a
// goroutine handoff fewer per datagram. handle runs on the mesh's
// receiving goroutine, must not block and must not keep payload; it may
// still be called for a datagram being delivered while Close runs. The
// server uses it when the Mesh has it.
type PacketFuncMesh interface {
	ListenPacketFunc(port uint16, handle func(payload []byte, from keys.PublicKey, fromPort uint16)) (PacketConn, error)
}

// Listener accepts the mesh streams to one port.
type Listener interface {
	Accept(ctx context.Context) (net.Conn, keys.PublicKey, error)
	Close() error
}

// PacketConn sends and receives the datagrams of one port. The payload
// ReadFrom returns may be a buffer of the PacketConn's that the next
// ReadFrom overwrites (the server copies it before reading again).
type PacketConn interface {
	ReadFrom(ctx context.Context) (payload []byte, from keys.PublicKey, fromPort uint16, err error)
	WriteTo(payload []byte, to keys.PublicKey, port uint16) error
	Close() error
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("app server closed")

// AppInfo describes a registered app.
type AppInfo struct {
	Name         string
	Port         uint16 // 0: the app does not listen
	PID          int    // 0: unknown
	Since        time.Time
	Streams      int    // open streams (dialed and accepted)
	Pending      int    // announced streams not yet accepted
	BytesIn      uint64 // stream and datagram bytes delivered to the app
	BytesOut     uint64 // stream and datagram bytes the app sent
	DatagramsIn  uint64
	DatagramsOut uint64
}

// Defaults of the options.
const (
	DefaultDialTimeout   = 20 * time.Second
	DefaultAcceptTimeout = 10 * time.Second
	DefaultHelloTimeout  = 5 * time.Second
	DefaultWriteTimeout  = 30 * time.Second
	DefaultMaxPending    = 256
	DefaultMaxStreams    = 8192
)

// Copy buffers of each direction of a stream: a small one of its own
// while the stream is idle or slow, a pooled large one while it is busy.
const (
	smallBuffer  = 2 << 10
	streamBuffer = 64 << 10
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, streamBuffer); return &b }}

// Option configures a Server.
type Option func(*Server)

// WithDialTimeout bounds a mesh dial made for an app.
func WithDialTimeout(d time.Duration) Option { return func(s *Server) { s.dialTimeout = d } }

// WithAcceptTimeout is how long an announced incoming stream waits for the
// app to accept it before the node closes it.
func WithAcceptTimeout(d time.Duration) Option { return func(s *Server) { s.acceptTimeout = d } }

// WithHelloTimeout bounds the first frame of a connection.
func WithHelloTimeout(d time.Duration) Option { return func(s *Server) { s.helloTimeout = d } }

// WithWriteTimeout bounds a write on an app's control connection; an app
// that does not read it for that long is disconnected.
func WithWriteTimeout(d time.Duration) Option { return func(s *Server) { s.writeTimeout = d } }

// WithLimits sets the most announced-but-unaccepted streams and the most
// open streams per app.
func WithLimits(maxPending, maxStreams int) Option {
	return func(s *Server) { s.maxPending, s.maxStreams = maxPending, maxStreams }
}

// Server serves the apps of one node.
type Server struct {
	mesh          Mesh
	log           *slog.Logger
	dialTimeout   time.Duration
	acceptTimeout time.Duration
	helloTimeout  time.Duration
	writeTimeout  time.Duration
	maxPending    int
	maxStreams    int

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc

	mu    sync.Mutex
	group acceptloop.Group[net.Conn] // guarded by mu: listeners, every accepted connection, closed; Serve loops and connection goroutines
	apps  map[wire.Token]*app        // guarded by mu
}

// New returns a server of the apps of mesh; log nil discards.
func New(m Mesh, log *slog.Logger, opts ...Option) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		mesh: m, log: log,
		dialTimeout: DefaultDialTimeout, acceptTimeout: DefaultAcceptTimeout,
		helloTimeout: DefaultHelloTimeout, writeTimeout: DefaultWriteTimeout,
		maxPending: DefaultMaxPending, maxStreams: DefaultMaxStreams,
		apps: map[wire.Token]*app{},
	}
	s.group.Init(&s.mu)
	for _, o := range opts {
		o(s)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Serve accepts app connections on ln (the node's unix socket, mode 0600)
// until ln fails or Close. After Close it returns ErrServerClosed; ln is
// closed when Serve returns.
func (s *Server) Serve(ln net.Listener) error {
	err := s.group.Serve(s.ctx, ln, acceptloop.Loop[net.Conn]{
		Serve: func(c net.Conn) bool {
			if !s.group.Go(c, func() { s.serveConn(c) }) {
				c.Close()
				return false
			}
			return true
		},
		Fatal: func(err error) bool {
			var ne net.Error
			return s.group.Closed() || !(errors.As(err, &ne) && ne.Timeout() || isTemporary(err))
		},
		Failed: func(err error, d time.Duration) {
			s.log.Warn("app socket: accept failed; retrying", "err", err, "in", d)
		},
	})
	if err == nil {
		return ErrServerClosed
	}
	return fmt.Errorf("accept app connection: %w", err)
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	s.group.RemoveLocked(c)
	s.mu.Unlock()
}

// Close closes the listeners, every app connection and everything the
// apps hold (ports, streams), and returns after every goroutine of the
// server has exited.
func (s *Server) Close() error {
	var apps []*app
	lns, conns, first := s.group.Close(func() { apps = slices.Collect(maps.Values(s.apps)) })
	if !first {
		return nil
	}
	s.cancel()
	for _, ln := range lns {
		ln.Close()
	}
	for _, c := range conns {
		c.Close()
	}
	for _, a := range apps {
		a.kill()
	}
	s.group.Wait()
	return nil
}

// Apps lists the registered apps, sorted by name then port.
func (s *Server) Apps() []AppInfo {
	s.mu.Lock()
	apps := slices.Collect(maps.Values(s.apps))
	s.mu.Unlock()
	out := make([]AppInfo, 0, len(apps))
	for _, a := range apps {
		out = append(out, a.info())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Port < out[j].Port
	})
	return out
}

// serveConn reads the first frame of a new connection and serves it as a
// control connection or a stream.
func (s *Server) serveConn(c net.Conn) {
	defer s.untrack(c)
	c.SetReadDeadline(time.Now().Add(s.helloTimeout))
	t, body, _, err := wire.ReadFrame(c, nil, wire.MaxOpenFrame)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return
		}
		s.log.Warn("app connection closed: bad first frame", "err", err)
		return
	}
	m, err := wire.Decode(t, body)
	if err != nil {
		s.log.Warn("app connection closed: bad first frame", "err", err)
		s.refuse(c, appnet.CodeBadRequest, err.Error())
		return
	}
	c.SetReadDeadline(time.Time{})
	switch m := m.(type) {
	case *wire.Hello:
		s.serveApp(c, m)
	case *wire.Dial:
		s.serveDial(c, m)
	case *wire.Accept:
		s.serveAccept(c, m)
	default:
		s.log.Warn("app connection closed: unexpected first frame", "type", m.Type())
		s.refuse(c, appnet.CodeBadRequest, "unexpected "+m.Type().String()+" as first frame")
	}
}

// refuse sends an error reply; the caller then closes c.
func (s *Server) refuse(c net.Conn, code appnet.Code, msg string) {
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	frame, err := wire.Marshal(&wire.Error{Code: wire.ErrCode(code), Msg: msg})
	if err != nil {
		return
	}
	c.SetWriteDeadline(time.Now().Add(s.helloTimeout))
	c.Write(frame)
}

func (s *Server) lookup(tok wire.Token) *app {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apps[tok]
}

// serveApp registers an app and serves its control connection until it
// closes; then it releases everything the app held.
func (s *Server) serveApp(c net.Conn, h *wire.Hello) {
	port := uint16(h.Port)
	log := s.log.With("app", h.Name, "port", port)
	if h.Version != wire.Version {
		log.Warn("app refused: protocol version", "version", h.Version)
		s.refuse(c, appnet.CodeVersion, fmt.Sprintf("node speaks version %d, app %d", wire.Version, h.Version))
		return
	}
	if !wire.ValidName(h.Name) {
		log.Warn("app refused: bad name")
		s.refuse(c, appnet.CodeBadName, "1 to 64 letters, digits, '.', '_' or '-'")
		return
	}
	pid := h.PID
	if p, ok := peerPID(c); ok {
		pid = p
	}
	a := &app{
		s: s, conn: c, rw: rawio.Wrap(c), name: h.Name, port: port, pid: pid, since: time.Now(),
		log:     log.With("pid", pid),
		pending: map[uint64]*pending{}, streams: map[*stream]struct{}{},
		out: wire.NewOutbox(maxQueuedOut),
	}
	if _, err := rand.Read(a.tok[:]); err != nil {
		s.refuse(c, appnet.CodeInternal, "no randomness")
		return
	}
	a.ctx, a.cancel = context.WithCancel(s.ctx)
	defer a.cancel()
	if port != 0 {
		var ln Listener
		var err error
		if named, ok := s.mesh.(NamedMesh); ok {
			ln, err = named.ListenApp(h.Name, port)
		} else {
			ln, err = s.mesh.Listen(port)
		}
		if err != nil {
			log.Info("app refused: listen", "err", err)
			s.refuse(c, appnet.CodeOf(err), err.Error())
			return
		}
		var pc PacketConn
		if pm, ok := s.mesh.(PacketFuncMesh); ok {
			pc, err = pm.ListenPacketFunc(port, a.deliverDatagram)
			a.pushed = true
		} else {
			pc, err = s.mesh.ListenPacket(port)
		}
		if err != nil {
			ln.Close()
			log.Info("app refused: listen packet", "err", err)
			s.refuse(c, appnet.CodeOf(err), err.Error())
			return
		}
		a.ln, a.pc = ln, pc
		wire.SetSendBuffer(c)
	}
	s.mu.Lock()
	if s.group.ClosedLocked() {
		s.mu.Unlock()
		a.release()
		s.refuse(c, appnet.CodeClosed, "node shutting down")
		return
	}
	s.apps[a.tok] = a
	s.mu.Unlock()

	welcome, err := wire.Marshal(&wire.Welcome{Version: wire.Version, Key: wire.Key(s.mesh.PublicKey()), Token: a.tok})
	if err == nil {
		err = a.write(welcome)
	}
	if err != nil {
		log.Info("app gone before welcome", "err", err)
	} else {
		log.Info("app registered")
		if a.ln != nil {
			a.wg.Go(a.acceptLoop)
			if !a.pushed {
				a.wg.Go(a.packetLoop)
			}
			a.wg.Go(a.datagramWriter)
		}
		a.readLoop()
	}
	// Release first, so that an app missing from Apps() has freed its port.
	a.kill()
	a.wg.Wait()
	s.mu.Lock()
	delete(s.apps, a.tok)
	s.mu.Unlock()
	log.Info("app unregistered; port and streams released")
}

// app is one registered app.
type app struct {
	s      *Server
	conn   net.Conn      // control connection
	rw     io.ReadWriter // conn's data path: rawio.Wrap(conn)
	tok    wire.Token
	name   string
	port   uint16
	pid    int
	since  time.Time
	log    *slog.Logger
	ln     Listener   // nil when port is 0
	pc     PacketConn // nil when port is 0
	pushed bool       // pc hands datagrams to deliverDatagram: no packetLoop
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // acceptLoop, packetLoop (unless pushed) and datagramWriter

	bytesIn, bytesOut, dgramsIn, dgramsOut atomic.Uint64

	wmu sync.Mutex // serialises writes on conn
	// wdlSet is when the write deadline was last pushed forward; guarded
	// by wmu.
	wdlSet time.Time

	// Datagrams for the app wait in out until datagramWriter writes all
	// that has gathered in one write: one system call (and one wakeup of
	// the app) per batch instead of per datagram when traffic is heavy.
	out *wire.Outbox

	mu      sync.Mutex
	dead    bool                 // guarded by mu; set by kill
	nextID  uint64               // guarded by mu
	pending map[uint64]*pending  // guarded by mu
	streams map[*stream]struct{} // guarded by mu
}

type pending struct {
	conn  net.Conn
	from  keys.PublicKey
	timer *time.Timer
}

type stream struct {
	app  net.Conn // the app's unix connection
	mesh net.Conn
}

func (st *stream) close() {
	st.app.Close()
	st.mesh.Close()
}

func (a *app) info() AppInfo {
	a.mu.Lock()
	n, p := len(a.streams), len(a.pending)
	a.mu.Unlock()
	return AppInfo{
		Name: a.name, Port: a.port, PID: a.pid, Since: a.since, Streams: n, Pending: p,
		BytesIn: a.bytesIn.Load(), BytesOut: a.bytesOut.Load(),
		DatagramsIn: a.dgramsIn.Load(), DatagramsOut: a.dgramsOut.Load(),
	}
}
