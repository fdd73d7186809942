package session

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/skywire-mesh/skywire/internal/deadline"
)

// Reset states of a stream's send side.
const (
	resetNone = iota
	resetPending
	resetSent
	resetAcked
)

// STOP_SENDING states of a stream's receive side.
const (
	stopNone = iota
	stopPending
	stopSent
)

// Stream is a reliable, ordered, flow-controlled byte stream inside a
// session. It implements net.Conn. Close closes both directions: data
// already written is still delivered, followed by end-of-stream, and the
// peer is asked to stop sending. CloseWrite closes only the write side.
type Stream struct {
	s  *Session
	id uint64

	readMu  sync.Mutex // serialises Read
	writeMu sync.Mutex // serialises Write
	readCh  chan struct{}
	writeCh chan struct{}
	rdl     deadline.Deadline
	wdl     deadline.Deadline

	// Everything below is guarded by s.mu.
	queued     bool // in s.sendQ
	ctrlQueued bool // in s.ctrlQ
	removed    bool // forgotten by the session
	refused    bool // opened by the peer beyond MaxStreams
	closed     bool // Close called

	// Send side. sbuf holds bytes [sendBase, sendWritten).
	sbuf        ring
	sendBase    uint64 // lowest unacknowledged offset
	sendNext    uint64 // next offset never sent
	sendWritten uint64 // bytes written by the application
	sendMax     uint64 // peer's flow-control limit
	finQueued   bool   // no more writes; FIN at sendWritten
	finSent     bool
	finAcked    bool
	retx        rangeSet // lost ranges to send again
	acked       rangeSet // acknowledged ranges above sendBase
	resetState  int

	// Receive side. rbuf holds bytes from readOff up to recvHighest.
	rbuf                 ring
	readOff              uint64 // consumed by the application (or discarded)
	recvd                rangeSet
	recvHighest          uint64
	recvMax              uint64 // our flow-control limit for the peer
	finalSize            uint64
	finalKnown           bool
	recvReset            bool
	readClosed           bool // discard incoming data
	maxStreamDataPending bool
	stopState            int
}

var _ net.Conn = (*Stream)(nil)

// ID returns the stream ID: odd for streams the initiator opened.
func (st *Stream) ID() uint64 { return st.id }

// Addr is the placeholder address of a stream.
type Addr struct{ StreamID uint64 }

// Network returns "skywire-session".
func (Addr) Network() string { return "skywire-session" }

func (a Addr) String() string { return "stream:" + strconv.FormatUint(a.StreamID, 10) }

// LocalAddr returns a placeholder naming the stream.
func (st *Stream) LocalAddr() net.Addr { return Addr{st.id} }

// RemoteAddr returns a placeholder naming the stream.
func (st *Stream) RemoteAddr() net.Addr { return Addr{st.id} }

// SetDeadline sets both the read and write deadlines.
func (st *Stream) SetDeadline(t time.Time) error {
	st.rdl.Set(t)
	st.wdl.Set(t)
	return nil
}

// SetReadDeadline sets the deadline for Read; expired reads return
// os.ErrDeadlineExceeded.
func (st *Stream) SetReadDeadline(t time.Time) error {
	st.rdl.Set(t)
	return nil
}

// SetWriteDeadline sets the deadline for Write; expired writes return
// os.ErrDeadlineExceeded.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	st.wdl.Set(t)
	return nil
}

// Read reads stream data; it returns io.EOF after the peer's end of
// stream, ErrStreamReset if the peer reset the stream.
func (st *Stream) Read(p []byte) (int, error) {
	st.readMu.Lock()
	defer st.readMu.Unlock()
	s := st.s
	for {
		s.mu.Lock()
		n, err, update := st.readLocked(p)
		s.mu.Unlock()
		if update {
			s.wakeup()
		}
		if n > 0 || err != nil || len(p) == 0 {
			return n, err
		}
		select {
		case <-st.readCh:
		case <-s.dying:
		case <-st.rdl.Done():
			return 0, fmt.Errorf("read stream %d: %w", st.id, os.ErrDeadlineExceeded)
		}
	}
}

// readLocked copies available data into p. update reports that a window
// update was queued.
func (st *Stream) readLocked(p []byte) (n int, err error, update bool) {
	s := st.s
	switch {
	case st.closed:
		return 0, fmt.Errorf("read stream %d: %w", st.id, ErrStreamClosed), false
	case st.recvReset:
		return 0, fmt.Errorf("read stream %d: %w", st.id, ErrStreamReset), false
	}
	avail := st.recvd.contiguousFrom(st.readOff) - st.readOff
	if avail > 0 && len(p) > 0 {
		n = int(min(uint64(len(p)), avail))
		st.rbuf.readAt(0, p[:n])
		st.rbuf.advance(n)
		st.readOff += uint64(n)
		st.recvd.removeBelow(st.readOff)
		window := uint64(s.cfg.StreamWindow)
		if !st.finalKnown && st.recvMax-st.readOff <= window/2 {
			st.recvMax = st.readOff + window
			st.maxStreamDataPending = true
			st.queueCtrlLocked()
			update = true
		}
		if s.creditConsumedLocked(uint64(n)) {
			update = true
		}
		if st.finalKnown && st.readOff == st.finalSize {
			st.maybeRemoveLocked()
		}
		return n, nil, update
	}
	if st.finalKnown && st.readOff == st.finalSize {
		st.maybeRemoveLocked()
		return 0, io.EOF, false
	}
	if s.err != nil {
		return 0, fmt.Errorf("read stream %d: %w", st.id, s.err), false
	}
	return 0, nil, false
}

// creditConsumedLocked records n bytes consumed from the connection
// window and reports whether a MAX_DATA update was queued.
func (s *Session) creditConsumedLocked(n uint64) bool {
	s.recvConnConsumed += n
	window := uint64(s.cfg.SessionWindow)
	if s.recvConnMax-s.recvConnConsumed <= window/2 {
		s.recvConnMax = s.recvConnConsumed + window
		s.maxDataPending = true
		return true
	}
	return false
}

// Write writes p to the stream, blocking while the send buffer
// (Config.StreamWindow bytes not yet acknowledged) is full.
func (st *Stream) Write(p []byte) (int, error) {
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	s := st.s
	window := s.cfg.StreamWindow
	total := 0
	for total < len(p) {
		s.mu.Lock()
		var err error
		switch {
		case st.closed || st.finQueued:
			err = ErrStreamClosed
		case st.resetState != resetNone:
			err = ErrStreamReset
		case s.err != nil:
			err = s.err
		}
		if err != nil {
			s.mu.Unlock()
			return total, fmt.Errorf("write stream %d: %w", st.id, err)
		}
		used := int(st.sendWritten - st.sendBase)
		n := min(window-used, len(p)-total)
		if n > 0 {
			st.sbuf.ensure(used+n, used, window)
			st.sbuf.writeAt(used, p[total:total+n])
			st.sendWritten += uint64(n)
			st.queueDataLocked()
		}
		s.mu.Unlock()
		if n > 0 {
			total += n
			s.wakeup()
			continue
		}
		select {
		case <-st.writeCh:
		case <-s.dying:
		case <-st.wdl.Done():
			return total, fmt.Errorf("write stream %d: %w", st.id, os.ErrDeadlineExceeded)
		}
	}
	return total, nil
}

// CloseWrite ends the write side: the peer reads io.EOF after the data
// already written. Reading continues to work.
func (st *Stream) CloseWrite() error {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.resetState != resetNone {
		return fmt.Errorf("close write stream %d: %w", st.id, ErrStreamReset)
	}
	if s.err != nil {
		return fmt.Errorf("close write stream %d: %w", st.id, s.err)
	}
	if !st.finQueued {
		st.finQueued = true
		st.queueDataLocked()
		notify(st.writeCh)
		s.wakeup()
	}
	return nil
}

// Close closes both directions. Written data is still delivered and
// followed by end-of-stream; unread incoming data is discarded and the
// peer is asked to stop sending. Blocked Read and Write calls return
// ErrStreamClosed.
func (st *Stream) Close() error {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.closed {
		return nil
	}
	st.closed = true
	if st.resetState == resetNone && !st.finQueued {
		st.finQueued = true
		st.queueDataLocked()
	}
	if !st.recvDoneLocked() && !st.readClosed {
		st.readClosed = true
		st.discardLocked()
		if !st.recvDoneLocked() {
			st.stopState = stopPending
			st.maxStreamDataPending = false
			st.queueCtrlLocked()
		}
	}
	notify(st.readCh)
	notify(st.writeCh)
	st.maybeRemoveLocked()
	s.wakeup()
	return nil
}

// discardLocked drops buffered incoming data in read-closed mode.
func (st *Stream) discardLocked() {
	end := st.recvd.contiguousFrom(st.readOff)
	if end > st.readOff {
		st.s.creditConsumedLocked(end - st.readOff)
		st.readOff = end
		st.recvd.removeBelow(end)
	}
	st.rbuf = ring{}
}

func (st *Stream) recvDoneLocked() bool {
	return st.recvReset || (st.finalKnown && st.readOff == st.finalSize)
}

func (st *Stream) sendDoneLocked() bool {
	return st.resetState == resetAcked || (st.finAcked && st.sendBase == st.sendWritten)
}

func (st *Stream) maybeRemoveLocked() {
	if st.sendDoneLocked() && st.recvDoneLocked() {
		st.s.removeStreamLocked(st)
	}
}

// refuseLocked rejects a peer stream opened beyond MaxStreams.
func (st *Stream) refuseLocked() {
	st.refused = true
	st.closed = true
	st.readClosed = true
	st.maxStreamDataPending = false
	st.stopState = stopPending
	st.resetState = resetPending
	st.queueCtrlLocked()
}

func (st *Stream) hasCtrlLocked() bool {
	return !st.removed && (st.maxStreamDataPending || st.stopState == stopPending || st.resetState == resetPending)
}

func (st *Stream) queueCtrlLocked() {
	if !st.ctrlQueued && st.hasCtrlLocked() {
		st.ctrlQueued = true
		st.s.ctrlQ = append(st.s.ctrlQ, st)
	}
}

// hasDataLocked reports whether appendDataLocked would write a frame.
func (st *Stream) hasDataLocked() bool {
	if st.removed || st.resetState != resetNone {
		return false
	}
	if !st.retx.empty() {
		return true
	}
	if st.sendNext < st.sendWritten && st.sendNext < st.sendMax && st.s.sendConnUsed < st.s.sendConnMax {
		return true
	}
	return st.finQueued && !st.finSent && st.sendNext == st.sendWritten
}

func (st *Stream) queueDataLocked() {
	if !st.queued && st.hasDataLocked() {
		st.queued = true
		st.s.sendQ = append(st.s.sendQ, st)
	}
}

// appendControlLocked appends the stream's pending control frames. more
// reports that some did not fit.
func (st *Stream) appendControlLocked(b []byte, limit int, sp *sentPacket) ([]byte, bool) {
	if st.removed {
		return b, false
	}
	const need = 1 + 3*maxVarintLen
	if st.maxStreamDataPending {
		if limit-len(b) < need {
			return b, true
		}
		b = appendFrame(b, &frame{typ: frameTypeMaxStreamData, streamID: st.id, value: st.recvMax})
		sp.frames = append(sp.frames, sentFrame{typ: frameTypeMaxStreamData, st: st})
		st.maxStreamDataPending = false
	}
	if st.stopState == stopPending {
		if limit-len(b) < need {
			return b, true
		}
		b = appendFrame(b, &frame{typ: frameTypeStopSending, streamID: st.id})
		sp.frames = append(sp.frames, sentFrame{typ: frameTypeStopSending, st: st})
		st.stopState = stopSent
	}
	if st.resetState == resetPending {
		if limit-len(b) < need {
			return b, true
		}
		b = appendFrame(b, &frame{typ: frameTypeResetStream, streamID: st.id, value: st.sendNext})
		sp.frames = append(sp.frames, sentFrame{typ: frameTypeResetStream, st: st})
		st.resetState = resetSent
	}
	return b, false
}

// appendDataLocked appends STREAM frames (retransmissions first) while
// they fit below limit.
func (st *Stream) appendDataLocked(b []byte, limit int, sp *sentPacket) []byte {
	s := st.s
	for !st.removed && st.resetState == resetNone && limit-len(b) > streamFrameMax {
		if !st.retx.empty() {
			r := st.retx.first()
			start := max(r.start, st.sendBase)
			if start >= r.end {
				st.retx.remove(r.start, r.end)
				continue
			}
			room := limit - len(b) - (1 + uvarintLen(st.id) + uvarintLen(start) + 3)
			end := min(r.end, start+uint64(room))
			fin := st.finQueued && end == st.sendWritten
			b = st.appendStreamFrame(b, start, end, fin, sp)
			st.retx.remove(r.start, end)
			continue
		}
		limitOff := min(st.sendWritten, st.sendMax)
		if credit := s.sendConnMax - min(s.sendConnUsed, s.sendConnMax); limitOff > st.sendNext+credit {
			limitOff = st.sendNext + credit
		}
		if st.sendNext < limitOff {
			room := limit - len(b) - (1 + uvarintLen(st.id) + uvarintLen(st.sendNext) + 3)
			end := min(limitOff, st.sendNext+uint64(room))
			fin := st.finQueued && end == st.sendWritten
			s.sendConnUsed += end - st.sendNext
			start := st.sendNext
			st.sendNext = end
			b = st.appendStreamFrame(b, start, end, fin, sp)
			continue
		}
		if st.finQueued && !st.finSent && st.sendNext == st.sendWritten {
			b = st.appendStreamFrame(b, st.sendNext, st.sendNext, true, sp)
			continue
		}
		break
	}
	return b
}

func (st *Stream) appendStreamFrame(b []byte, start, end uint64, fin bool, sp *sentPacket) []byte {
	n := int(end - start)
	b = appendStreamHeader(b, st.id, start, n, fin)
	x, y := st.sbuf.slices(int(start-st.sendBase), n)
	b = append(b, x...)
	b = append(b, y...)
	sp.frames = append(sp.frames, sentFrame{typ: frameTypeStream, st: st, off: start, n: n, fin: fin})
	if fin {
		st.finSent = true
	}
	return b
}

func (st *Stream) onDataAckedLocked(off uint64, n int, fin bool) {
	if st.removed || st.resetState != resetNone {
		return
	}
	end := off + uint64(n)
	if n > 0 {
		st.acked.add(off, end)
		st.retx.remove(off, end)
	}
	if fin {
		st.finAcked = true
	}
	if base := st.acked.contiguousFrom(st.sendBase); base > st.sendBase {
		st.sbuf.advance(int(base - st.sendBase))
		st.sendBase = base
		st.acked.removeBelow(base)
		notify(st.writeCh)
	}
	st.maybeRemoveLocked()
}

func (st *Stream) onDataLostLocked(off uint64, n int, fin bool) {
	if st.removed || st.resetState != resetNone {
		return
	}
	if end := off + uint64(n); end > st.sendBase {
		st.retx.add(max(off, st.sendBase), end)
	}
	if fin && !st.finAcked {
		st.finSent = false
	}
	st.queueDataLocked()
}

func (st *Stream) onControlLostLocked(typ byte) {
	if st.removed {
		return
	}
	switch typ {
	case frameTypeMaxStreamData:
		if !st.readClosed && !st.recvDoneLocked() {
			st.maxStreamDataPending = true
		}
	case frameTypeStopSending:
		if st.stopState == stopSent && !st.recvDoneLocked() {
			st.stopState = stopPending
		}
	case frameTypeResetStream:
		if st.resetState == resetSent {
			st.resetState = resetPending
		}
	}
	st.queueCtrlLocked()
}

func (st *Stream) onResetAckedLocked() {
	if st.resetState == resetSent || st.resetState == resetPending {
		st.resetState = resetAcked
		st.maybeRemoveLocked()
	}
}

func (st *Stream) onMaxStreamDataLocked(v uint64) {
	if v > st.sendMax {
		st.sendMax = v
		st.queueDataLocked()
	}
}

// onStopSendingLocked: the peer will not read; reset our send side.
func (st *Stream) onStopSendingLocked() {
	if st.resetState != resetNone || st.sendDoneLocked() {
		return
	}
	st.resetState = resetPending
	st.sbuf = ring{}
	st.retx = rangeSet{}
	st.acked = rangeSet{}
	st.queueCtrlLocked()
	notify(st.writeCh)
}

// checkFinalLocked validates a final size announced by the peer.
func (st *Stream) checkFinalLocked(final uint64) bool {
	if st.finalKnown && st.finalSize != final {
		st.s.protocolErrorLocked("stream %d final size changed from %d to %d", st.id, st.finalSize, final)
		return false
	}
	if st.recvHighest > final {
		st.s.protocolErrorLocked("stream %d final size %d below received %d", st.id, final, st.recvHighest)
		return false
	}
	return true
}

// growHighestLocked accounts bytes up to end against flow control.
func (st *Stream) growHighestLocked(end uint64) bool {
	s := st.s
	if end > st.recvMax {
		s.protocolErrorLocked("stream %d data to offset %d beyond limit %d", st.id, end, st.recvMax)
		return false
	}
	if end > st.recvHighest {
		s.recvConnHighest += end - st.recvHighest
		st.recvHighest = end
		if s.recvConnHighest > s.recvConnMax {
			s.protocolErrorLocked("session data %d beyond limit %d", s.recvConnHighest, s.recvConnMax)
			return false
		}
	}
	return true
}

func (st *Stream) onStreamDataLocked(off uint64, data []byte, fin bool) {
	if st.recvReset {
		return
	}
	end := off + uint64(len(data))
	if fin {
		if !st.checkFinalLocked(end) {
			return
		}
		st.finalKnown = true
		st.finalSize = end
	} else if st.finalKnown && end > st.finalSize {
		st.s.protocolErrorLocked("stream %d data to offset %d beyond final size %d", st.id, end, st.finalSize)
		return
	}
	kept := int(st.recvHighest - st.readOff)
	if !st.growHighestLocked(end) {
		return
	}
	if end > st.readOff && len(data) > 0 {
		start := max(off, st.readOff)
		if st.readClosed {
			st.recvd.add(start, end)
			st.discardLocked()
		} else {
			st.rbuf.ensure(int(end-st.readOff), kept, st.s.cfg.StreamWindow)
			st.rbuf.writeAt(int(start-st.readOff), data[start-off:])
			st.recvd.add(start, end)
		}
	}
	notify(st.readCh)
	st.maybeRemoveLocked()
}

func (st *Stream) onResetLocked(final uint64) {
	if st.recvReset || !st.checkFinalLocked(final) || !st.growHighestLocked(final) {
		return
	}
	st.finalKnown = true
	st.finalSize = final
	st.recvReset = true
	if final > st.readOff {
		st.s.creditConsumedLocked(final - st.readOff)
		st.readOff = final
	}
	st.rbuf = ring{}
	st.recvd = rangeSet{}
	st.maxStreamDataPending = false
	notify(st.readCh)
	st.maybeRemoveLocked()
}
