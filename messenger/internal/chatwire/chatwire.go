// Package chatwire is the messenger's protocol between two messengers over
// a mesh stream (documented in messenger/doc.go).
//
// Frames are a 4-byte big-endian length (type byte + body), a type byte
// and a msgpack body. The dialer sends Hello, the acceptor answers Hello;
// then the dialer sends Msg frames, each answered by an Ack, and
// half-closes the stream when its outbox for that peer is empty.
package chatwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/skywire-mesh/skywire/internal/strictmsgpack"
)

// Version is the protocol version in Hello.
const Version = 1

// MaxFrame bounds a frame (type byte + body). Messages larger than the
// receiver's text limit but within MaxFrame are answered with an Ack
// (CodeTooLarge) instead of closing the stream.
const MaxFrame = 64 << 10

// Errors.
var (
	ErrMalformed = errors.New("malformed messenger frame")
	ErrTooLong   = errors.New("messenger frame too long")
)

// Type is a frame's type byte.
type Type uint8

// Frame types.
const (
	TypeHello Type = 1
	TypeMsg   Type = 2
	TypeAck   Type = 3
)

func (t Type) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeMsg:
		return "msg"
	case TypeAck:
		return "ack"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Ack codes.
type Code uint8

// Codes. OK and Duplicate mean stored (now or before): the sender marks
// the message delivered. RateLimited and Busy mean try again later. The
// others are permanent: the sender marks the message failed.
const (
	CodeOK          Code = 0
	CodeDuplicate   Code = 1
	CodeTooLarge    Code = 2
	CodeBadUTF8     Code = 3
	CodeForged      Code = 4 // From is not the stream's remote key
	CodeWrongPeer   Code = 5 // To is not the receiver's key
	CodeRateLimited Code = 6
	CodeBusy        Code = 7 // the receiver could not store it now
	CodeMalformed   Code = 8
)

// Permanent reports whether c means "do not retry".
func (c Code) Permanent() bool {
	switch c {
	case CodeTooLarge, CodeBadUTF8, CodeForged, CodeWrongPeer, CodeMalformed:
		return true
	}
	return false
}

// Delivered reports whether c means the receiver has the message.
func (c Code) Delivered() bool { return c == CodeOK || c == CodeDuplicate }

func (c Code) String() string {
	switch c {
	case CodeOK:
		return "ok"
	case CodeDuplicate:
		return "duplicate"
	case CodeTooLarge:
		return "message too large"
	case CodeBadUTF8:
		return "text is not valid UTF-8"
	case CodeForged:
		return "sender does not match the session key"
	case CodeWrongPeer:
		return "message is addressed to another key"
	case CodeRateLimited:
		return "rate limited"
	case CodeBusy:
		return "receiver busy"
	case CodeMalformed:
		return "malformed message"
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Message is a decoded frame body.
type Message interface{ Type() Type }

// Hello opens a stream in both directions.
type Hello struct {
	Version uint8  `msgpack:"v"`
	MaxText uint32 `msgpack:"max"` // the sender's text limit in bytes
}

// Msg carries one chat message.
type Msg struct {
	ID   [16]byte `msgpack:"id"`
	From [32]byte `msgpack:"f"`
	To   [32]byte `msgpack:"to"`
	Sent int64    `msgpack:"t"` // Unix nanoseconds, the author's clock
	Text string   `msgpack:"x"`
}

// Ack answers a Msg.
type Ack struct {
	ID   [16]byte `msgpack:"id"`
	Code Code     `msgpack:"c"`
}

func (*Hello) Type() Type { return TypeHello }
func (*Msg) Type() Type   { return TypeMsg }
func (*Ack) Type() Type   { return TypeAck }

// Append appends the frame of m to dst. Integers use their smallest
// msgpack encoding.
func Append(dst []byte, m Message) ([]byte, error) {
	body, err := strictmsgpack.Append(nil, m)
	if err != nil {
		return dst, fmt.Errorf("encode %s: %w", m.Type(), err)
	}
	if 1+len(body) > MaxFrame {
		return dst, fmt.Errorf("encode %s: %d bytes: %w", m.Type(), 1+len(body), ErrTooLong)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(1+len(body)))
	dst = append(dst, byte(m.Type()))
	return append(dst, body...), nil
}

// Write writes the frame of m to w.
func Write(w io.Writer, m Message) error {
	b, err := Append(nil, m)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", m.Type(), err)
	}
	return nil
}

// Read reads one frame from r, checking its length before allocating.
// io.EOF means the stream ended cleanly between frames.
func Read(r *bufio.Reader) (Message, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("read frame header: %w", err)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return nil, fmt.Errorf("%w: zero length", ErrMalformed)
	}
	if n > MaxFrame {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLong, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read frame body: %w", err)
	}
	return Decode(buf)
}

// Decode decodes a frame's type byte and body. Every length the body
// declares must fit in the bytes present, and no bytes may follow it.
func Decode(b []byte) (Message, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	var m Message
	switch Type(b[0]) {
	case TypeHello:
		m = new(Hello)
	case TypeMsg:
		m = new(Msg)
	case TypeAck:
		m = new(Ack)
	default:
		return nil, fmt.Errorf("%w: unknown type %d", ErrMalformed, b[0])
	}
	if err := strictmsgpack.Unmarshal(b[1:], m, strictmsgpack.Limits{}); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, Type(b[0]), err)
	}
	return m, nil
}
