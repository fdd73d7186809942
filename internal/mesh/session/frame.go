package session

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// protocolVersion is the first byte of every plaintext packet.
const protocolVersion = 1

// Frame types. See the package documentation for their layout.
const (
	frameTypePadding       = 0x00
	frameTypePing          = 0x01
	frameTypeAck           = 0x02
	frameTypeMaxData       = 0x03
	frameTypeMaxStreamData = 0x04
	frameTypeResetStream   = 0x05
	frameTypeStopSending   = 0x06
	frameTypeClose         = 0x07
	frameTypeDatagram      = 0x08
	frameTypeStream        = 0x10
	frameTypeStreamFin     = 0x11
)

const (
	// maxVarint is the largest value any varint field may carry (2^62-1),
	// which keeps offset arithmetic free of overflow.
	maxVarint = 1<<62 - 1
	// maxAckRanges bounds the number of ranges in one ACK frame.
	maxAckRanges = 64
	// maxReasonLen bounds the reason text of a CLOSE frame.
	maxReasonLen = 256
	// maxVarintLen is the longest encoding of a value <= maxVarint.
	maxVarintLen = 9
)

// ErrMalformedPacket is wrapped by every packet and frame decoding error.
var ErrMalformedPacket = errors.New("malformed packet")

// ackRange is an inclusive range of packet numbers.
type ackRange struct{ lo, hi uint64 }

// frame is one decoded frame. Byte slices alias the packet buffer.
type frame struct {
	typ      byte
	streamID uint64 // STREAM, MAX_STREAM_DATA, RESET_STREAM, STOP_SENDING
	offset   uint64 // STREAM
	value    uint64 // MAX_DATA, MAX_STREAM_DATA: limit; RESET_STREAM: final size; ACK: delay in µs
	code     uint64 // RESET_STREAM, STOP_SENDING, CLOSE
	data     []byte // STREAM, DATAGRAM: payload; CLOSE: reason
	ranges   []ackRange
}

func (f *frame) fin() bool { return f.typ == frameTypeStreamFin }

// ackEliciting reports whether receiving this frame obliges the receiver to
// send an acknowledgement.
func (f *frame) ackEliciting() bool {
	switch f.typ {
	case frameTypeAck, frameTypePadding, frameTypeDatagram, frameTypeClose:
		return false
	}
	return true
}

// parseHeader splits a plaintext packet into its packet number and frames.
func parseHeader(b []byte) (pn uint64, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, fmt.Errorf("%w: short header", ErrMalformedPacket)
	}
	if b[0] != protocolVersion {
		return 0, nil, fmt.Errorf("%w: version %d", ErrMalformedPacket, b[0])
	}
	pn, n := binary.Uvarint(b[1:])
	if n <= 0 || pn > maxVarint {
		return 0, nil, fmt.Errorf("%w: bad packet number", ErrMalformedPacket)
	}
	return pn, b[1+n:], nil
}

func appendHeader(b []byte, pn uint64) []byte {
	b = append(b, protocolVersion)
	return binary.AppendUvarint(b, pn)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > maxVarint {
		r.err = fmt.Errorf("%w: bad %s", ErrMalformedPacket, what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: %s length %d exceeds packet", ErrMalformedPacket, what, n)
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

// decodeFrame decodes the frame at the start of b into f, reusing
// f.ranges, and returns the number of bytes consumed.
func decodeFrame(b []byte, f *frame) (int, error) {
	if len(b) == 0 {
		return 0, fmt.Errorf("%w: empty frame", ErrMalformedPacket)
	}
	ranges := f.ranges[:0]
	*f = frame{typ: b[0]}
	r := reader{b: b[1:]}
	switch f.typ {
	case frameTypePadding, frameTypePing:
	case frameTypeAck:
		largest := r.uvarint("ack largest")
		f.value = r.uvarint("ack delay")
		count := r.uvarint("ack range count")
		first := r.uvarint("ack first range")
		if r.err != nil {
			break
		}
		if count >= maxAckRanges {
			r.err = fmt.Errorf("%w: %d ack ranges", ErrMalformedPacket, count)
			break
		}
		if first > largest {
			r.err = fmt.Errorf("%w: ack range below zero", ErrMalformedPacket)
			break
		}
		ranges = append(ranges, ackRange{largest - first, largest})
		for i := uint64(0); i < count && r.err == nil; i++ {
			gap := r.uvarint("ack gap")
			length := r.uvarint("ack range")
			low := ranges[len(ranges)-1].lo
			if r.err != nil {
				break
			}
			if low < gap+2 || low-gap-2 < length {
				r.err = fmt.Errorf("%w: ack range below zero", ErrMalformedPacket)
				break
			}
			hi := low - gap - 2
			ranges = append(ranges, ackRange{hi - length, hi})
		}
	case frameTypeMaxData:
		f.value = r.uvarint("max data")
	case frameTypeMaxStreamData:
		f.streamID = r.uvarint("stream id")
		f.value = r.uvarint("max stream data")
	case frameTypeResetStream:
		f.streamID = r.uvarint("stream id")
		f.code = r.uvarint("reset code")
		f.value = r.uvarint("final size")
	case frameTypeStopSending:
		f.streamID = r.uvarint("stream id")
		f.code = r.uvarint("stop code")
	case frameTypeClose:
		f.code = r.uvarint("close code")
		n := r.uvarint("reason length")
		if n > maxReasonLen {
			r.err = fmt.Errorf("%w: close reason of %d bytes", ErrMalformedPacket, n)
			break
		}
		f.data = r.bytes(n, "close reason")
	case frameTypeDatagram:
		f.data = r.bytes(r.uvarint("datagram length"), "datagram")
	case frameTypeStream, frameTypeStreamFin:
		f.streamID = r.uvarint("stream id")
		f.offset = r.uvarint("stream offset")
		n := r.uvarint("stream length")
		f.data = r.bytes(n, "stream data")
		if r.err == nil && f.offset+n > maxVarint {
			r.err = fmt.Errorf("%w: stream offset overflow", ErrMalformedPacket)
		}
	default:
		r.err = fmt.Errorf("%w: unknown frame type %#x", ErrMalformedPacket, f.typ)
	}
	f.ranges = ranges
	if r.err != nil {
		return 0, r.err
	}
	if (f.typ == frameTypeStream || f.typ == frameTypeStreamFin || f.typ == frameTypeMaxStreamData ||
		f.typ == frameTypeResetStream || f.typ == frameTypeStopSending) && f.streamID == 0 {
		return 0, fmt.Errorf("%w: stream id 0", ErrMalformedPacket)
	}
	return len(b) - len(r.b), nil
}

// appendFrame encodes f. For ACK frames f.ranges must be sorted from the
// highest range down, disjoint and non-adjacent.
func appendFrame(b []byte, f *frame) []byte {
	b = append(b, f.typ)
	switch f.typ {
	case frameTypeAck:
		b = appendAck(b, f.ranges, f.value)
	case frameTypeMaxData:
		b = binary.AppendUvarint(b, f.value)
	case frameTypeMaxStreamData:
		b = binary.AppendUvarint(b, f.streamID)
		b = binary.AppendUvarint(b, f.value)
	case frameTypeResetStream:
		b = binary.AppendUvarint(b, f.streamID)
		b = binary.AppendUvarint(b, f.code)
		b = binary.AppendUvarint(b, f.value)
	case frameTypeStopSending:
		b = binary.AppendUvarint(b, f.streamID)
		b = binary.AppendUvarint(b, f.code)
	case frameTypeClose:
		b = binary.AppendUvarint(b, f.code)
		b = binary.AppendUvarint(b, uint64(len(f.data)))
		b = append(b, f.data...)
	case frameTypeDatagram:
		b = binary.AppendUvarint(b, uint64(len(f.data)))
		b = append(b, f.data...)
	case frameTypeStream, frameTypeStreamFin:
		b = appendStreamHeader(b[:len(b)-1], f.streamID, f.offset, len(f.data), f.fin())
		b = append(b, f.data...)
	}
	return b
}

// appendAck encodes the body of an ACK frame; ranges run from the highest down.
func appendAck(b []byte, ranges []ackRange, delay uint64) []byte {
	b = binary.AppendUvarint(b, ranges[0].hi)
	b = binary.AppendUvarint(b, delay)
	b = binary.AppendUvarint(b, uint64(len(ranges)-1))
	b = binary.AppendUvarint(b, ranges[0].hi-ranges[0].lo)
	for i := 1; i < len(ranges); i++ {
		b = binary.AppendUvarint(b, ranges[i-1].lo-ranges[i].hi-2)
		b = binary.AppendUvarint(b, ranges[i].hi-ranges[i].lo)
	}
	return b
}

// appendStreamHeader encodes a STREAM frame header for n bytes of data that
// the caller appends next.
func appendStreamHeader(b []byte, id, off uint64, n int, fin bool) []byte {
	t := byte(frameTypeStream)
	if fin {
		t = frameTypeStreamFin
	}
	b = append(b, t)
	b = binary.AppendUvarint(b, id)
	b = binary.AppendUvarint(b, off)
	return binary.AppendUvarint(b, uint64(n))
}

// uvarintLen returns the encoded length of v.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
