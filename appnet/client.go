// Package appnet is how an app process (socks, vpn, messenger, …) talks
// to its local skywire node: it registers a name and a mesh port, dials
// PUBKEY:PORT and accepts streams (net.Conn with CloseWrite), and sends
// and receives datagrams. The node side is package appserver; the byte
// format is docs/app-api.md.
//
// Each stream is its own unix connection to the node, so stream bytes are
// copied by the kernel and the node with large buffers and nothing is
// multiplexed in the app.
package appnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skywire-mesh/skywire/appnet/internal/wire"
	"github.com/skywire-mesh/skywire/internal/bufpool"
	"github.com/skywire-mesh/skywire/internal/rawio"
	"github.com/skywire-mesh/skywire/keys"
)

// EnvNodeSocket is the environment variable with the path of the node's
// app socket; Connect uses it when given an empty path.
const EnvNodeSocket = "SKYWIRE_NODE_SOCKET"

// Limits of the protocol, for callers that size buffers.
const (
	MaxDatagram = wire.MaxDatagram // largest datagram payload
	MaxNameLen  = wire.MaxNameLen  // longest app name
)

// Queue sizes: announcements and datagrams that arrive while nobody calls
// Accept or ReadDatagram wait here; beyond that they are dropped (an
// unaccepted stream is then closed by the node when it expires).
const (
	incomingQueue      = 256
	datagramQueue      = 1024
	datagramQueueBytes = 4 << 20 // and at most this much payload
	// dgramFreePerClass is how many datagram buffers of each size class
	// (1 KiB to 64 KiB, package bufpool) a client keeps for reuse: at
	// most 2 MiB of the largest.
	dgramFreePerClass = 32
)

// Option configures Connect.
type Option func(*options)

type options struct {
	log *slog.Logger
}

// WithLogger sets the client's logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Client is an app's registration with its node. Its methods are safe for
// concurrent use.
type Client struct {
	path string
	name string
	port uint16
	log  *slog.Logger
	key  keys.PublicKey
	tok  wire.Token
	ctrl net.Conn

	// SendDatagram queues frames in out; writeLoop writes all that has
	// gathered in one write, so a burst costs one system call (and one
	// wakeup of the node) instead of one per datagram.
	out   *wire.Outbox
	wstop chan struct{} // closed by readLoop to stop writeLoop
	wdone chan struct{} // closed when writeLoop has returned

	incoming chan wire.Incoming
	dgrams   chan datagram
	dgramLen atomic.Int64     // payload bytes in dgrams
	bufs     *bufpool.Classes // datagram buffers handed back by ReuseDatagram
	done     chan struct{}    // closed when readLoop has returned
	closing  chan struct{}    // closed by Close
	once     sync.Once
	err      error // why readLoop returned; written before done closes

	dropMu          sync.Mutex
	droppedDgrams   uint64 // guarded by dropMu
	droppedIncoming uint64 // guarded by dropMu
}

type datagram struct {
	b    []byte
	from keys.PublicKey
	port uint16
}

// Connect registers the app name with the node listening on socketPath
// (EnvNodeSocket if empty). port is the mesh port the app listens on for
// streams and datagrams; 0 means none (the app can only dial). Errors
// from the node match ErrPortInUse, ErrBadName, ErrVersion, ….
func Connect(ctx context.Context, socketPath, name string, port uint16, opts ...Option) (*Client, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if socketPath == "" {
		socketPath = os.Getenv(EnvNodeSocket)
		if socketPath == "" {
			return nil, fmt.Errorf("register %s: no node socket given and %s is not set", name, EnvNodeSocket)
		}
	}
	if !wire.ValidName(name) {
		return nil, &Error{Op: "register " + strconv.Quote(name), Code: CodeBadName, Msg: "1 to 64 letters, digits, '.', '_' or '-'"}
	}
	op := "register " + name
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("%s: connect to node: %w", op, err)
	}
	m, err := exchange(ctx, conn, &wire.Hello{Version: wire.Version, Name: name, Port: wire.Port(port), PID: os.Getpid()})
	if err != nil {
		conn.Close()
		return nil, opError(op, err)
	}
	w, ok := m.(*wire.Welcome)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("%s: %w: node answered %s", op, ErrProtocol, m.Type())
	}
	if w.Version != wire.Version {
		conn.Close()
		return nil, fmt.Errorf("%s: %w: node answered version %d", op, ErrVersion, w.Version)
	}
	if port != 0 {
		wire.SetSendBuffer(conn)
	}
	c := &Client{
		path: socketPath, name: name, port: port, log: o.log.With("app", name),
		key: keys.PublicKey(w.Key), tok: w.Token, ctrl: conn,
		incoming: make(chan wire.Incoming, incomingQueue),
		dgrams:   make(chan datagram, datagramQueue),
		bufs:     bufpool.New(dgramFreePerClass),
		done:     make(chan struct{}),
		closing:  make(chan struct{}),
		out:      wire.NewOutbox(maxQueuedOut),
		wstop:    make(chan struct{}),
		wdone:    make(chan struct{}),
	}
	go c.writeLoop()
	go c.readLoop()
	return c, nil
}

// opError names the operation in err, keeping node errors typed.
func opError(op string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		e.Op = op
		return e
	}
	return fmt.Errorf("%s: %w", op, err)
}

// exchange writes the first frame of conn and reads the node's reply,
// bounded by ctx. It reads exactly one frame, so stream bytes that follow
// an OK stay in the socket. A refusal comes back as *Error.
func exchange(ctx context.Context, conn net.Conn, req wire.Message) (wire.Message, error) {
	frame, err := wire.Marshal(req)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	fail := func(what string, err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%s: node closed the connection: %w", what, ErrClosed)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if _, err := conn.Write(frame); err != nil {
		return nil, fail("send "+req.Type().String(), err)
	}
	t, body, _, err := wire.ReadFrame(conn, nil, wire.MaxOpenFrame)
	if err != nil {
		if errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrTooLong) {
			return nil, fmt.Errorf("read reply: %w: %w", ErrProtocol, err)
		}
		return nil, fail("read reply", err)
	}
	m, err := wire.Decode(t, body)
	if err != nil {
		return nil, fmt.Errorf("read reply: %w: %w", ErrProtocol, err)
	}
	if !stop() {
		return nil, fmt.Errorf("read reply: %w", ctx.Err())
	}
	conn.SetDeadline(time.Time{})
	if e, ok := m.(*wire.Error); ok {
		return nil, &Error{Code: Code(e.Code), Msg: e.Msg}
	}
	return m, nil
}

// LocalKey is the node's public key: the app's address on the mesh.
func (c *Client) LocalKey() keys.PublicKey { return c.key }

// Port is the mesh port the app registered (0: none).
func (c *Client) Port() uint16 { return c.port }

// Name is the registered app name.
func (c *Client) Name() string { return c.name }

// Done is closed when the client is closed or the node has gone away.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why Done was closed (nil while it is open). After Close it
// is ErrClosed.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Dropped returns how many datagrams and stream announcements were dropped
// because ReadDatagram or Accept was not called fast enough.
func (c *Client) Dropped() (datagrams, incoming uint64) {
	c.dropMu.Lock()
	defer c.dropMu.Unlock()
	return c.droppedDgrams, c.droppedIncoming
}

// Close ends the registration: the node releases the app's port and
// closes the app's streams. It returns after the client's goroutine has
// stopped.
func (c *Client) Close() error {
	c.once.Do(func() {
		close(c.closing)
		c.ctrl.Close()
	})
	<-c.done
	return nil
}

// readLoop reads the control connection until it fails or Close, then
// stops writeLoop.
func (c *Client) readLoop() {
	defer close(c.done)
	c.err = c.readControl()
	c.ctrl.Close()
	close(c.wstop)
	<-c.wdone
	select {
	case <-c.closing:
		c.err = ErrClosed
	default:
		c.log.Info("app connection to node lost", "err", c.err)
	}
}

func (c *Client) readControl() error {
	fr := wire.NewFrameReader(newReader(rawio.Wrap(c.ctrl)))
	for {
		t, body, err := fr.Next()
		if err != nil {
			if errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrTooLong) {
				return fmt.Errorf("%w: %w", ErrProtocol, err)
			}
			return fmt.Errorf("node connection: %w: %w", ErrClosed, err)
		}
		m, err := wire.Decode(t, body)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		switch m := m.(type) {
		case *wire.Datagram:
			c.queueDatagram(m)
		case *wire.Incoming:
			select {
			case c.incoming <- *m:
			default:
				c.dropMu.Lock()
				c.droppedIncoming++
				c.dropMu.Unlock()
				c.log.Warn("incoming stream dropped: accept queue full", "from", keys.PublicKey(m.Key).Short())
			}
		case *wire.Error:
			return &Error{Op: "node", Code: Code(m.Code), Msg: m.Msg}
		default:
			return fmt.Errorf("%w: unexpected %s on the control connection", ErrProtocol, m.Type())
		}
	}
}

// Dial opens a stream to remote:port. The returned connection is a *Conn
// (it has CloseWrite). Node errors match ErrNoRoute, ErrRefused,
// ErrTimeout, ….
func (c *Client) Dial(ctx context.Context, remote keys.PublicKey, port uint16) (net.Conn, error) {
	op := "dial " + remote.Short() + ":" + strconv.Itoa(int(port))
	if err := c.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, ErrClosed)
	}
	uc, err := c.openStream(ctx, &wire.Dial{Token: c.tok, Key: wire.Key(remote), Port: wire.Port(port)})
	if err != nil {
		return nil, opError(op, err)
	}
	return &Conn{UnixConn: uc, local: Addr{Key: c.key, Port: c.port}, remote: Addr{Key: remote, Port: port}}, nil
}

// Accept waits for the next stream to the app's port and returns it with
// the remote node's key. The connection is a *Conn.
func (c *Client) Accept(ctx context.Context) (net.Conn, keys.PublicKey, error) {
	if c.port == 0 {
		return nil, keys.PublicKey{}, fmt.Errorf("accept: %w", ErrNoPort)
	}
	for {
		var in wire.Incoming
		select {
		case in = <-c.incoming:
		case <-ctx.Done():
			return nil, keys.PublicKey{}, fmt.Errorf("accept: %w", ctx.Err())
		case <-c.done:
			return nil, keys.PublicKey{}, fmt.Errorf("accept: %w", ErrClosed)
		}
		from := keys.PublicKey(in.Key)
		uc, err := c.openStream(ctx, &wire.Accept{Token: c.tok, ID: in.ID})
		if errors.Is(err, ErrUnknownStream) {
			c.log.Debug("incoming stream expired before accept", "from", from.Short(), "id", in.ID)
			continue
		}
		if err != nil {
			return nil, keys.PublicKey{}, opError("accept from "+from.Short(), err)
		}
		return &Conn{UnixConn: uc, local: Addr{Key: c.key, Port: c.port}, remote: Addr{Key: from}}, from, nil
	}
}

func (c *Client) openStream(ctx context.Context, req wire.Message) (*net.UnixConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return nil, fmt.Errorf("connect to node: %w", err)
	}
	m, err := exchange(ctx, conn, req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if _, ok := m.(*wire.OK); !ok {
		conn.Close()
		return nil, fmt.Errorf("%w: node answered %s", ErrProtocol, m.Type())
	}
	return conn.(*net.UnixConn), nil
}

// maxQueuedOut bounds the datagram frames waiting for writeLoop;
// SendDatagram waits while more is queued.
const maxQueuedOut = 256 << 10

// writeLoop writes the queued datagram frames to the node until the
// connection fails or readLoop stops it. A failed write closes the
// connection, which ends readLoop too.
func (c *Client) writeLoop() {
	defer close(c.wdone)
	w := rawio.Wrap(c.ctrl)
	err := c.out.Run(c.wstop, func(batch []byte) error {
		_, err := w.Write(batch)
		return err
	})
	if err != nil {
		c.log.Debug("datagram write to node failed", "err", err)
		c.ctrl.Close()
	}
}

// SendDatagram sends b to to:port from the app's port. Datagrams are
// unreliable: a datagram the mesh cannot deliver is dropped silently. It
// returns once b is queued for the node (b may then be reused); it waits
// while much is queued already. When no write to the node is under way,
// it writes what is queued itself (no handoff to the writer goroutine),
// and returns once that write has.
func (c *Client) SendDatagram(to keys.PublicKey, port uint16, b []byte) error {
	if c.port == 0 {
		return fmt.Errorf("send datagram: %w", ErrNoPort)
	}
	if len(b) > MaxDatagram {
		return fmt.Errorf("send datagram of %d bytes: %w", len(b), ErrTooLarge)
	}
	if err := c.Err(); err != nil {
		return fmt.Errorf("send datagram: %w", ErrClosed)
	}
	if !c.out.SendDatagram(to, port, b) {
		return fmt.Errorf("send datagram: %w", ErrClosed)
	}
	return nil
}

// queueDatagram queues m for ReadDatagram, or drops and counts it when the
// queue holds datagramQueue datagrams or datagramQueueBytes of payload.
func (c *Client) queueDatagram(m *wire.Datagram) {
	if c.dgramLen.Load()+int64(len(m.Payload)) <= datagramQueueBytes {
		b := c.bufs.Get(len(m.Payload))
		copy(b, m.Payload)
		d := datagram{b: b, from: m.Key, port: m.Port}
		c.dgramLen.Add(int64(len(d.b)))
		select {
		case c.dgrams <- d:
			return
		default:
			c.dgramLen.Add(-int64(len(d.b)))
		}
	}
	c.dropMu.Lock()
	c.droppedDgrams++
	c.dropMu.Unlock()
}

// ReadDatagram returns the next datagram to the app's port with its
// source key and port. The datagram's bytes are the caller's; a loop that
// reads many should hand each back with ReuseDatagram when done with it.
func (c *Client) ReadDatagram(ctx context.Context) ([]byte, keys.PublicKey, uint16, error) {
	if c.port == 0 {
		return nil, keys.PublicKey{}, 0, fmt.Errorf("read datagram: %w", ErrNoPort)
	}
	select {
	case d := <-c.dgrams:
		c.dgramLen.Add(-int64(len(d.b)))
		return d.b, d.from, d.port, nil
	case <-ctx.Done():
		return nil, keys.PublicKey{}, 0, fmt.Errorf("read datagram: %w", ctx.Err())
	case <-c.done:
		// Deliver what arrived before the node went away.
		select {
		case d := <-c.dgrams:
			c.dgramLen.Add(-int64(len(d.b)))
			return d.b, d.from, d.port, nil
		default:
		}
		return nil, keys.PublicKey{}, 0, fmt.Errorf("read datagram: %w", ErrClosed)
	}
}

// ReuseDatagram hands back b, a datagram ReadDatagram returned, for a
// later datagram to reuse its memory: an app that reads datagrams in a
// loop then allocates nothing per datagram. The caller must not use b (or
// any slice of it) afterwards. Passing any other slice is harmless.
func (c *Client) ReuseDatagram(b []byte) { c.bufs.Put(b) }

// BufferedDatagrams returns how many received datagrams wait for
// ReadDatagram: a reader that batches its work (the VPN coalescing TCP
// segments into one write) reads on while it is not zero.
func (c *Client) BufferedDatagrams() int { return len(c.dgrams) }

// Addr is a mesh address: a node's public key and a port.
type Addr struct {
	Key  keys.PublicKey
	Port uint16
}

// Network returns "skywire".
func (Addr) Network() string { return "skywire" }

// String returns "pk:<hex>:port".
func (a Addr) String() string { return a.Key.String() + ":" + strconv.Itoa(int(a.Port)) }

// Conn is a stream: a unix connection to the node carrying the stream's
// raw bytes. CloseWrite half-closes it; the remote end reads EOF.
type Conn struct {
	*net.UnixConn
	local, remote Addr
}

// LocalAddr is the node's key and the app's port (an Addr).
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the remote key and, for dialed streams, port (an Addr).
func (c *Conn) RemoteAddr() net.Addr { return c.remote }
