package appsignal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ProtocolVersion is the version a Client sends in its Hello.
const ProtocolVersion = 1

// MaxFrameSize is the default upper bound of a frame body, in bytes.
const MaxFrameSize = 64 << 10

// Sentinel errors. Callers match them with errors.Is.
var (
	ErrNotConnected  = errors.New("signal: app not connected")
	ErrTimeout       = errors.New("signal: request timed out")
	ErrClosed        = errors.New("signal: closed")
	ErrFrameTooLarge = errors.New("signal: frame too large")
	ErrMalformed     = errors.New("signal: malformed message")
	ErrUnknownKind   = errors.New("signal: unknown message kind")
)

// ReadFrame reads one frame from r and returns its body. The length prefix is
// checked against max (max <= 0 means MaxFrameSize) before anything is
// allocated; a longer frame yields ErrFrameTooLarge. A clean EOF before the
// first length byte is returned as io.EOF; a truncated frame as
// io.ErrUnexpectedEOF.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	if max <= 0 {
		max = MaxFrameSize
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("read frame: length %d exceeds limit %d: %w", n, max, ErrFrameTooLarge)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read frame body (%d bytes): %w", n, err)
	}
	return body, nil
}

// WriteFrame writes body to w as one frame (length prefix and body in a
// single Write call, so concurrent writers serialised by a mutex never
// interleave partial frames).
func WriteFrame(w io.Writer, body []byte) error {
	if uint64(len(body)) > 0xFFFFFFFF {
		return fmt.Errorf("write frame: length %d: %w", len(body), ErrFrameTooLarge)
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}
