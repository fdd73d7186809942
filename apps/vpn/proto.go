package vpn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/skywire-mesh/skywire/internal/strictmsgpack"
)

// Control protocol (see the package doc): frames of
//
//	length: u16 BE (type + body) | type: u8 | body: msgpack map
//
// on the control stream the client dials to the server's port.
const (
	protoVersion = 1
	maxCtrlFrame = 1024 // largest length a reader accepts
)

type msgType uint8

const (
	typeHello     msgType = 1 // client → server
	typeAssign    msgType = 2 // server → client
	typeRefuse    msgType = 3 // server → client, then the server closes
	typeKeepalive msgType = 4 // both ways, empty body
)

func (t msgType) String() string {
	switch t {
	case typeHello:
		return "hello"
	case typeAssign:
		return "assign"
	case typeRefuse:
		return "refuse"
	case typeKeepalive:
		return "keepalive"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ErrMalformed is wrapped by errors about control frames that do not
// decode; the connection that sent one is closed.
var ErrMalformed = errors.New("vpn: malformed control message")

// Refusal codes in a refuse message.
const (
	refuseVersion    = 1 // the server does not speak the client's version
	refuseNotAllowed = 2 // the client's key is not allowed
	refusePoolFull   = 3 // no free address
	refuseBadHello   = 4 // hello fields out of range
)

// hello is the client's first message.
type hello struct {
	Version u32  `msgpack:"v"`
	Port    u16  `msgpack:"port"`          // the client's mesh port for datagrams
	MTU     u16  `msgpack:"mtu"`           // largest MTU the client wants, 0 for any
	GSO     bool `msgpack:"gso,omitempty"` // the client takes GSO datagrams
}

// assign is the server's answer to an allowed hello.
type assign struct {
	Version   u32    `msgpack:"v"`
	Addr      string `msgpack:"addr"`          // client address with the pool's prefix length, "10.77.0.2/24"
	Gateway   string `msgpack:"gw"`            // the server's address in the pool, "10.77.0.1"
	MTU       u16    `msgpack:"mtu"`           // TUN MTU both sides use
	Keepalive u32    `msgpack:"ka"`            // keepalive interval in milliseconds
	GSO       bool   `msgpack:"gso,omitempty"` // the server takes GSO datagrams
}

// refuse is the server's answer to a hello it does not accept.
type refuse struct {
	Code u8     `msgpack:"code"`
	Msg  string `msgpack:"msg"`
}

// Unsigned integers that decode from any msgpack integer encoding and
// reject values out of their range (msgpack itself would truncate).
type (
	u8  uint8
	u16 uint16
	u32 uint32
)

func decodeBounded(dec *msgpack.Decoder, max uint64) (uint64, error) {
	// Look before decoding: DecodeInterface of an array or map allocates
	// what its header claims (msgpack v5 caps typed slices, not []any), so
	// a 20-byte message could ask for gigabytes.
	c, err := dec.PeekCode()
	if err != nil {
		return 0, err
	}
	if !msgpcode.IsFixedNum(c) && (c < msgpcode.Uint8 || c > msgpcode.Int64) {
		return 0, fmt.Errorf("%w: msgpack code 0x%02x where an integer belongs", ErrMalformed, c)
	}
	v, err := dec.DecodeInterface()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch v := v.(type) {
	case int8, int16, int32, int64:
		i := reflectInt(v)
		if i < 0 {
			return 0, fmt.Errorf("%w: negative integer %d", ErrMalformed, i)
		}
		n = uint64(i)
	case uint8:
		n = uint64(v)
	case uint16:
		n = uint64(v)
	case uint32:
		n = uint64(v)
	case uint64:
		n = v
	default:
		return 0, fmt.Errorf("%w: %T where an integer belongs", ErrMalformed, v)
	}
	if n > max {
		return 0, fmt.Errorf("%w: integer %d over %d", ErrMalformed, n, max)
	}
	return n, nil
}

func reflectInt(v any) int64 {
	switch v := v.(type) {
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case int64:
		return v
	}
	return 0
}

func (v u8) EncodeMsgpack(enc *msgpack.Encoder) error  { return enc.EncodeUint(uint64(v)) }
func (v u16) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.EncodeUint(uint64(v)) }
func (v u32) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.EncodeUint(uint64(v)) }

func (v *u8) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := decodeBounded(dec, 0xff)
	*v = u8(n)
	return err
}

func (v *u16) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := decodeBounded(dec, 0xffff)
	*v = u16(n)
	return err
}

func (v *u32) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := decodeBounded(dec, 0xffffffff)
	*v = u32(n)
	return err
}

type keepalive struct{}

// parsed returns the address, gateway and keepalive of a, checked.
func (a *assign) parsed() (addr netip.Prefix, gw netip.Addr, err error) {
	addr, err = netip.ParsePrefix(a.Addr)
	if err != nil || !addr.Addr().Is4() || addr.Bits() < 8 || addr.Bits() > 30 {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("%w: assign: address %q is not an IPv4 address with a /8../30 prefix", ErrMalformed, a.Addr)
	}
	gw, err = netip.ParseAddr(a.Gateway)
	if err != nil || !gw.Is4() || !addr.Contains(gw) || gw == addr.Addr() {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("%w: assign: gateway %q is not another address of %s", ErrMalformed, a.Gateway, addr)
	}
	if a.MTU < minMTU {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("%w: assign: MTU %d below %d", ErrMalformed, a.MTU, minMTU)
	}
	return addr, gw, nil
}

func typeOf(m any) (msgType, error) {
	switch m.(type) {
	case *hello:
		return typeHello, nil
	case *assign:
		return typeAssign, nil
	case *refuse:
		return typeRefuse, nil
	case *keepalive:
		return typeKeepalive, nil
	}
	return 0, fmt.Errorf("vpn: no message type for %T", m)
}

// appendMsg appends the frame of m to dst.
func appendMsg(dst []byte, m any) ([]byte, error) {
	t, err := typeOf(m)
	if err != nil {
		return dst, err
	}
	var body []byte
	if t != typeKeepalive {
		body, err = strictmsgpack.Append(nil, m)
		if err != nil {
			return dst, fmt.Errorf("encode %s: %w", t, err)
		}
	}
	n := 1 + len(body)
	if n > maxCtrlFrame {
		return dst, fmt.Errorf("encode %s: %d bytes over the %d limit", t, n, maxCtrlFrame)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	dst = append(dst, byte(t))
	return append(dst, body...), nil
}

// writeMsg writes the frame of m to w.
func writeMsg(w io.Writer, m any) error {
	b, err := appendMsg(nil, m)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		t, _ := typeOf(m)
		return fmt.Errorf("send %s: %w", t, err)
	}
	return nil
}

// readMsg reads one frame: it checks the length before allocating and
// returns *hello, *assign, *refuse or *keepalive. Malformed frames give
// errors wrapping ErrMalformed; a clean EOF before a frame gives io.EOF.
func readMsg(r io.Reader) (any, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n < 1 || n > maxCtrlFrame {
		return nil, fmt.Errorf("%w: frame length %d (allowed 1..%d)", ErrMalformed, n, maxCtrlFrame)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read control frame: %w", err)
	}
	return decodeMsg(msgType(buf[0]), buf[1:])
}

// decodeMsg decodes the body of a frame of type t: the one decode switch.
func decodeMsg(t msgType, body []byte) (any, error) {
	var m any
	switch t {
	case typeHello:
		m = new(hello)
	case typeAssign:
		m = new(assign)
	case typeRefuse:
		m = new(refuse)
	case typeKeepalive:
		if len(body) != 0 {
			return nil, fmt.Errorf("%w: keepalive with a %d-byte body", ErrMalformed, len(body))
		}
		return new(keepalive), nil
	default:
		return nil, fmt.Errorf("%w: unknown type %d", ErrMalformed, uint8(t))
	}
	if !strictmsgpack.IsMap(body) {
		return nil, fmt.Errorf("%w: %s body is not a msgpack map", ErrMalformed, t)
	}
	if err := strictmsgpack.Unmarshal(body, m, strictmsgpack.Limits{}); err != nil {
		return nil, fmt.Errorf("%w: decode %s: %w", ErrMalformed, t, err)
	}
	return m, nil
}
