// Package link is an encrypted, framed, keepalive'd connection between two
// mesh nodes over a net.Conn (TCP between nodes, net.Pipe in tests).
//
// A link starts with the secure handshake (prologue "skywire-link-v2"): the
// client must know the server's public key and is refused if the peer is
// anyone else; the server learns the client's key and may refuse it. After
// that every frame is encrypted for this hop — route traffic too, although
// it is already sealed end to end, so that a packet relayed over several
// links looks different on each and an observer of two links cannot match
// flows by their bytes. A forged, replayed, reordered, oversized or
// malformed frame closes the link (with a logged reason and Stats.Rejected)
// — never a panic.
//
// Wire format (all integers big-endian; see docs/crypto.md):
//
//	handshake:  len uint16 | message            (each direction once)
//	frame:      len uint32 | AEAD(counter, ad=len, type uint8 | payload)
//	  len             body length, 17 .. MaxFrame+17 (bit 31, the clear
//	                  frame of link v1, is out of range)
//
// The AEAD is negotiated in the handshake (secure handshake version 2):
// AES-256-GCM when both ends have AES instructions, ChaCha20-Poly1305
// otherwise; each direction re-keys after every secure.RekeyAfterBytes.
// A server also accepts a version 1 handshake (a client of an earlier
// release: ChaCha20-Poly1305, no re-keying). Counters are implicit (one per
// frame and direction, starting at 0), so the stream must arrive complete
// and in order, which TCP guarantees.
// Frame types 0..15 belong to the link (1 ping, 2 pong, 3 close); users
// send types 16..255.
package link

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/secure"
	"github.com/skywire-mesh/skywire/internal/rawio"
	"github.com/skywire-mesh/skywire/keys"
)

// Prologue is the handshake domain string of links, and their protocol
// version: a handshake between two versions cannot complete.
const Prologue = "skywire-link-v2"

// prologueV1 is the link protocol before every frame was encrypted (route
// traffic crossed links authenticated but in the clear). A server
// recognises its clients to refuse them with a reason (see Server).
const prologueV1 = "skywire-link-v1"

// MinUserType is the lowest frame type users may send.
const MinUserType = 16

// Link-internal frame types.
const (
	typePing  = 1
	typePong  = 2
	typeClose = 3
)

const (
	hdrLen        = 4
	frameOverhead = 1 + secure.Overhead // type byte + tag
	// Overhead is the number of bytes a frame adds to its payload on the wire.
	Overhead = hdrLen + frameOverhead
	// DefaultMaxFrame is the default largest payload of one frame.
	DefaultMaxFrame = 64 << 10
	maxMaxFrame     = 1<<31 - 1 - frameOverhead

	recvQueue    = 8         // frames decoded ahead of Recv
	readBufSize  = 64 << 10  // bufio.Reader size
	maxQueued    = 256 << 10 // senders wait while this much is sealed but not yet written
	maxSpare     = 1 << 20   // a write buffer above this size is not kept for reuse
	closeTimeout = 250 * time.Millisecond
)

// Errors. Those from Client and Server also wrap secure.ErrHandshake or
// secure.ErrRefused (re-exported here).
var (
	ErrHandshake    = secure.ErrHandshake
	ErrRefused      = secure.ErrRefused
	ErrClosed       = errors.New("link: closed")
	ErrPeerClosed   = errors.New("link: closed by peer")
	ErrDead         = errors.New("link: peer dead (keepalive timeout)")
	ErrProtocol     = errors.New("link: protocol violation")
	ErrReservedType = errors.New("link: frame type below 16 is reserved")
	ErrTooLarge     = errors.New("link: payload larger than MaxFrame")
	ErrConfig       = errors.New("link: bad config")
	// ErrVersion: the peer speaks another link protocol version. Server
	// returns it (with ErrRefused) for a link v1 client. A client cannot
	// tell a v1 server from a peer with another key: both are silent, and
	// Client returns ErrHandshake.
	ErrVersion = errors.New("link: peer speaks another link protocol version")
)

// Config configures a link. The zero value of every field but Local means
// its default.
type Config struct {
	Local             keys.KeyPair
	Logger            *slog.Logger  // nil: discard
	HandshakeTimeout  time.Duration // 0: 5s
	KeepaliveInterval time.Duration // 0: 1s
	DeadAfter         time.Duration // 0: 3s; no frame received for this long closes the link with ErrDead
	MaxFrame          int           // 0: 64 KiB; largest payload; both ends must agree
	CloseLinger       time.Duration // 0: 2s; how long Close waits for the peer to read what was sent and hang up
	// Suites are the AEADs this end offers (client) or accepts (server),
	// best first; nil: secure.DefaultSuites().
	Suites []secure.Suite

	// handshakeV1 makes a client speak the version 1 handshake, as
	// clients before suite negotiation did (tests).
	handshakeV1 bool
}

// DefaultConfig returns the defaults for key pair kp.
func DefaultConfig(kp keys.KeyPair) Config {
	return Config{Local: kp, HandshakeTimeout: 5 * time.Second, KeepaliveInterval: time.Second,
		DeadAfter: 3 * time.Second, MaxFrame: DefaultMaxFrame, CloseLinger: 2 * time.Second}
}

// Validate fills in defaults and reports the first bad setting.
func (c *Config) Validate() error {
	d := DefaultConfig(c.Local)
	c.HandshakeTimeout = cmp.Or(c.HandshakeTimeout, d.HandshakeTimeout)
	c.KeepaliveInterval = cmp.Or(c.KeepaliveInterval, d.KeepaliveInterval)
	c.DeadAfter = cmp.Or(c.DeadAfter, d.DeadAfter)
	c.MaxFrame = cmp.Or(c.MaxFrame, d.MaxFrame)
	c.CloseLinger = cmp.Or(c.CloseLinger, d.CloseLinger)
	if c.Suites == nil {
		c.Suites = secure.DefaultSuites()
	}
	switch {
	case c.Local.Secret.IsZero():
		return fmt.Errorf("%w: Local: no secret key", ErrConfig)
	case c.HandshakeTimeout < 0:
		return fmt.Errorf("%w: HandshakeTimeout %v is negative", ErrConfig, c.HandshakeTimeout)
	case c.KeepaliveInterval < 0:
		return fmt.Errorf("%w: KeepaliveInterval %v is negative", ErrConfig, c.KeepaliveInterval)
	case c.DeadAfter <= c.KeepaliveInterval:
		return fmt.Errorf("%w: DeadAfter %v must exceed KeepaliveInterval %v", ErrConfig, c.DeadAfter, c.KeepaliveInterval)
	case c.CloseLinger < 0:
		return fmt.Errorf("%w: CloseLinger %v is negative", ErrConfig, c.CloseLinger)
	case c.MaxFrame < 0 || c.MaxFrame > maxMaxFrame:
		return fmt.Errorf("%w: MaxFrame %d out of range 1..%d", ErrConfig, c.MaxFrame, maxMaxFrame)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Stats are a link's counters.
type Stats struct {
	FramesIn, FramesOut uint64 // all frames, keepalives included
	BytesIn, BytesOut   uint64 // wire bytes of frames
	Rejected            uint64 // frames that closed the link as malformed, forged or oversized
	KeepalivesSent      uint64
}

// frame is a receive buffer: header and body, decrypted in place.
type frame struct {
	buf     []byte
	typ     uint8
	payload []byte
	body    []byte // typ and payload
}

// Conn is an established link. Send may be called from many goroutines;
// Recv from one.
type Conn struct {
	conn   net.Conn
	cfg    Config
	log    *slog.Logger
	remote keys.PublicKey
	suite  secure.Suite
	send   *secure.Sealer // guarded by wmu
	recv   *secure.Opener // owned by readLoop
	epoch  time.Time

	// Writing. Senders seal frames into wbuf; writeLoop writes everything
	// that has gathered in one system call, so a busy link (a relay
	// forwarding packet after packet) costs a write per batch, not per
	// frame. Senders wait on wcond while maxQueued bytes are queued
	// (backpressure) or, to flush, until their frame is written.
	wmu      sync.Mutex
	wcond    sync.Cond     // L is &wmu; broadcast after each write and when writing stops
	wbuf     []byte        // guarded by wmu
	werr     error         // guarded by wmu; set once, when writing stops
	wqueued  uint64        // guarded by wmu; bytes ever appended to wbuf
	wwritten uint64        // guarded by wmu; bytes ever written
	wake     chan struct{} // cap 1: wbuf has data for writeLoop

	// Reading.
	in   chan *frame // decoded user frames, closed when readLoop exits
	free chan *frame // recycled frames
	cur  *frame      // frame whose payload the Recv caller holds

	pongTS  atomic.Uint64 // latest ping timestamp to echo
	pongReq chan struct{} // cap 1: a pong is due
	srtt    atomic.Int64  // smoothed RTT in ns, 0 before the first pong

	closing  atomic.Bool
	draining chan struct{} // closed when Close lingers for the peer to hang up
	once     sync.Once
	done     chan struct{}
	errMu    sync.Mutex
	err      error // guarded by errMu
	wg       sync.WaitGroup

	framesIn, framesOut, bytesIn, bytesOut, rejected, keepalives atomic.Uint64
}

// Client performs the handshake as the initiator over conn and returns the
// link. It fails (wrapping ErrHandshake) unless the peer proves it holds the
// secret key of remote, and with ErrRefused if the server refused us.
// On error conn is closed. ctx bounds the handshake only.
func Client(ctx context.Context, conn net.Conn, cfg Config, remote keys.PublicKey) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("link client: %w", err)
	}
	if remote.IsZero() {
		conn.Close()
		return nil, fmt.Errorf("link client: %w: no remote key to expect", ErrConfig)
	}
	sess, err := withDeadline(ctx, conn, cfg.HandshakeTimeout, func() (*secure.Session, error) {
		scfg := secure.Config{Local: cfg.Local, Prologue: Prologue, Suites: cfg.Suites}
		if cfg.handshakeV1 {
			scfg.Suites = nil
		}
		msg1, st, err := secure.Initiate(scfg, remote)
		if err != nil {
			return nil, err
		}
		if err := writeMsg(conn, msg1); err != nil {
			return nil, fmt.Errorf("%w: send hello: %w", ErrHandshake, err)
		}
		msg2, err := readMsg(conn)
		if err != nil {
			return nil, fmt.Errorf("%w: read reply (is the peer %s, and does it speak %s with handshake version %d?): %w", ErrHandshake, remote.Short(), Prologue, secure.Version2, err)
		}
		return st.Finish(msg2)
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("link client to %s at %s: %w", remote.Short(), conn.RemoteAddr(), err)
	}
	return newConn(conn, cfg, sess), nil
}

// Server performs the handshake as the responder over conn. accept is
// called with the client's authenticated key; an error from it refuses the
// link (the client is told, authenticated, and sees ErrRefused). A nil
// accept admits every client that proves its key. On error conn is closed.
// ctx bounds the handshake only.
func Server(ctx context.Context, conn net.Conn, cfg Config, accept func(keys.PublicKey) error) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("link server: %w", err)
	}
	sess, err := withDeadline(ctx, conn, cfg.HandshakeTimeout, func() (*secure.Session, error) {
		msg1, err := readMsg(conn)
		if err != nil {
			return nil, fmt.Errorf("%w: read hello: %w", ErrHandshake, err)
		}
		msg2, sess, err := secure.Respond(secure.Config{Local: cfg.Local, Prologue: Prologue, Accept: accept, Suites: cfg.Suites}, msg1)
		if err != nil && msg2 == nil {
			msg2, err = refuseOldVersion(cfg, msg1, err)
		}
		if msg2 != nil {
			if werr := writeMsg(conn, msg2); werr != nil && err == nil {
				return nil, fmt.Errorf("%w: send reply: %w", ErrHandshake, werr)
			}
		}
		return sess, err
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("link server from %s: %w", conn.RemoteAddr(), err)
	}
	return newConn(conn, cfg, sess), nil
}

// refuseOldVersion is called with a msg1 that failed the handshake. If it
// is a link v1 client's, it returns an authenticated v1 refusal to send (so
// the old client reports that it was refused rather than a failed
// handshake) and an error wrapping ErrVersion and ErrRefused that names
// both versions. Otherwise it returns nil and err unchanged. Only clients
// that prove their key under v1 get an answer, as with any refusal.
func refuseOldVersion(cfg Config, msg1 []byte, err error) ([]byte, error) {
	old := secure.Config{Local: cfg.Local, Prologue: prologueV1, Accept: func(keys.PublicKey) error { return ErrVersion }}
	refusal, _, verr := secure.Respond(old, msg1)
	if refusal == nil || !errors.Is(verr, ErrVersion) {
		return nil, err
	}
	return refusal, fmt.Errorf("client speaks %q, this node %q (upgrade the client): %w", prologueV1, Prologue, verr)
}

// withDeadline runs the handshake fn with conn's deadline set from timeout
// and ctx.
func withDeadline(ctx context.Context, conn net.Conn, timeout time.Duration, fn func() (*secure.Session, error)) (*secure.Session, error) {
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("set handshake deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	sess, err := fn()
	if !stop() {
		return nil, fmt.Errorf("handshake: %w", context.Cause(ctx))
	}
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clear handshake deadline: %w", err)
	}
	return sess, nil
}

func writeMsg(w io.Writer, msg []byte) error {
	buf := make([]byte, 2, 2+len(msg))
	binary.BigEndian.PutUint16(buf, uint16(len(msg)))
	_, err := w.Write(append(buf, msg...))
	return err
}

// readMsg reads one length-prefixed handshake message, at most
// secure.MaxHandshakeLen bytes. It reads exactly the message, nothing after.
func readMsg(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n == 0 || n > secure.MaxHandshakeLen {
		return nil, fmt.Errorf("handshake message of %d bytes (max %d)", n, secure.MaxHandshakeLen)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

func newConn(conn net.Conn, cfg Config, sess *secure.Session) *Conn {
	c := &Conn{
		conn:     conn,
		cfg:      cfg,
		log:      cfg.Logger.With("peer", sess.Remote.Short()),
		remote:   sess.Remote,
		suite:    sess.Suite,
		send:     sess.Send,
		recv:     sess.Recv,
		epoch:    time.Now(),
		in:       make(chan *frame, recvQueue),
		free:     make(chan *frame, recvQueue+2),
		pongReq:  make(chan struct{}, 1),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		draining: make(chan struct{}),
	}
	c.wcond.L = &c.wmu
	c.log.Debug("link up", "addr", conn.RemoteAddr(), "cipher", sess.Suite, "handshake", sess.Version)
	c.wg.Go(c.readLoop)
	c.wg.Go(c.keepaliveLoop)
	c.wg.Go(c.writeLoop)
	return c
}

// Remote returns the peer's authenticated public key.
func (c *Conn) Remote() keys.PublicKey { return c.remote }

// Suite returns the AEAD the link's frames are sealed with.
func (c *Conn) Suite() secure.Suite { return c.suite }

// RTT returns the smoothed round-trip time measured by keepalives, 0 before
// the first measurement.
func (c *Conn) RTT() time.Duration { return time.Duration(c.srtt.Load()) }

// Done is closed when the link is down.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the link went down (ErrClosed after Close, ErrDead,
// ErrPeerClosed, an error wrapping ErrProtocol, or a transport error), or
// nil while it is up.
func (c *Conn) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// Stats returns a snapshot of the link's counters.
func (c *Conn) Stats() Stats {
	return Stats{
		FramesIn: c.framesIn.Load(), FramesOut: c.framesOut.Load(),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		Rejected: c.rejected.Load(), KeepalivesSent: c.keepalives.Load(),
	}
}

// Close writes what is queued and a close frame (bounded by a short
// timeout), lingers at most CloseLinger until the peer has read them and
// hung up (see linger), closes the connection and returns after the link's
// goroutines have exited. Senders blocked in Send return ErrClosed at once.
// It is safe to call more than once and concurrently with everything else.
func (c *Conn) Close() error { return c.close(true) }

// CloseNow is Close without the linger: for a peer this end is done with
// (evicted, replaced), where waiting for it to read the close frame helps
// nobody. Frames still in flight to it may be lost.
func (c *Conn) CloseNow() error { return c.close(false) }

func (c *Conn) close(linger bool) error {
	if c.closing.CompareAndSwap(false, true) {
		select {
		case <-c.done:
		default:
			c.conn.SetWriteDeadline(time.Now().Add(closeTimeout))
			// Wait until the close frame (and all before it) is written,
			// then linger until the peer has read it.
			if c.writeFrame(typeClose, nil, nil, true) == nil && linger {
				c.linger()
			}
		}
	}
	c.fail(ErrClosed)
	c.wg.Wait()
	return nil
}

// linger is Close's wait, after the close frame, for the peer to read
// everything and hang up: it stops writing, half-closes (FIN) and waits at
// most CloseLinger for the read loop to end, dropping frames that still
// arrive. Closing at once would leave the peer's keepalives unread in our
// socket, and a socket closed with unread data sends a reset, which makes
// the peer's kernel discard frames it received but its reader had not yet
// taken (TestCloseFlushesQueuedFrames; Apache's lingering close, for the
// same reason; its linger is 2 s too). Transports without half-close
// (net.Pipe) close at once.
func (c *Conn) linger() {
	c.wmu.Lock()
	if c.werr == nil {
		c.werr = ErrClosed // nothing is written after the close frame
	}
	c.wcond.Broadcast()
	c.wmu.Unlock()
	cw, ok := c.conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	close(c.draining)
	t := time.NewTimer(c.cfg.CloseLinger)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
	}
}

// fail takes the link down with err (first caller wins). Once Close has
// begun, the reason is always ErrClosed: errors from the peer hanging up
// after our close frame are consequences, not causes.
func (c *Conn) fail(err error) {
	if c.closing.Load() {
		err = ErrClosed
	}
	c.once.Do(func() {
		// Count and log before Done is closed, so whoever waits on Done
		// sees them.
		switch {
		case errors.Is(err, ErrClosed), errors.Is(err, ErrPeerClosed):
			c.log.Debug("link closed", "reason", err)
		case errors.Is(err, ErrProtocol):
			c.rejected.Add(1)
			c.log.Warn("link closed: bad frame from peer", "reason", err)
		default:
			c.log.Info("link down", "reason", err)
		}
		c.errMu.Lock()
		c.err = err
		c.errMu.Unlock()
		c.conn.Close()
		close(c.done)
	})
}

// Send sends one frame of type typ (>= MinUserType) with payload, encrypted
// and authenticated for this hop, whatever the payload is (route traffic a
// relay forwards is already sealed end to end, and is encrypted again so
// that it looks different on every link). It is safe for concurrent use;
// it blocks while the peer does not read (backpressure) and fails once the
// link is down. payload is copied before Send returns, so the caller may
// reuse it. Frames from one goroutine arrive in order; concurrent senders'
// frames interleave whole.
func (c *Conn) Send(typ uint8, payload []byte) error {
	if typ < MinUserType {
		return fmt.Errorf("link send type %d: %w", typ, ErrReservedType)
	}
	return c.writeFrame(typ, payload, nil, false)
}

// SendFrame is Send(body[0], body[1:]): body is a frame body, the type
// byte (>= MinUserType) followed by the payload, as RecvFrame returns it.
// It is sealed straight from body into the link's queue, which saves
// Send's copy of the payload. body is not modified, and may be reused once
// SendFrame returns.
func (c *Conn) SendFrame(body []byte) error {
	if len(body) == 0 {
		return fmt.Errorf("link send: empty frame body: %w", ErrReservedType)
	}
	if body[0] < MinUserType {
		return fmt.Errorf("link send type %d: %w", body[0], ErrReservedType)
	}
	return c.writeFrame(0, nil, body, false)
}

// writeFrame queues one frame, typ with payload or, if body is not nil,
// the frame body body (type byte and payload), and flushes unless another
// sender waits to add to the batch (it then flushes); flush forces the
// flush.
func (c *Conn) writeFrame(typ uint8, payload, body []byte, flush bool) error {
	if size := max(len(payload), len(body)-1); size > c.cfg.MaxFrame {
		return fmt.Errorf("link send %d bytes: %w (%d)", size, ErrTooLarge, c.cfg.MaxFrame)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for c.werr == nil && len(c.wbuf) >= maxQueued {
		c.wcond.Wait() // writeLoop is writing; it broadcasts when done
	}
	if c.werr != nil {
		return c.werr
	}
	select {
	case <-c.done:
		c.werr = c.Err()
		return c.werr
	default:
	}
	before := len(c.wbuf)
	if body != nil {
		c.appendBody(body)
	} else {
		c.appendFrame(typ, payload)
	}
	c.wqueued += uint64(len(c.wbuf) - before)
	end := c.wqueued
	select {
	case c.wake <- struct{}{}:
	default:
	}
	if flush {
		for c.werr == nil && c.wwritten < end {
			c.wcond.Wait()
		}
		if c.wwritten < end {
			return c.werr
		}
	}
	return nil
}

// writeLoop writes what senders have queued, all of it in one write, until
// the link goes down or a write fails; then it sets werr, which releases
// every waiting sender.
func (c *Conn) writeLoop() {
	w := rawio.Wrap(c.conn)
	var spare []byte
	for {
		select {
		case <-c.wake:
		case <-c.done:
			c.stopWriting(c.Err())
			return
		}
		for {
			c.wmu.Lock()
			buf := c.wbuf
			if len(buf) == 0 {
				c.wmu.Unlock()
				break
			}
			c.wbuf = spare[:0]
			c.wmu.Unlock()
			_, err := w.Write(buf)
			if err != nil {
				c.fail(fmt.Errorf("write: %w", err))
				c.stopWriting(c.Err())
				return
			}
			c.wmu.Lock()
			c.wwritten += uint64(len(buf))
			c.wcond.Broadcast()
			c.wmu.Unlock()
			if cap(buf) <= maxSpare {
				spare = buf
			} else {
				spare = nil
			}
		}
	}
}

// stopWriting records why nothing more will be written and wakes every
// sender waiting for room or for its frame to be written.
func (c *Conn) stopWriting(err error) {
	c.wmu.Lock()
	if c.werr == nil {
		c.werr = err
	}
	c.wcond.Broadcast()
	c.wmu.Unlock()
}

// appendFrame appends one frame to wbuf, sealing it in place. The caller
// holds wmu (the counter order is the write order).
func (c *Conn) appendFrame(typ uint8, payload []byte) {
	n := len(payload)
	need := hdrLen + frameOverhead + n
	c.wbuf = slices.Grow(c.wbuf, need) // sealing appends the tag in place
	off := len(c.wbuf)
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, uint32(frameOverhead+n))
	c.wbuf = append(c.wbuf, typ)
	c.wbuf = append(c.wbuf, payload...)
	body := c.wbuf[off+hdrLen:]
	c.send.Seal(body[:0], body, c.wbuf[off:off+hdrLen])
	c.wbuf = c.wbuf[:off+need]
	c.framesOut.Add(1)
	c.bytesOut.Add(uint64(need))
}

// appendBody appends one frame of body (type byte and payload) to wbuf,
// sealing it from body. The caller holds wmu.
func (c *Conn) appendBody(body []byte) {
	n := len(body) + secure.Overhead
	need := hdrLen + n
	c.wbuf = slices.Grow(c.wbuf, need)
	off := len(c.wbuf)
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, uint32(n))
	c.wbuf = c.send.Seal(c.wbuf, body, c.wbuf[off:off+hdrLen])
	c.framesOut.Add(1)
	c.bytesOut.Add(uint64(need))
}

// Recv returns the next user frame. The payload is valid only until the
// next call to Recv. Only one goroutine may call Recv. After the link went
// down, frames already received are still returned, then Err().
func (c *Conn) Recv() (typ uint8, payload []byte, err error) {
	if c.cur != nil {
		select {
		case c.free <- c.cur:
		default:
		}
		c.cur = nil
	}
	f, ok := <-c.in
	if !ok {
		return 0, nil, c.Err()
	}
	c.cur = f
	return f.typ, f.payload, nil
}

// RecvFrame is Recv returning the frame body: the type byte followed by
// the payload, valid only until the next Recv or RecvFrame. A relay hands
// it to SendFrame on the next link whole.
func (c *Conn) RecvFrame() ([]byte, error) {
	_, _, err := c.Recv()
	if err != nil {
		return nil, err
	}
	return c.cur.body, nil
}

// readLoop reads, authenticates and dispatches frames until the link dies.
func (c *Conn) readLoop() {
	defer close(c.in)
	br := bufio.NewReaderSize(rawio.Wrap(c.conn), readBufSize)
	var f *frame
	for {
		if f == nil {
			select {
			case f = <-c.free:
			default:
				f = new(frame)
			}
		}
		if err := c.conn.SetReadDeadline(time.Now().Add(c.cfg.DeadAfter)); err != nil {
			c.fail(fmt.Errorf("set read deadline: %w", err))
			return
		}
		if err := c.readFrame(br, f); err != nil {
			c.fail(c.readError(err))
			return
		}
		c.framesIn.Add(1)
		c.bytesIn.Add(uint64(len(f.buf)))
		if f.typ >= MinUserType {
			select {
			case c.in <- f:
				f = nil
			case <-c.draining: // Close lingers: nobody reads any more
			case <-c.done:
				return
			}
			continue
		}
		if err := c.handleControl(f); err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *Conn) readError(err error) error {
	switch {
	case errors.Is(err, ErrProtocol):
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: nothing received for %v", ErrDead, c.cfg.DeadAfter)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("read: connection closed without close frame: %w", err)
	default:
		return fmt.Errorf("read: %w", err)
	}
}

// readFrame reads one frame into f and authenticates it. Any error that
// is the peer's fault wraps ErrProtocol.
func (c *Conn) readFrame(r io.Reader, f *frame) error {
	return readFrame(r, f, c.recv, c.cfg.MaxFrame)
}

func readFrame(r io.Reader, f *frame, recv *secure.Opener, maxFrame int) error {
	if cap(f.buf) < hdrLen {
		f.buf = make([]byte, hdrLen, 2<<10)
	}
	f.buf = f.buf[:hdrLen]
	if _, err := io.ReadFull(r, f.buf); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint32(f.buf))
	if n < frameOverhead || n > maxFrame+frameOverhead {
		return fmt.Errorf("%w: frame body of %d bytes (allowed %d..%d)", ErrProtocol, n, frameOverhead, maxFrame+frameOverhead)
	}
	total := hdrLen + n
	if cap(f.buf) < total {
		nb := make([]byte, total)
		copy(nb, f.buf[:hdrLen])
		f.buf = nb
	}
	f.buf = f.buf[:total]
	if _, err := io.ReadFull(r, f.buf[hdrLen:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	body := f.buf[hdrLen:]
	pt, err := recv.Open(body[:0], body, f.buf[:hdrLen])
	if err != nil {
		return fmt.Errorf("%w: frame: %w", ErrProtocol, err)
	}
	f.typ, f.payload, f.body = pt[0], pt[1:], pt
	return nil
}

func (c *Conn) handleControl(f *frame) error {
	switch f.typ {
	case typePing:
		if len(f.payload) != 8 {
			return fmt.Errorf("%w: ping of %d bytes", ErrProtocol, len(f.payload))
		}
		c.pongTS.Store(binary.BigEndian.Uint64(f.payload))
		select {
		case c.pongReq <- struct{}{}:
		default:
		}
	case typePong:
		if len(f.payload) != 8 {
			return fmt.Errorf("%w: pong of %d bytes", ErrProtocol, len(f.payload))
		}
		sent := time.Duration(binary.BigEndian.Uint64(f.payload))
		sample := time.Since(c.epoch) - sent
		if sample < 0 || sent < 0 {
			return fmt.Errorf("%w: pong for a ping never sent", ErrProtocol)
		}
		for {
			old := c.srtt.Load()
			nv := int64(sample)
			if old != 0 {
				nv = old - old/8 + int64(sample)/8
			}
			if c.srtt.CompareAndSwap(old, nv) {
				break
			}
		}
	case typeClose:
		return ErrPeerClosed
	default:
		return fmt.Errorf("%w: unknown link frame type %d", ErrProtocol, f.typ)
	}
	return nil
}

// keepaliveLoop sends a ping every KeepaliveInterval and answers pings.
func (c *Conn) keepaliveLoop() {
	t := time.NewTicker(c.cfg.KeepaliveInterval)
	defer t.Stop()
	var b [8]byte
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			binary.BigEndian.PutUint64(b[:], uint64(time.Since(c.epoch)))
			if c.writeFrame(typePing, b[:], nil, false) != nil {
				return
			}
			c.keepalives.Add(1)
		case <-c.pongReq:
			binary.BigEndian.PutUint64(b[:], c.pongTS.Load())
			if c.writeFrame(typePong, b[:], nil, false) != nil {
				return
			}
		}
	}
}
