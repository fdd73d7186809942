package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skywire-mesh/skywire/internal/bufpool"
)

// Path sends one packet towards the peer. Delivery is unreliable: packets
// may be dropped, reordered or duplicated. SendPacket must not retain p
// after it returns. The session calls SendPacket from one goroutine at a
// time; it should not block for long.
type Path interface {
	SendPacket(p []byte) error
}

// HeadroomPath is a Path that puts a header of its own in front of each
// packet. The session seals every packet behind Headroom free bytes and
// calls SendPacketHeadroom(buf) instead of SendPacket: buf[:Headroom()]
// is the path's to fill, buf[Headroom():] is the packet. It saves the
// path a copy of each packet. The rules of SendPacket apply to buf.
type HeadroomPath interface {
	Path
	Headroom() int
	SendPacketHeadroom(buf []byte) error
}

// Cipher seals and opens whole packets. It owns nonces and replay
// protection. Seal appends the sealed packet to dst; Open appends the
// plaintext to dst (it must not return memory aliasing packet, which the
// session does not own). Overhead is the bytes Seal adds. Seal is called from one goroutine at a time, and so is
// Open, but Seal and Open may run concurrently.
type Cipher interface {
	Seal(dst, plaintext []byte) []byte
	Open(dst, packet []byte) ([]byte, error)
	Overhead() int
}

// Errors returned by sessions and streams.
var (
	// ErrSessionClosed: Close was called on this side.
	ErrSessionClosed = fmt.Errorf("session closed: %w", net.ErrClosed)
	// ErrPeerClosed: the peer closed the session.
	ErrPeerClosed = fmt.Errorf("session closed by peer: %w", net.ErrClosed)
	// ErrIdleTimeout: nothing arrived from the peer for Config.IdleTimeout.
	ErrIdleTimeout = fmt.Errorf("session idle timeout: %w", net.ErrClosed)
	// ErrProtocol: the peer violated the protocol (flow control, stream IDs, final sizes).
	ErrProtocol = errors.New("session protocol violation")
	// ErrStreamReset: the peer reset its side of the stream, asked us to
	// stop sending, or refused the stream.
	ErrStreamReset = errors.New("stream reset by peer")
	// ErrStreamClosed: the stream (or its write side) was closed locally.
	ErrStreamClosed = fmt.Errorf("stream closed: %w", net.ErrClosed)
	// ErrDatagramTooLarge: the datagram does not fit in one packet; see MaxDatagramSize.
	ErrDatagramTooLarge = errors.New("datagram too large")
)

// Close codes carried in CLOSE frames.
const (
	closeCodeNormal   = 0
	closeCodeProtocol = 1
	closeCodeIdle     = 2
)

const (
	// maxAckDelay is how long a received ack-eliciting packet may wait for
	// its acknowledgement.
	maxAckDelay = 5 * time.Millisecond
	// ackRangesSent bounds the ranges put into one ACK frame.
	ackRangesSent = 32
	// pnRangesKept bounds the received packet-number ranges remembered;
	// older packets are dropped as too old.
	pnRangesKept = 64
	// packetThreshold is the reordering threshold for declaring loss.
	packetThreshold = 3
	initialRTT      = 100 * time.Millisecond
	maxRTO          = 10 * time.Second
	maxRTOBackoff   = 6
	// streamFrameMax is an upper bound on a STREAM frame header.
	streamFrameMax = 1 + 2*maxVarintLen + 3
)

// Stats is a snapshot of a session's counters.
type Stats struct {
	PacketsSent      uint64 // packets handed to the path
	PacketsReceived  uint64 // packets accepted
	PacketsDropped   uint64 // packets that failed to open or decode, duplicates, too old
	BytesSent        uint64 // sealed bytes handed to the path
	BytesReceived    uint64 // sealed bytes of accepted packets
	Retransmits      uint64 // packets declared lost whose frames were queued again
	DatagramsDropped uint64 // received datagrams dropped because the queue was full
	StreamsRefused   uint64 // streams the peer opened beyond MaxStreams, reset
	SmoothedRTT      time.Duration
	RTTVariance      time.Duration
	CongestionWindow int // bytes
	BytesInFlight    int
	OpenStreams      int
}

type pathBox struct{ p Path }

// sentFrame records a retransmittable frame of a sent packet.
type sentFrame struct {
	typ byte
	fin bool
	st  *Stream
	off uint64
	n   int
}

type sentPacket struct {
	pn     uint64
	sent   time.Time
	size   int
	done   bool // acknowledged or declared lost
	frames []sentFrame
}

// Session is one end of an end-to-end session carrying streams and
// datagrams over a Path. All methods are safe for concurrent use.
type Session struct {
	cfg       Config
	log       *slog.Logger
	cipher    Cipher
	initiator bool
	maxPlain  int // largest plaintext packet
	maxDgram  int // largest datagram payload (DatagramMTU)
	path      atomic.Pointer[pathBox]

	wake  chan struct{} // cap 1: something to send
	dying chan struct{} // closed when the session ends
	done  chan struct{} // closed when the run loop has exited

	packetsSent, packetsReceived, packetsDropped  atomic.Uint64
	bytesSent, bytesReceived                      atomic.Uint64
	retransmits, datagramsDropped, streamsRefused atomic.Uint64

	// recvMu serialises HandlePacket.
	recvMu  sync.Mutex
	openBuf []byte
	rframe  frame

	// sendMu serialises packet building, sealing and sending.
	sendMu   sync.Mutex
	plainBuf []byte
	sealBuf  []byte
	ackBuf   []ackRange

	mu         sync.Mutex
	err        error // why the session ended; nil while alive
	closeCode  uint64
	notifyPeer bool // send CLOSE on the way out

	streams     map[uint64]*Stream
	nextLocalID uint64
	nextPeerID  uint64
	numLocal    int
	numPeer     int
	acceptQ     []*Stream
	acceptCh    chan struct{} // cap 1
	slotCh      chan struct{} // cap 1: a local stream slot freed
	sendQ       []*Stream     // streams with data to send
	ctrlQ       []*Stream     // streams with control frames to send

	dgramQ     [][]byte
	dgramBytes int           // payload bytes in dgramQ, at most maxQueuedDatagramBytes
	dgramCh    chan struct{} // cap 1
	// dgramOut are the datagrams of the packet being handled, for
	// Config.OnDatagram; guarded by recvMu (and by mu while it is held).
	dgramOut [][]byte

	// Receive-side packet state.
	recvPNs         rangeSet
	pnFloor         uint64 // packets below this are too old
	largestRecvTime time.Time
	ackPending      int  // ack-eliciting packets not yet acknowledged
	ackNow          bool // acknowledge without delay
	ackAt           time.Time
	haveNewAck      bool // something received since the last ACK frame
	lastRecv        time.Time

	// Send-side loss recovery and congestion control.
	nextPN         uint64
	inflight       []*sentPacket // ordered by packet number
	freePackets    []*sentPacket
	bytesInFlight  int
	largestAcked   uint64
	haveAcked      bool
	srtt, rttvar   time.Duration
	latestRTT      time.Duration
	haveRTT        bool
	rtoBackoff     uint
	lastEliciting  time.Time // last ack-eliciting packet sent
	lossTime       time.Time
	cwnd, ssthresh int
	recoveryStart  time.Time
	pingPending    bool

	// Connection-level flow control.
	sendConnMax      uint64 // peer's limit on the sum of our stream offsets
	sendConnUsed     uint64
	recvConnMax      uint64 // our limit for the peer
	recvConnHighest  uint64 // sum of highest offsets received per stream
	recvConnConsumed uint64 // sum of bytes read or discarded
	maxDataPending   bool
}

// New starts a session over path. initiator selects the stream ID space:
// the initiator opens odd IDs, the responder even ones. The caller feeds
// arriving packets to HandlePacket and must call Close to release the
// session's goroutine.
func New(cfg Config, path Path, c Cipher, initiator bool) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new session: %w", err)
	}
	if path == nil || c == nil {
		return nil, fmt.Errorf("new session: %w: nil path or cipher", ErrInvalidConfig)
	}
	cfg = cfg.withDefaults()
	maxPlain := cfg.MTU - c.Overhead()
	if maxPlain < minMTU/2 {
		return nil, fmt.Errorf("new session: %w: MTU %d leaves %d bytes after cipher overhead", ErrInvalidConfig, cfg.MTU, maxPlain)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := time.Now()
	s := &Session{
		cfg:           cfg,
		log:           log,
		cipher:        c,
		initiator:     initiator,
		maxPlain:      maxPlain,
		maxDgram:      cfg.DatagramMTU - c.Overhead() - 1 - maxVarintLen - 1 - 3,
		wake:          make(chan struct{}, 1),
		dying:         make(chan struct{}),
		done:          make(chan struct{}),
		streams:       make(map[uint64]*Stream),
		acceptCh:      make(chan struct{}, 1),
		slotCh:        make(chan struct{}, 1),
		dgramCh:       make(chan struct{}, 1),
		plainBuf:      make([]byte, 0, maxPlain),
		lastRecv:      now,
		lastEliciting: now,
		cwnd:          initialCwnd(cfg.MTU),
		ssthresh:      maxCwnd(cfg),
		sendConnMax:   initialSessionWindow,
		recvConnMax:   initialSessionWindow,
	}
	if initiator {
		s.nextLocalID, s.nextPeerID = 1, 2
	} else {
		s.nextLocalID, s.nextPeerID = 2, 1
	}
	if cfg.SessionWindow > initialSessionWindow {
		s.recvConnMax = uint64(cfg.SessionWindow)
		s.maxDataPending = true
	}
	s.path.Store(&pathBox{path})
	go s.run()
	s.wakeup()
	return s, nil
}

func initialCwnd(mtu int) int { return max(10*mtu, 128<<10) }
func minCwnd(mtu int) int     { return 2 * mtu }
func maxCwnd(cfg Config) int  { return 2 * cfg.SessionWindow }

// MaxDatagramSize is the largest payload SendDatagram accepts.
func (s *Session) MaxDatagramSize() int { return s.maxDgram }

// Done is closed when the session has ended and its goroutine has exited.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended, or nil while it is alive.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the session, notifies the peer with a CLOSE frame (best
// effort, unacknowledged) and waits for the session's goroutine to exit.
// Pending stream data is discarded: close or half-close streams and wait
// for the peer first for a graceful end. Close returns nil, or the reason
// if the session had already ended otherwise (idle timeout, peer close,
// protocol violation).
func (s *Session) Close() error {
	s.mu.Lock()
	already := s.err
	s.shutdownLocked(ErrSessionClosed, closeCodeNormal, true)
	s.mu.Unlock()
	<-s.done
	if already != nil && !errors.Is(already, ErrSessionClosed) {
		return already
	}
	return nil
}

// shutdownLocked ends the session with err (the first reason wins).
func (s *Session) shutdownLocked(err error, code uint64, notify bool) {
	if s.err != nil {
		return
	}
	s.err = err
	s.closeCode = code
	s.notifyPeer = notify
	close(s.dying)
	if !errors.Is(err, ErrSessionClosed) {
		s.log.Debug("session ended", "err", err)
	}
}

func (s *Session) protocolErrorLocked(format string, args ...any) {
	err := fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
	s.log.Warn("closing session", "err", err)
	s.shutdownLocked(err, closeCodeProtocol, true)
}

func (s *Session) wakeup() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// SetPath replaces the route to the peer and at once resends everything
// not yet acknowledged over it. Congestion state restarts from the
// initial window; the RTT estimate is kept.
func (s *Session) SetPath(p Path) {
	if p == nil {
		return
	}
	s.path.Store(&pathBox{p})
	s.mu.Lock()
	for _, sp := range s.inflight {
		if !sp.done {
			s.declareLostLocked(sp)
		}
	}
	s.trimInflightLocked()
	s.cwnd = initialCwnd(s.cfg.MTU)
	s.ssthresh = maxCwnd(s.cfg)
	s.recoveryStart = time.Now()
	s.rtoBackoff = 0
	s.lossTime = time.Time{}
	s.pingPending = true
	if s.haveNewAck {
		s.ackNow = true
	}
	s.mu.Unlock()
	s.wakeup()
}

// Stats returns a snapshot of the session's counters.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	st := Stats{
		SmoothedRTT:      s.srtt,
		RTTVariance:      s.rttvar,
		CongestionWindow: s.cwnd,
		BytesInFlight:    s.bytesInFlight,
		OpenStreams:      len(s.streams),
	}
	s.mu.Unlock()
	st.PacketsSent = s.packetsSent.Load()
	st.PacketsReceived = s.packetsReceived.Load()
	st.PacketsDropped = s.packetsDropped.Load()
	st.BytesSent = s.bytesSent.Load()
	st.BytesReceived = s.bytesReceived.Load()
	st.Retransmits = s.retransmits.Load()
	st.DatagramsDropped = s.datagramsDropped.Load()
	st.StreamsRefused = s.streamsRefused.Load()
	return st
}

// OpenStream opens a new stream, waiting for a free slot while
// Config.MaxStreams locally opened streams are open. The peer learns of
// the stream when the first frame for it arrives.
func (s *Session) OpenStream(ctx context.Context) (*Stream, error) {
	for {
		s.mu.Lock()
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return nil, fmt.Errorf("open stream: %w", err)
		}
		if s.numLocal < s.cfg.MaxStreams {
			id := s.nextLocalID
			s.nextLocalID += 2
			st := s.newStreamLocked(id)
			s.numLocal++
			s.mu.Unlock()
			s.wakeup()
			return st, nil
		}
		s.mu.Unlock()
		select {
		case <-s.slotCh:
		case <-s.dying:
		case <-ctx.Done():
			return nil, fmt.Errorf("open stream: %w", ctx.Err())
		}
	}
}

// AcceptStream returns the next stream opened by the peer.
func (s *Session) AcceptStream(ctx context.Context) (*Stream, error) {
	return receive(ctx, s, "accept stream", &s.acceptQ, s.acceptCh, nil)
}

// receive pops the head of *q, a queue guarded by s.mu that is signalled
// on ch, waiting for one until the session dies or ctx is done; took, if
// not nil, runs under s.mu with the item popped.
func receive[T any](ctx context.Context, s *Session, op string, q *[]T, ch chan struct{}, took func(T)) (T, error) {
	var zero T
	for {
		s.mu.Lock()
		if err := s.err; err != nil {
			s.mu.Unlock()
			return zero, fmt.Errorf("%s: %w", op, err)
		}
		if len(*q) > 0 {
			v := (*q)[0]
			(*q)[0] = zero
			*q = (*q)[1:]
			if took != nil {
				took(v)
			}
			if len(*q) > 0 {
				notify(ch)
			}
			s.mu.Unlock()
			return v, nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-s.dying:
		case <-ctx.Done():
			return zero, fmt.Errorf("%s: %w", op, ctx.Err())
		}
	}
}

// SendDatagram sends b as one unreliable, unordered datagram. Datagrams
// bypass congestion control and are never retransmitted.
func (s *Session) SendDatagram(b []byte) error { return s.SendDatagramPrefixed(nil, b) }

// SendDatagramPrefixed sends prefix followed by b as one datagram: what
// SendDatagram(append(prefix, b...)) sends, without that copy.
func (s *Session) SendDatagramPrefixed(prefix, b []byte) error {
	if n := len(prefix) + len(b); n > s.MaxDatagramSize() {
		return fmt.Errorf("send datagram of %d bytes (max %d): %w", n, s.MaxDatagramSize(), ErrDatagramTooLarge)
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return fmt.Errorf("send datagram: %w", err)
	}
	pn := s.nextPN
	s.nextPN++
	s.mu.Unlock()
	// plainBuf is sendMu's: the copy needs no session lock.
	p := appendHeader(s.plainBuf[:0], pn)
	p = append(p, frameTypeDatagram)
	p = appendUvarint(p, uint64(len(prefix)+len(b)))
	p = append(p, prefix...)
	p = append(p, b...)
	s.plainBuf = p[:0]
	if err := s.sendPlainLocked(p); err != nil {
		return fmt.Errorf("send datagram: %w", err)
	}
	return nil
}

// ReceiveDatagram returns the next datagram from the peer. Its bytes are
// the caller's; a caller done with them may hand them back with
// ReuseDatagram.
func (s *Session) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	return receive(ctx, s, "receive datagram", &s.dgramQ, s.dgramCh, func(d []byte) { s.dgramBytes -= len(d) })
}

// sendPlainLocked seals and sends one packet; s.sendMu must be held.
func (s *Session) sendPlainLocked(p []byte) error {
	path := s.path.Load().p
	if hp, ok := path.(HeadroomPath); ok {
		h := hp.Headroom()
		buf := s.cipher.Seal(slices.Grow(s.sealBuf[:0], h)[:h], p)
		s.sealBuf = buf[:0]
		s.packetsSent.Add(1)
		s.bytesSent.Add(uint64(len(buf) - h))
		if err := hp.SendPacketHeadroom(buf); err != nil {
			return fmt.Errorf("send packet: %w", err)
		}
		return nil
	}
	sealed := s.cipher.Seal(s.sealBuf[:0], p)
	s.sealBuf = sealed[:0]
	s.packetsSent.Add(1)
	s.bytesSent.Add(uint64(len(sealed)))
	if err := path.SendPacket(sealed); err != nil {
		return fmt.Errorf("send packet: %w", err)
	}
	return nil
}

// run is the session's goroutine: it sends packets and drives timers.
func (s *Session) run() {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.onTimers(time.Now())
		s.flush()
		select {
		case <-s.dying:
			s.sendClose()
			return
		default:
		}
		s.mu.Lock()
		next := s.nextTimerLocked()
		s.mu.Unlock()
		timer.Reset(max(time.Until(next), 0))
		select {
		case <-s.wake:
		case <-timer.C:
		case <-s.dying:
		}
	}
}

// sendClose sends a CLOSE frame if the session ended locally.
func (s *Session) sendClose() {
	s.mu.Lock()
	notifyPeer, code := s.notifyPeer, s.closeCode
	reason := ""
	if s.err != nil {
		reason = s.err.Error()
	}
	pn := s.nextPN
	s.nextPN++
	s.mu.Unlock()
	if !notifyPeer {
		return
	}
	if n := min(maxReasonLen, s.maxPlain-1-maxVarintLen-1-2*maxVarintLen); len(reason) > n {
		reason = reason[:n]
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	p := appendHeader(s.plainBuf[:0], pn)
	p = appendFrame(p, &frame{typ: frameTypeClose, code: code, data: []byte(reason)})
	if err := s.sendPlainLocked(p); err != nil {
		s.log.Debug("sending close", "err", err)
	}
}

// nextTimerLocked returns when onTimers must run next.
func (s *Session) nextTimerLocked() time.Time {
	next := s.lastRecv.Add(s.cfg.IdleTimeout)
	next = minTime(next, s.lastEliciting.Add(s.cfg.KeepaliveInterval))
	if !s.ackAt.IsZero() {
		next = minTime(next, s.ackAt)
	}
	if !s.lossTime.IsZero() {
		next = minTime(next, s.lossTime)
	} else if s.bytesInFlight > 0 {
		next = minTime(next, s.lastEliciting.Add(s.rtoLocked()))
	}
	return next
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (s *Session) rtoLocked() time.Duration {
	rto := initialRTT * 2
	if s.haveRTT {
		rto = s.srtt + max(4*s.rttvar, time.Millisecond) + maxAckDelay
	}
	rto = max(rto, s.cfg.MinRTO)
	rto <<= s.rtoBackoff
	return min(rto, maxRTO)
}

// onTimers handles idle timeout, loss timer, RTO, keepalive and delayed ACKs.
func (s *Session) onTimers(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	if now.Sub(s.lastRecv) >= s.cfg.IdleTimeout {
		s.shutdownLocked(ErrIdleTimeout, closeCodeIdle, true)
		return
	}
	if !s.lossTime.IsZero() && !now.Before(s.lossTime) {
		s.detectLossLocked(now)
	} else if s.lossTime.IsZero() && s.bytesInFlight > 0 && now.Sub(s.lastEliciting) >= s.rtoLocked() {
		// Retransmission timeout: everything in flight is presumed lost.
		for _, sp := range s.inflight {
			if !sp.done {
				s.declareLostLocked(sp)
			}
		}
		s.trimInflightLocked()
		s.ssthresh = max(s.cwnd/2, minCwnd(s.cfg.MTU))
		s.cwnd = minCwnd(s.cfg.MTU)
		s.recoveryStart = now
		if s.rtoBackoff < maxRTOBackoff {
			s.rtoBackoff++
		}
		s.pingPending = true // probe even if the lost packets carried nothing to resend
		s.lastEliciting = now
	}
	if now.Sub(s.lastEliciting) >= s.cfg.KeepaliveInterval {
		s.pingPending = true
	}
	if !s.ackAt.IsZero() && !now.Before(s.ackAt) {
		s.ackNow = true
	}
}

// flush sends packets until there is nothing left that may be sent now.
func (s *Session) flush() {
	for {
		s.sendMu.Lock()
		s.mu.Lock()
		if s.err != nil {
			s.mu.Unlock()
			s.sendMu.Unlock()
			return
		}
		p, ok := s.buildPacketLocked(time.Now())
		s.mu.Unlock()
		if !ok {
			s.sendMu.Unlock()
			return
		}
		err := s.sendPlainLocked(p)
		s.sendMu.Unlock()
		if err != nil {
			// The packet is tracked; loss recovery resends its frames.
			s.log.Debug("path send failed", "err", err)
		}
	}
}

// buildPacketLocked assembles the next packet into s.plainBuf. It returns
// false when there is nothing to send. Both s.sendMu and s.mu are held.
func (s *Session) buildPacketLocked(now time.Time) ([]byte, bool) {
	pn := s.nextPN
	b := appendHeader(s.plainBuf[:0], pn)
	limit := s.maxPlain
	withAck := s.haveNewAck && (s.ackNow || s.ackPending > 0 || s.pingPending || len(s.ctrlQ) > 0 ||
		s.maxDataPending || (len(s.sendQ) > 0 && s.bytesInFlight < s.cwnd))
	if withAck {
		b = s.appendAckLocked(b, now)
	}
	sp := s.getSentPacketLocked()
	eliciting := false
	if s.maxDataPending {
		b = appendFrame(b, &frame{typ: frameTypeMaxData, value: s.recvConnMax})
		sp.frames = append(sp.frames, sentFrame{typ: frameTypeMaxData})
		s.maxDataPending = false
		eliciting = true
	}
	// Control frames are small and not held back by the congestion window.
	for len(s.ctrlQ) > 0 && limit-len(b) >= 3*maxVarintLen+1 {
		st := s.ctrlQ[0]
		var more bool
		b, more = st.appendControlLocked(b, limit, sp)
		if more {
			break
		}
		st.ctrlQueued = false
		n := copy(s.ctrlQ, s.ctrlQ[1:])
		s.ctrlQ[n] = nil
		s.ctrlQ = s.ctrlQ[:n]
	}
	if len(sp.frames) > 0 {
		eliciting = true
	}
	if s.bytesInFlight < s.cwnd {
		for len(s.sendQ) > 0 && limit-len(b) > streamFrameMax {
			st := s.sendQ[0]
			nf := len(sp.frames)
			b = st.appendDataLocked(b, limit, sp)
			if len(sp.frames) > nf {
				eliciting = true
			}
			// Round robin: a stream with more to send goes to the back
			// of the queue. The queue is compacted in place so that a
			// busy stream does not allocate.
			n := copy(s.sendQ, s.sendQ[1:])
			if progressed := len(sp.frames) > nf; st.hasDataLocked() && progressed {
				s.sendQ[n] = st
			} else {
				// Done, or (defensively) unable to progress: the stream
				// is queued again by the event that unblocks it.
				st.queued = false
				s.sendQ[n] = nil
				s.sendQ = s.sendQ[:n]
			}
		}
		if s.pingPending && !eliciting {
			b = append(b, frameTypePing)
			eliciting = true
		}
		if eliciting {
			s.pingPending = false
		}
	}
	if !eliciting && !withAck {
		s.putSentPacketLocked(sp)
		return nil, false
	}
	if !eliciting && !(s.ackNow || (!s.ackAt.IsZero() && !now.Before(s.ackAt))) {
		// An ACK alone is not worth a packet yet; the delayed-ACK timer
		// or the next ack-eliciting packet will carry it.
		s.putSentPacketLocked(sp)
		return nil, false
	}
	s.nextPN++
	if withAck {
		s.haveNewAck = false
		s.ackPending = 0
		s.ackNow = false
		s.ackAt = time.Time{}
	}
	if eliciting {
		sp.pn = pn
		sp.sent = now
		sp.size = len(b) + s.cipher.Overhead()
		s.inflight = append(s.inflight, sp)
		s.bytesInFlight += sp.size
		s.lastEliciting = now
	} else {
		s.putSentPacketLocked(sp)
	}
	s.plainBuf = b[:0]
	return b, true
}

// appendAckLocked appends an ACK frame for the received packet numbers.
func (s *Session) appendAckLocked(b []byte, now time.Time) []byte {
	// Keep the ACK frame within a quarter of the packet: each range costs
	// at most two varints.
	maxRanges := max(1, min(ackRangesSent, (s.maxPlain/4-4*maxVarintLen)/(2*maxVarintLen)))
	r := s.ackBuf[:0]
	for i := s.recvPNs.len() - 1; i >= 0 && len(r) < maxRanges; i-- {
		sp := s.recvPNs.r[i]
		r = append(r, ackRange{sp.start, sp.end - 1})
	}
	s.ackBuf = r
	delay := uint64(now.Sub(s.largestRecvTime) / time.Microsecond)
	b = append(b, frameTypeAck)
	return appendAck(b, r, delay)
}

func (s *Session) getSentPacketLocked() *sentPacket {
	if n := len(s.freePackets); n > 0 {
		sp := s.freePackets[n-1]
		s.freePackets = s.freePackets[:n-1]
		return sp
	}
	return &sentPacket{}
}

func (s *Session) putSentPacketLocked(sp *sentPacket) {
	for i := range sp.frames {
		sp.frames[i] = sentFrame{}
	}
	*sp = sentPacket{frames: sp.frames[:0]}
	if len(s.freePackets) < 1024 {
		s.freePackets = append(s.freePackets, sp)
	}
}

// HandlePacket processes one sealed packet from the peer. It does not
// retain p. Packets that fail to open or decode are dropped and counted;
// a well-formed packet that violates the protocol ends the session.
func (s *Session) HandlePacket(p []byte) {
	select {
	case <-s.dying:
		return
	default:
	}
	defer s.recoverPanic()
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	plain, err := s.cipher.Open(s.openBuf[:0], p)
	if err != nil {
		s.packetsDropped.Add(1)
		s.log.Debug("dropping packet", "err", fmt.Errorf("open packet: %w", err))
		return
	}
	s.openBuf = plain[:0]
	pn, payload, err := parseHeader(plain)
	if err == nil {
		err = validateFrames(payload, &s.rframe)
	}
	if err != nil {
		s.packetsDropped.Add(1)
		s.log.Debug("dropping packet", "err", err)
		return
	}
	s.dgramOut = s.dgramOut[:0]
	s.handleFrames(pn, payload, len(p))
	// Datagrams for OnDatagram point into openBuf, which recvMu keeps
	// until they are handed over.
	for i, d := range s.dgramOut {
		s.cfg.OnDatagram(d)
		s.dgramOut[i] = nil
	}
	s.dgramOut = s.dgramOut[:0]
}

// handleFrames acts on the frames of packet pn (size bytes on the wire)
// under the session's lock. s.recvMu is held.
func (s *Session) handleFrames(pn uint64, payload []byte, size int) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	if pn < s.pnFloor || s.recvPNs.contains(pn) {
		s.packetsDropped.Add(1)
		return
	}
	s.packetsReceived.Add(1)
	s.bytesReceived.Add(uint64(size))
	s.lastRecv = now
	outOfOrder := !s.recvPNs.empty() && pn != s.recvPNs.last().end
	if s.recvPNs.empty() || pn >= s.recvPNs.last().end {
		s.largestRecvTime = now
	}
	s.recvPNs.add(pn, pn+1)
	if s.recvPNs.len() > pnRangesKept {
		s.pnFloor = s.recvPNs.r[s.recvPNs.len()-pnRangesKept].start
		s.recvPNs.removeBelow(s.pnFloor)
	}
	s.haveNewAck = true
	eliciting := false
	f := &s.rframe
	for len(payload) > 0 && s.err == nil {
		n, _ := decodeFrame(payload, f) // validated above
		payload = payload[n:]
		if f.ackEliciting() {
			eliciting = true
		}
		s.handleFrameLocked(f, now)
	}
	if eliciting {
		s.ackPending++
		if s.ackPending >= 2 || outOfOrder {
			s.ackNow = true
		} else if s.ackAt.IsZero() {
			s.ackAt = now.Add(maxAckDelay)
		}
	}
	if s.ackNow || len(s.sendQ) > 0 || len(s.ctrlQ) > 0 || s.maxDataPending || !s.ackAt.IsZero() {
		s.wakeup()
	}
}

// recoverPanic is defence in depth: a bug triggered by a peer's packet
// ends this session with a logged reason instead of the process.
func (s *Session) recoverPanic() {
	r := recover()
	if r == nil {
		return
	}
	err := fmt.Errorf("%w: internal error handling packet: %v", ErrProtocol, r)
	s.log.Error("closing session", "err", err)
	s.mu.Lock()
	s.shutdownLocked(err, closeCodeProtocol, true)
	s.mu.Unlock()
}

// validateFrames decodes every frame of a payload without acting on it.
func validateFrames(payload []byte, f *frame) error {
	if len(payload) == 0 {
		return fmt.Errorf("%w: no frames", ErrMalformedPacket)
	}
	for len(payload) > 0 {
		n, err := decodeFrame(payload, f)
		if err != nil {
			return err
		}
		payload = payload[n:]
	}
	return nil
}

func (s *Session) handleFrameLocked(f *frame, now time.Time) {
	switch f.typ {
	case frameTypeAck:
		s.onAckLocked(f, now)
	case frameTypeMaxData:
		if f.value > s.sendConnMax {
			blocked := s.sendConnUsed >= s.sendConnMax
			s.sendConnMax = f.value
			if blocked {
				for _, st := range s.streams {
					st.queueDataLocked()
				}
			}
		}
	case frameTypeMaxStreamData, frameTypeResetStream, frameTypeStopSending, frameTypeStream, frameTypeStreamFin:
		st := s.streamForFrameLocked(f.streamID, f.typ)
		if st == nil {
			return
		}
		switch f.typ {
		case frameTypeMaxStreamData:
			st.onMaxStreamDataLocked(f.value)
		case frameTypeResetStream:
			st.onResetLocked(f.value)
		case frameTypeStopSending:
			st.onStopSendingLocked()
		default:
			st.onStreamDataLocked(f.offset, f.data, f.fin())
		}
	case frameTypeClose:
		err := ErrPeerClosed
		if f.code != closeCodeNormal || len(f.data) > 0 {
			err = fmt.Errorf("%w (code %d: %q)", ErrPeerClosed, f.code, f.data)
		}
		s.shutdownLocked(err, f.code, false)
	case frameTypeDatagram:
		if s.cfg.OnDatagram != nil {
			s.dgramOut = append(s.dgramOut, f.data) // handed over by HandlePacket
			return
		}
		if len(s.dgramQ) >= s.cfg.DatagramQueue || s.dgramBytes+len(f.data) > maxQueuedDatagramBytes {
			s.datagramsDropped.Add(1)
			return
		}
		b := dgramBufs.Get(len(f.data))
		copy(b, f.data)
		s.dgramQ = append(s.dgramQ, b)
		s.dgramBytes += len(f.data)
		notify(s.dgramCh)
	}
}

// isLocal reports whether id belongs to a stream this side opens.
func (s *Session) isLocal(id uint64) bool { return (id&1 == 1) == s.initiator }

// streamForFrameLocked returns the stream a frame refers to, opening peer
// streams implicitly, or nil if the stream is closed or the frame is a
// protocol violation (the session is then ended).
func (s *Session) streamForFrameLocked(id uint64, typ byte) *Stream {
	if st := s.streams[id]; st != nil {
		return st
	}
	if s.isLocal(id) {
		if id >= s.nextLocalID {
			s.protocolErrorLocked("frame %#x for stream %d we never opened", typ, id)
		}
		return nil
	}
	if id < s.nextPeerID {
		return nil // closed
	}
	if (id-s.nextPeerID)/2 >= uint64(max(2*s.cfg.MaxStreams, 4096)) {
		s.protocolErrorLocked("stream %d opens too many streams at once", id)
		return nil
	}
	var st *Stream
	for s.nextPeerID <= id {
		st = s.newStreamLocked(s.nextPeerID)
		s.nextPeerID += 2
		if s.numPeer >= s.cfg.MaxStreams {
			st.refuseLocked()
			s.streamsRefused.Add(1)
			if s.cfg.StreamRefused != nil {
				s.cfg.StreamRefused()
			}
			continue
		}
		s.numPeer++
		s.acceptQ = append(s.acceptQ, st)
		notify(s.acceptCh)
	}
	if st.removed {
		return nil
	}
	return st
}

// newStreamLocked creates and registers stream id.
func (s *Session) newStreamLocked(id uint64) *Stream {
	st := &Stream{
		s:       s,
		id:      id,
		readCh:  make(chan struct{}, 1),
		writeCh: make(chan struct{}, 1),
		sendMax: initialStreamWindow,
		recvMax: initialStreamWindow,
	}
	if s.cfg.StreamWindow > initialStreamWindow {
		st.recvMax = uint64(s.cfg.StreamWindow)
		st.maxStreamDataPending = true
		st.queueCtrlLocked()
	}
	s.streams[id] = st
	return st
}

// removeStreamLocked forgets a stream both of whose sides are finished.
func (s *Session) removeStreamLocked(st *Stream) {
	if st.removed {
		return
	}
	st.removed = true
	delete(s.streams, st.id)
	if st.refused {
		return
	}
	if s.isLocal(st.id) {
		s.numLocal--
		notify(s.slotCh)
	} else {
		s.numPeer--
	}
}

// onAckLocked processes an ACK frame.
func (s *Session) onAckLocked(f *frame, now time.Time) {
	largest := f.ranges[0].hi
	if largest >= s.nextPN {
		s.protocolErrorLocked("ack of unsent packet %d", largest)
		return
	}
	newlyAcked := false
	for _, r := range f.ranges {
		i := s.searchInflightLocked(r.lo)
		for ; i < len(s.inflight) && s.inflight[i].pn <= r.hi; i++ {
			sp := s.inflight[i]
			if sp.done {
				continue
			}
			newlyAcked = true
			if sp.pn == largest {
				s.updateRTTLocked(now.Sub(sp.sent), time.Duration(min(f.value, uint64(maxRTO/time.Microsecond)))*time.Microsecond)
			}
			s.onPacketAckedLocked(sp)
		}
	}
	if !s.haveAcked || largest > s.largestAcked {
		s.largestAcked = largest
		s.haveAcked = true
	}
	if newlyAcked {
		s.rtoBackoff = 0
		s.detectLossLocked(now)
		s.trimInflightLocked()
	}
}

// searchInflightLocked returns the index of the first in-flight packet
// numbered pn or higher.
func (s *Session) searchInflightLocked(pn uint64) int {
	return sort.Search(len(s.inflight), func(i int) bool { return s.inflight[i].pn >= pn })
}

// updateRTTLocked folds in an RTT sample (RFC 6298, with the peer's ACK
// delay subtracted as in RFC 9002).
func (s *Session) updateRTTLocked(sample, ackDelay time.Duration) {
	if sample <= 0 {
		sample = time.Microsecond
	}
	s.latestRTT = sample
	if ackDelay < sample {
		sample -= min(ackDelay, maxAckDelay)
	}
	if !s.haveRTT {
		s.srtt = sample
		s.rttvar = sample / 2
		s.haveRTT = true
		return
	}
	d := s.srtt - sample
	if d < 0 {
		d = -d
	}
	s.rttvar = (3*s.rttvar + d) / 4
	s.srtt = (7*s.srtt + sample) / 8
}

func (s *Session) onPacketAckedLocked(sp *sentPacket) {
	sp.done = true
	s.bytesInFlight -= sp.size
	for i := range sp.frames {
		fr := &sp.frames[i]
		switch fr.typ {
		case frameTypeStream:
			fr.st.onDataAckedLocked(fr.off, fr.n, fr.fin)
		case frameTypeResetStream:
			fr.st.onResetAckedLocked()
		}
	}
	// Congestion control: NewReno (RFC 9002 section 7). The window does
	// not grow while the sender is limited by the application or flow
	// control rather than by the window (RFC 7661).
	if !sp.sent.After(s.recoveryStart) || 2*(s.bytesInFlight+sp.size) < s.cwnd {
		return
	}
	if s.cwnd < s.ssthresh {
		s.cwnd += sp.size
	} else {
		s.cwnd += s.cfg.MTU * sp.size / s.cwnd
	}
	s.cwnd = min(s.cwnd, maxCwnd(s.cfg))
}

// detectLossLocked declares packets lost by reordering threshold or time
// threshold, and arms the loss timer for those not yet lost.
func (s *Session) detectLossLocked(now time.Time) {
	s.lossTime = time.Time{}
	if !s.haveAcked {
		return
	}
	rtt := max(s.srtt, s.latestRTT)
	if !s.haveRTT {
		rtt = initialRTT
	}
	delay := max(rtt*9/8, time.Millisecond)
	lostBefore := now.Add(-delay)
	for _, sp := range s.inflight {
		if sp.pn > s.largestAcked {
			break
		}
		if sp.done {
			continue
		}
		if !sp.sent.After(lostBefore) || s.largestAcked >= sp.pn+packetThreshold {
			s.declareLostLocked(sp)
			continue
		}
		if t := sp.sent.Add(delay); s.lossTime.IsZero() || t.Before(s.lossTime) {
			s.lossTime = t
		}
	}
	s.trimInflightLocked()
}

// declareLostLocked queues the frames of a lost packet for retransmission
// and reacts to congestion once per round trip.
func (s *Session) declareLostLocked(sp *sentPacket) {
	sp.done = true
	s.bytesInFlight -= sp.size
	s.retransmits.Add(1)
	for i := range sp.frames {
		fr := &sp.frames[i]
		switch fr.typ {
		case frameTypeStream:
			fr.st.onDataLostLocked(fr.off, fr.n, fr.fin)
		case frameTypeMaxData:
			s.maxDataPending = true
		case frameTypeMaxStreamData, frameTypeResetStream, frameTypeStopSending:
			fr.st.onControlLostLocked(fr.typ)
		}
	}
	if sp.sent.After(s.recoveryStart) {
		s.recoveryStart = time.Now()
		s.cwnd = max(s.cwnd/2, minCwnd(s.cfg.MTU))
		s.ssthresh = s.cwnd
	}
}

// trimInflightLocked drops finished packets from the head of the queue.
func (s *Session) trimInflightLocked() {
	i := 0
	for i < len(s.inflight) && s.inflight[i].done {
		s.putSentPacketLocked(s.inflight[i])
		s.inflight[i] = nil
		i++
	}
	if i > 0 {
		n := copy(s.inflight, s.inflight[i:])
		clear(s.inflight[n:])
		s.inflight = s.inflight[:n]
	}
	if len(s.inflight) == 0 {
		s.bytesInFlight = 0
	}
}

// dgramBufs holds the buffers received datagrams are copied into (the
// packet they came in is opened into a buffer the next packet reuses).
// At most 32 free buffers per size class (≤ 4 MiB in all) stay in it.
var dgramBufs = bufpool.New(32)

// ReuseDatagram hands back b, a datagram ReceiveDatagram returned, so
// that a later datagram reuses its memory instead of allocating (up to
// 64 KiB). The caller must not use b afterwards; any other slice is
// ignored.
func ReuseDatagram(b []byte) { dgramBufs.Put(b) }
