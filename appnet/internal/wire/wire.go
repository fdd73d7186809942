// Package wire is the byte format of the app API between an app and its
// node (docs/app-api.md): frames of a 4-byte big-endian length, a type
// byte and a body; control bodies are msgpack maps, datagram bodies are
// binary. Both the client (package appnet) and the server (package
// appserver) use it, so the two cannot drift apart.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/skywire-mesh/skywire/internal/strictmsgpack"
	"github.com/skywire-mesh/skywire/keys"
)

// Version is the protocol version in Hello and Welcome.
const Version = 1

// Limits. A frame length (type byte + body) above the limit of the
// connection's state closes the connection before anything is allocated.
const (
	// MaxOpenFrame bounds the first frame of a connection (Hello, Dial,
	// Accept) and the node's replies to it.
	MaxOpenFrame = 4096
	// MaxDatagram is the largest datagram payload.
	MaxDatagram = 65535
	// DatagramHeaderLen is key (32) + port (2).
	DatagramHeaderLen = 34
	// MaxFrame bounds every frame on a control connection.
	MaxFrame = 1 + DatagramHeaderLen + MaxDatagram
	// MaxNameLen bounds an app name.
	MaxNameLen = 64
	// FrameHeaderLen is the length prefix.
	FrameHeaderLen = 4
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed app protocol message")

// ErrTooLong is wrapped when a frame length exceeds the limit.
var ErrTooLong = errors.New("app protocol frame too long")

// Type is the byte after the length prefix.
type Type uint8

// Message types; the arrow is the direction (A app, N node).
const (
	TypeHello    Type = 0x01 // A→N first frame of a control connection
	TypeDial     Type = 0x02 // A→N first frame of an outgoing stream connection
	TypeAccept   Type = 0x03 // A→N first frame of an incoming stream connection
	TypeWelcome  Type = 0x04 // N→A reply to Hello
	TypeOK       Type = 0x05 // N→A reply to Dial or Accept; raw stream bytes follow
	TypeError    Type = 0x06 // N→A refusal of Hello, Dial or Accept; the node then closes
	TypeIncoming Type = 0x07 // N→A on the control connection: a stream waits to be accepted
	TypeDatagram Type = 0x08 // both ways on the control connection
)

var typeNames = map[Type]string{
	TypeHello: "hello", TypeDial: "dial", TypeAccept: "accept", TypeWelcome: "welcome",
	TypeOK: "ok", TypeError: "error", TypeIncoming: "incoming", TypeDatagram: "datagram",
}

func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type(%#02x)", uint8(t))
}

// Key is a public key on the wire: msgpack bin 8 of 32 bytes (c4 20 ...).
type Key keys.PublicKey

// EncodeMsgpack implements msgpack.CustomEncoder.
func (k Key) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.EncodeBytes(k[:]) }

// DecodeMsgpack implements msgpack.CustomDecoder.
func (k *Key) DecodeMsgpack(dec *msgpack.Decoder) error { return decodeFixedBin(dec, k[:], "key") }

// Port is a mesh port on the wire: any msgpack unsigned integer up to
// 65535 (msgpack would otherwise truncate 65543 to 7 silently).
type Port uint16

// EncodeMsgpack implements msgpack.CustomEncoder.
func (p Port) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.EncodeUint(uint64(p)) }

// DecodeMsgpack implements msgpack.CustomDecoder.
func (p *Port) DecodeMsgpack(dec *msgpack.Decoder) error {
	v, err := decodeUint(dec, 0xffff, "port")
	*p = Port(v)
	return err
}

// ErrCode is an error code on the wire: a msgpack unsigned integer up to
// 255.
type ErrCode uint8

// EncodeMsgpack implements msgpack.CustomEncoder.
func (c ErrCode) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.EncodeUint(uint64(c)) }

// DecodeMsgpack implements msgpack.CustomDecoder.
func (c *ErrCode) DecodeMsgpack(dec *msgpack.Decoder) error {
	v, err := decodeUint(dec, 0xff, "code")
	*c = ErrCode(v)
	return err
}

func decodeUint(dec *msgpack.Decoder, max uint64, what string) (uint64, error) {
	c, err := dec.PeekCode()
	if err != nil {
		return 0, err
	}
	if !msgpcode.IsFixedNum(c) && c != msgpcode.Uint8 && c != msgpcode.Uint16 && c != msgpcode.Uint32 && c != msgpcode.Uint64 || msgpcode.IsFixedNum(c) && int8(c) < 0 {
		return 0, fmt.Errorf("%w: %s is not an unsigned integer (code %#x)", ErrMalformed, what, c)
	}
	v, err := dec.DecodeUint64()
	if err != nil {
		return 0, err
	}
	if v > max {
		return 0, fmt.Errorf("%w: %s %d out of range", ErrMalformed, what, v)
	}
	return v, nil
}

// TokenLen is the size of an app token.
const TokenLen = 16

// Token is the secret the node gives an app in Welcome; stream connections
// present it to say which app they belong to. msgpack bin 8 of 16 bytes.
type Token [TokenLen]byte

// EncodeMsgpack implements msgpack.CustomEncoder.
func (t Token) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.EncodeBytes(t[:]) }

// DecodeMsgpack implements msgpack.CustomDecoder.
func (t *Token) DecodeMsgpack(dec *msgpack.Decoder) error {
	return decodeFixedBin(dec, t[:], "token")
}

func decodeFixedBin(dec *msgpack.Decoder, dst []byte, what string) error {
	c, err := dec.PeekCode()
	if err != nil {
		return err
	}
	if c != msgpcode.Bin8 {
		return fmt.Errorf("%w: %s is not a binary (code %#x)", ErrMalformed, what, c)
	}
	n, err := dec.DecodeBytesLen()
	if err != nil {
		return err
	}
	if n != len(dst) {
		return fmt.Errorf("%w: %s of %d bytes, want %d", ErrMalformed, what, n, len(dst))
	}
	return dec.ReadFull(dst)
}

// Message is one decoded frame.
type Message interface{ Type() Type }

// Hello registers an app.
type Hello struct {
	Version uint   `msgpack:"v"`
	Name    string `msgpack:"name"`
	Port    Port   `msgpack:"port"` // 0: no listening port
	PID     int    `msgpack:"pid"`  // 0: unknown
}

// Dial opens a stream to Key:Port.
type Dial struct {
	Token Token `msgpack:"tok"`
	Key   Key   `msgpack:"key"`
	Port  Port  `msgpack:"port"`
}

// Accept takes the incoming stream announced with ID.
type Accept struct {
	Token Token  `msgpack:"tok"`
	ID    uint64 `msgpack:"id"`
}

// Welcome accepts a Hello.
type Welcome struct {
	Version uint  `msgpack:"v"`
	Key     Key   `msgpack:"key"` // the node's public key
	Token   Token `msgpack:"tok"`
}

// OK accepts a Dial or an Accept. Its body is empty.
type OK struct{}

// Error refuses a Hello, Dial or Accept.
type Error struct {
	Code ErrCode `msgpack:"code"`
	Msg  string  `msgpack:"msg"`
}

// Incoming announces a stream from Key waiting for an Accept with ID.
type Incoming struct {
	ID  uint64 `msgpack:"id"`
	Key Key    `msgpack:"key"`
}

// Datagram is an unreliable datagram. From the app, Key:Port is the
// destination; from the node, the source. Its body is binary: key (32),
// port (2, big-endian), payload.
type Datagram struct {
	Key     keys.PublicKey
	Port    uint16
	Payload []byte
}

func (*Hello) Type() Type    { return TypeHello }
func (*Dial) Type() Type     { return TypeDial }
func (*Accept) Type() Type   { return TypeAccept }
func (*Welcome) Type() Type  { return TypeWelcome }
func (*OK) Type() Type       { return TypeOK }
func (*Error) Type() Type    { return TypeError }
func (*Incoming) Type() Type { return TypeIncoming }
func (*Datagram) Type() Type { return TypeDatagram }

// AppendFrame appends the whole frame of m (length, type, body) to dst.
func AppendFrame(dst []byte, m Message) ([]byte, error) {
	switch m := m.(type) {
	case *Datagram:
		return AppendDatagram(dst, m.Key, m.Port, m.Payload)
	case *OK:
		return append(dst, 0, 0, 0, 1, byte(TypeOK)), nil
	}
	start := len(dst)
	dst, err := strictmsgpack.Append(append(dst, 0, 0, 0, 0, byte(m.Type())), m)
	if err != nil {
		return dst[:start], fmt.Errorf("encode %s: %w", m.Type(), err)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-FrameHeaderLen))
	return dst, nil
}

// Marshal returns the frame of m.
func Marshal(m Message) ([]byte, error) { return AppendFrame(nil, m) }

// AppendDatagram appends a datagram frame to dst without an intermediate
// copy of the payload.
func AppendDatagram(dst []byte, k keys.PublicKey, port uint16, payload []byte) ([]byte, error) {
	if len(payload) > MaxDatagram {
		return dst, fmt.Errorf("encode datagram of %d bytes: %w", len(payload), ErrTooLong)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(1+DatagramHeaderLen+len(payload)))
	dst = append(dst, byte(TypeDatagram))
	dst = append(dst, k[:]...)
	dst = binary.BigEndian.AppendUint16(dst, port)
	return append(dst, payload...), nil
}

// ReadFrame reads one frame from r whose length (type + body) is at most
// max. It reuses buf when it is large enough; the returned body aliases
// the returned buffer, which the caller passes back as buf next time.
func ReadFrame(r io.Reader, buf []byte, max int) (t Type, body, nbuf []byte, err error) {
	var h [FrameHeaderLen + 1]byte
	if _, err := io.ReadFull(r, h[:FrameHeaderLen]); err != nil {
		return 0, nil, buf, err // io.EOF on a clean close between frames
	}
	n := binary.BigEndian.Uint32(h[:])
	if n == 0 {
		return 0, nil, buf, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	if n > uint32(max) {
		return 0, nil, buf, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLong, n, max)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, buf, fmt.Errorf("read frame body: %w", err)
	}
	return Type(buf[0]), buf[1:], buf, nil
}

// FrameReader reads frames of at most MaxFrame from a connection into one
// buffer it reuses.
type FrameReader struct {
	r   io.Reader
	buf []byte
}

// NewFrameReader returns a FrameReader of r.
func NewFrameReader(r io.Reader) *FrameReader { return &FrameReader{r: r} }

// Next reads the next frame (see ReadFrame). body is valid until the next
// call.
func (fr *FrameReader) Next() (t Type, body []byte, err error) {
	t, body, fr.buf, err = ReadFrame(fr.r, fr.buf, MaxFrame)
	return t, body, err
}

// Decode decodes the body of a frame of type t. The result does not
// alias body except for Datagram.Payload.
func Decode(t Type, body []byte) (Message, error) {
	var m Message
	switch t {
	case TypeHello:
		m = new(Hello)
	case TypeDial:
		m = new(Dial)
	case TypeAccept:
		m = new(Accept)
	case TypeWelcome:
		m = new(Welcome)
	case TypeError:
		m = new(Error)
	case TypeIncoming:
		m = new(Incoming)
	case TypeOK:
		if len(body) != 0 {
			return nil, fmt.Errorf("%w: ok with a %d-byte body", ErrMalformed, len(body))
		}
		return new(OK), nil
	case TypeDatagram:
		return DecodeDatagram(body)
	default:
		return nil, fmt.Errorf("%w: unknown type %s", ErrMalformed, t)
	}
	if !strictmsgpack.IsMap(body) {
		return nil, fmt.Errorf("%w: %s body is not a msgpack map", ErrMalformed, t)
	}
	if err := strictmsgpack.Unmarshal(body, m, strictmsgpack.Limits{}); err != nil {
		if !errors.Is(err, ErrMalformed) {
			err = fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return nil, fmt.Errorf("decode %s: %w", t, err)
	}
	return m, nil
}

// DecodeDatagram decodes a datagram body; Payload aliases body.
func DecodeDatagram(body []byte) (*Datagram, error) {
	if len(body) < DatagramHeaderLen {
		return nil, fmt.Errorf("decode datagram: %w: %d bytes, want at least %d", ErrMalformed, len(body), DatagramHeaderLen)
	}
	if len(body)-DatagramHeaderLen > MaxDatagram {
		return nil, fmt.Errorf("decode datagram: %w: payload of %d bytes", ErrTooLong, len(body)-DatagramHeaderLen)
	}
	d := &Datagram{Port: binary.BigEndian.Uint16(body[32:34]), Payload: body[DatagramHeaderLen:]}
	copy(d.Key[:], body[:32])
	return d, nil
}

// ValidName reports whether name is a valid app name: 1 to MaxNameLen
// bytes of ASCII letters, digits, '.', '_' and '-', starting with a letter
// or digit.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > MaxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}
