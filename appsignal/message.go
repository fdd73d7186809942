package appsignal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/skywire-mesh/skywire/internal/strictmsgpack"
)

// Kind identifies the payload type of a message. The values are part of the
// wire format (docs/signal.md) and never change meaning.
type Kind uint8

// Message kinds.
const (
	KindHello           Kind = 1  // client -> server, first frame
	KindWelcome         Kind = 2  // server -> client, hello accepted
	KindPing            Kind = 3  // either way, request
	KindPong            Kind = 4  // reply to Ping
	KindUsageRequest    Kind = 5  // server -> client, request
	KindUsageReply      Kind = 6  // reply to UsageRequest
	KindShutdownRequest Kind = 7  // server -> client, request
	KindShutdownAck     Kind = 8  // reply to ShutdownRequest
	KindEvent           Kind = 9  // client -> server, no reply
	KindError           Kind = 10 // typed error, reply or connection-level
)

var kindNames = [...]string{
	KindHello:           "hello",
	KindWelcome:         "welcome",
	KindPing:            "ping",
	KindPong:            "pong",
	KindUsageRequest:    "usage_request",
	KindUsageReply:      "usage_reply",
	KindShutdownRequest: "shutdown_request",
	KindShutdownAck:     "shutdown_ack",
	KindEvent:           "event",
	KindError:           "error",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Payload is the body of one message; it is one of Hello, Welcome, Ping,
// Pong, UsageRequest, UsageReply, ShutdownRequest, ShutdownAck, Event, Error.
type Payload interface {
	kind() Kind
	encode(e *msgpack.Encoder) error
}

// Message is one envelope: a request ID and a typed payload. ID is chosen by
// the side that sends a request and echoed in the reply; 0 means "no reply
// expected" (Event) or "not about any request" (a connection-level Error).
type Message struct {
	ID      uint32
	Payload Payload
}

// Kind returns the kind of m's payload (0 if it has none).
func (m Message) Kind() Kind {
	if m.Payload == nil {
		return 0
	}
	return m.Payload.kind()
}

// Welcome is the server's acceptance of a Hello.
type Welcome struct {
	Version uint16 // protocol version the server speaks
	AppID   uint64 // the app ID the connection is now bound to
}

// Ping asks the peer to answer with a Pong carrying the same ID.
type Ping struct{}

// Pong answers a Ping.
type Pong struct{}

// UsageRequest asks an app for its self-reported counters.
type UsageRequest struct{}

// UsageReply carries app-reported counters (goroutines, heap bytes, plus
// counters the app supplies). Keys are encoded in sorted order.
type UsageReply struct {
	Counters map[string]uint64
}

// ShutdownRequest asks an app to shut down.
type ShutdownRequest struct {
	Reason string
}

// ShutdownAck acknowledges a ShutdownRequest; the app is shutting down.
type ShutdownAck struct{}

// ErrorCode is the typed reason carried in an Error message.
type ErrorCode uint16

// Error codes (wire values).
const (
	CodeInternal     ErrorCode = 1 // the peer failed to serve the request
	CodeBadVersion   ErrorCode = 2 // unsupported protocol version
	CodeUnauthorized ErrorCode = 3 // wrong token, or app ID not allowed
	CodeUnknownKind  ErrorCode = 4 // message kind not known to the receiver
	CodeMalformed    ErrorCode = 5 // message could not be decoded
	CodeProtocol     ErrorCode = 6 // valid message at the wrong time (e.g. before hello)
	CodeReplaced     ErrorCode = 7 // another connection took over this app ID
	CodeTooLarge     ErrorCode = 8 // the reply would exceed the frame limit
)

// More sentinels that Error values map to with errors.Is.
var (
	ErrBadVersion   = errors.New("signal: unsupported protocol version")
	ErrUnauthorized = errors.New("signal: unauthorized")
	ErrProtocol     = errors.New("signal: protocol violation")
	ErrReplaced     = errors.New("signal: connection replaced by a newer one")
	ErrRemote       = errors.New("signal: peer reported an error")
)

// Error is a typed error message. It also implements error, so a request
// answered with an Error returns it; errors.Is(err, ErrUnknownKind) etc.
// match by Code.
type Error struct {
	Code    ErrorCode
	Message string
}

func (e Error) Error() string {
	return fmt.Sprintf("signal: remote error %d: %s", e.Code, e.Message)
}

// codeSentinels are the package sentinels an Error matches by its Code.
var codeSentinels = map[ErrorCode]error{
	CodeBadVersion:   ErrBadVersion,
	CodeUnauthorized: ErrUnauthorized,
	CodeUnknownKind:  ErrUnknownKind,
	CodeMalformed:    ErrMalformed,
	CodeProtocol:     ErrProtocol,
	CodeReplaced:     ErrReplaced,
	CodeTooLarge:     ErrFrameTooLarge,
}

// Is maps the error code to the package sentinels: every Error is
// ErrRemote, and each code with a sentinel is that one.
func (e Error) Is(target error) bool {
	if target == ErrRemote {
		return true
	}
	s, ok := codeSentinels[e.Code]
	return ok && s == target
}

func (Hello) kind() Kind           { return KindHello }
func (Welcome) kind() Kind         { return KindWelcome }
func (Ping) kind() Kind            { return KindPing }
func (Pong) kind() Kind            { return KindPong }
func (UsageRequest) kind() Kind    { return KindUsageRequest }
func (UsageReply) kind() Kind      { return KindUsageReply }
func (ShutdownRequest) kind() Kind { return KindShutdownRequest }
func (ShutdownAck) kind() Kind     { return KindShutdownAck }
func (Event) kind() Kind           { return KindEvent }
func (Error) kind() Kind           { return KindError }

func (h Hello) encode(e *msgpack.Encoder) error {
	return firstErr(e.EncodeArrayLen(5), e.EncodeUint(uint64(h.Version)), e.EncodeUint(h.AppID),
		e.EncodeString(h.Name), e.EncodeInt(int64(h.Pid)), e.EncodeString(h.Token))
}

func (w Welcome) encode(e *msgpack.Encoder) error {
	return firstErr(e.EncodeArrayLen(2), e.EncodeUint(uint64(w.Version)), e.EncodeUint(w.AppID))
}

func (Ping) encode(e *msgpack.Encoder) error         { return e.EncodeArrayLen(0) }
func (Pong) encode(e *msgpack.Encoder) error         { return e.EncodeArrayLen(0) }
func (UsageRequest) encode(e *msgpack.Encoder) error { return e.EncodeArrayLen(0) }
func (ShutdownAck) encode(e *msgpack.Encoder) error  { return e.EncodeArrayLen(0) }

func (u UsageReply) encode(e *msgpack.Encoder) error {
	keys := make([]string, 0, len(u.Counters))
	for k := range u.Counters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if err := firstErr(e.EncodeArrayLen(1), e.EncodeMapLen(len(keys))); err != nil {
		return err
	}
	for _, k := range keys {
		if err := firstErr(e.EncodeString(k), e.EncodeUint(u.Counters[k])); err != nil {
			return err
		}
	}
	return nil
}

func (s ShutdownRequest) encode(e *msgpack.Encoder) error {
	return firstErr(e.EncodeArrayLen(1), e.EncodeString(s.Reason))
}

func (ev Event) encode(e *msgpack.Encoder) error {
	return firstErr(e.EncodeArrayLen(2), e.EncodeString(ev.Kind), e.EncodeString(ev.Text))
}

func (x Error) encode(e *msgpack.Encoder) error {
	return firstErr(e.EncodeArrayLen(2), e.EncodeUint(uint64(x.Code)), e.EncodeString(x.Message))
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// AppendMessage appends the msgpack encoding of m (the frame body, without
// the length prefix) to b. The encoding is deterministic: integers use the
// shortest msgpack form, map keys are sorted.
func AppendMessage(b []byte, m Message) ([]byte, error) {
	if m.Payload == nil {
		return b, fmt.Errorf("encode message: nil payload: %w", ErrMalformed)
	}
	buf := bytes.NewBuffer(b)
	e := msgpack.GetEncoder()
	defer msgpack.PutEncoder(e)
	e.Reset(buf)
	err := firstErr(e.EncodeArrayLen(3), e.EncodeUint(uint64(m.Payload.kind())), e.EncodeUint(uint64(m.ID)))
	if err == nil {
		err = m.Payload.encode(e)
	}
	if err != nil {
		return b, fmt.Errorf("encode %v message: %w", m.Payload.kind(), err)
	}
	return buf.Bytes(), nil
}

// EncodeMessage returns the frame body of m.
func EncodeMessage(m Message) ([]byte, error) { return AppendMessage(nil, m) }

// DecodeMessage decodes one frame body. Errors wrap ErrMalformed, or
// ErrUnknownKind for a well-formed envelope of an unknown kind (the returned
// Message then still carries the request ID so a reply can name it). Extra
// trailing fields in a payload array are ignored (forward compatibility);
// trailing bytes after the envelope are not.
//
// The body goes through strictmsgpack first: a str, array or map declaring
// more than the body holds is malformed before any field is read, so a
// 20-byte hello cannot make the decoder allocate by the 4 GiB it claims.
// The positional payloads are read field by field (msgpack's reflection
// would accept a map or nil for a payload array, refuse extra fields and
// truncate wide integers).
func DecodeMessage(body []byte) (Message, error) {
	var m Message
	var unknown error
	err := strictmsgpack.Decode(body, scanLimits, func(d *msgpack.Decoder) error {
		dec := decoder{d: d}
		n, err := dec.arrayLen()
		if err != nil {
			return malformed("envelope", err)
		}
		if n != 3 {
			return malformed("envelope", fmt.Errorf("array of %d elements, want 3", n))
		}
		k, err := dec.uint(math.MaxUint8)
		if err != nil {
			return malformed("kind", err)
		}
		id, err := dec.uint(math.MaxUint32)
		if err != nil {
			return malformed("request id", err)
		}
		m.ID = uint32(id)
		kind := Kind(k)
		p, err := dec.payload(kind)
		if errors.Is(err, ErrUnknownKind) {
			unknown = err
			return d.Skip() // scanned: it is one whole value
		}
		if err != nil {
			return malformed(kind.String()+" payload", err)
		}
		m.Payload = p
		return nil
	})
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			err = malformed("envelope", err)
		}
		return Message{}, err
	}
	if unknown != nil {
		return Message{ID: m.ID}, unknown
	}
	return m, nil
}

// scanLimits: an envelope nests its payload one level down and a
// UsageReply's map one more; the rest of the default depth is for fields
// later versions append.
var scanLimits = strictmsgpack.Limits{}

func malformed(what string, err error) error {
	return fmt.Errorf("decode message %s: %w: %w", what, ErrMalformed, err)
}

// decoder wraps msgpack.Decoder with strict, type-checked field readers.
// strictmsgpack has checked every declared length against the bytes
// present, so array and map lengths need no bound here.
type decoder struct {
	d *msgpack.Decoder
}

func (dec decoder) arrayLen() (int, error) {
	c, err := dec.d.PeekCode()
	if err != nil {
		return 0, err
	}
	if !strictmsgpack.IsArrayCode(c) {
		return 0, fmt.Errorf("code 0x%02x is not an array", c)
	}
	return dec.d.DecodeArrayLen()
}

// fields reads the array header of a payload that needs at least want fields
// and returns how many extra fields follow them (to be skipped).
func (dec decoder) fields(want int) (int, error) {
	n, err := dec.arrayLen()
	if err != nil {
		return 0, err
	}
	if n < want {
		return 0, fmt.Errorf("%d fields, want %d", n, want)
	}
	return n - want, nil
}

func (dec decoder) skip(n int) error {
	for i := 0; i < n; i++ {
		if err := dec.d.Skip(); err != nil {
			return fmt.Errorf("skip extra field: %w", err)
		}
	}
	return nil
}

func (dec decoder) uint(max uint64) (uint64, error) {
	c, err := dec.d.PeekCode()
	if err != nil {
		return 0, err
	}
	var v uint64
	switch {
	case c <= msgpcode.PosFixedNumHigh, c == msgpcode.Uint8, c == msgpcode.Uint16, c == msgpcode.Uint32, c == msgpcode.Uint64:
		v, err = dec.d.DecodeUint64()
	case c == msgpcode.Int8, c == msgpcode.Int16, c == msgpcode.Int32, c == msgpcode.Int64:
		var i int64
		i, err = dec.d.DecodeInt64()
		if err == nil && i < 0 {
			return 0, fmt.Errorf("negative value %d for unsigned field", i)
		}
		v = uint64(i)
	default:
		return 0, fmt.Errorf("code 0x%02x is not an unsigned integer", c)
	}
	if err != nil {
		return 0, err
	}
	if v > max {
		return 0, fmt.Errorf("value %d exceeds %d", v, max)
	}
	return v, nil
}

func (dec decoder) int() (int64, error) {
	c, err := dec.d.PeekCode()
	if err != nil {
		return 0, err
	}
	switch {
	case msgpcode.IsFixedNum(c), c == msgpcode.Int8, c == msgpcode.Int16, c == msgpcode.Int32, c == msgpcode.Int64:
		return dec.d.DecodeInt64()
	case c == msgpcode.Uint8, c == msgpcode.Uint16, c == msgpcode.Uint32, c == msgpcode.Uint64:
		v, err := dec.d.DecodeUint64()
		if err != nil {
			return 0, err
		}
		if v > math.MaxInt64 {
			return 0, fmt.Errorf("value %d overflows int64", v)
		}
		return int64(v), nil
	}
	return 0, fmt.Errorf("code 0x%02x is not an integer", c)
}

func (dec decoder) str() (string, error) {
	c, err := dec.d.PeekCode()
	if err != nil {
		return "", err
	}
	if !(c >= msgpcode.FixedStrLow && c <= msgpcode.FixedStrHigh) && c != msgpcode.Str8 && c != msgpcode.Str16 && c != msgpcode.Str32 {
		return "", fmt.Errorf("code 0x%02x is not a string", c)
	}
	s, err := dec.d.DecodeString()
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return s, err
}

// fieldCounts is how many fields the payload of each kind has (a newer
// version may append more, which are skipped).
var fieldCounts = map[Kind]int{
	KindHello: 5, KindWelcome: 2,
	KindPing: 0, KindPong: 0, KindUsageRequest: 0, KindShutdownAck: 0,
	KindUsageReply: 1, KindShutdownRequest: 1, KindEvent: 2, KindError: 2,
}

// payload decodes the payload of a message of kind k: the array of its
// fields, then any extra fields.
func (dec decoder) payload(k Kind) (Payload, error) {
	want, ok := fieldCounts[k]
	if !ok {
		return nil, fmt.Errorf("decode message: %v: %w", k, ErrUnknownKind)
	}
	extra, err := dec.fields(want)
	if err != nil {
		return nil, err
	}
	p, err := dec.payloadFields(k)
	if err != nil {
		return nil, err
	}
	return p, dec.skip(extra)
}

// versionAndID decodes the two fields Hello and Welcome begin with.
func (dec decoder) versionAndID() (version uint16, appID uint64, err error) {
	if version, err = dec.uint16("version"); err != nil {
		return 0, 0, err
	}
	if appID, err = dec.uint(math.MaxUint64); err != nil {
		return 0, 0, fmt.Errorf("app id: %w", err)
	}
	return version, appID, nil
}

// payloadFields decodes the fields of a payload of kind k.
func (dec decoder) payloadFields(k Kind) (Payload, error) {
	var err error
	switch k {
	case KindHello:
		var h Hello
		if h.Version, h.AppID, err = dec.versionAndID(); err != nil {
			return nil, err
		}
		if h.Name, err = dec.str(); err != nil {
			return nil, fmt.Errorf("name: %w", err)
		}
		pid, err := dec.int()
		if err != nil {
			return nil, fmt.Errorf("pid: %w", err)
		}
		if int64(int(pid)) != pid {
			return nil, fmt.Errorf("pid %d overflows int", pid)
		}
		h.Pid = int(pid)
		if h.Token, err = dec.str(); err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
		return h, nil
	case KindWelcome:
		var w Welcome
		if w.Version, w.AppID, err = dec.versionAndID(); err != nil {
			return nil, err
		}
		return w, nil
	case KindPing:
		return Ping{}, nil
	case KindPong:
		return Pong{}, nil
	case KindUsageRequest:
		return UsageRequest{}, nil
	case KindShutdownAck:
		return ShutdownAck{}, nil
	case KindUsageReply:
		counters, err := dec.counters()
		if err != nil {
			return nil, fmt.Errorf("counters: %w", err)
		}
		return UsageReply{Counters: counters}, nil
	case KindShutdownRequest:
		var s ShutdownRequest
		if s.Reason, err = dec.str(); err != nil {
			return nil, fmt.Errorf("reason: %w", err)
		}
		return s, nil
	case KindEvent:
		var ev Event
		if ev.Kind, err = dec.str(); err != nil {
			return nil, fmt.Errorf("event kind: %w", err)
		}
		if ev.Text, err = dec.str(); err != nil {
			return nil, fmt.Errorf("event text: %w", err)
		}
		return ev, nil
	case KindError:
		var x Error
		code, err := dec.uint16("code")
		if err != nil {
			return nil, err
		}
		x.Code = ErrorCode(code)
		if x.Message, err = dec.str(); err != nil {
			return nil, fmt.Errorf("message: %w", err)
		}
		return x, nil
	}
	return nil, fmt.Errorf("decode message: %v: %w", k, ErrUnknownKind)
}

// uint16 decodes an unsigned integer of at most 16 bits; what names it in
// the error.
func (dec decoder) uint16(what string) (uint16, error) {
	v, err := dec.uint(math.MaxUint16)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return uint16(v), nil
}

func (dec decoder) counters() (map[string]uint64, error) {
	c, err := dec.d.PeekCode()
	if err != nil {
		return nil, err
	}
	if !strictmsgpack.IsMapCode(c) {
		return nil, fmt.Errorf("code 0x%02x is not a map", c)
	}
	n, err := dec.d.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	m := make(map[string]uint64, n)
	for i := 0; i < n; i++ {
		k, err := dec.str()
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("duplicate key %q", k)
		}
		v, err := dec.uint(math.MaxUint64)
		if err != nil {
			return nil, fmt.Errorf("value of %q: %w", k, err)
		}
		m[k] = v
	}
	return m, nil
}
