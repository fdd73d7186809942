package socks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// ErrMalformed is wrapped by every decoding error: bytes from a SOCKS
// client, a mesh stream or a datagram that do not follow the format. The
// connection they came on is closed (a datagram is dropped).
var ErrMalformed = errors.New("malformed socks message")

// errAddrType is a SOCKS address type this package does not know; a
// SOCKS client gets ReplyAddrNotSupported for it.
var errAddrType = fmt.Errorf("%w: unknown address type", ErrMalformed)

// errEmptyName is a domain name of length 0 (its port has been read, so
// the request is consumed); a SOCKS client gets ReplyHostUnreachable.
var errEmptyName = fmt.Errorf("%w: empty domain name", ErrMalformed)

// Protocol constants of RFC 1928 and RFC 1929.
const (
	socksVersion = 5
	authVersion  = 1 // RFC 1929 sub-negotiation version

	methodNoAuth       = 0x00
	methodUserPass     = 0x02
	methodNoAcceptable = 0xff

	cmdConnect      = 0x01
	cmdBind         = 0x02
	cmdUDPAssociate = 0x03

	atypIPv4   = 0x01
	atypDomain = 0x03
	atypIPv6   = 0x04

	// streamVersion1 and streamVersion2 are the first byte of the stream
	// header and of the reply (see the package documentation): a v2
	// header asks for a v2 reply, which adds the bound address.
	streamVersion1 = 1
	streamVersion2 = 2
	// streamReplyLen is the length of a stream reply's fixed part (all of
	// a v1 reply).
	streamReplyLen = 6
)

// Reply is a SOCKS5 reply code (RFC 1928 section 6). The server sends
// it to the client in the stream reply, and the client passes it on to
// the SOCKS application.
type Reply byte

// Reply codes.
const (
	ReplySucceeded        Reply = 0x00
	ReplyGeneralFailure   Reply = 0x01 // also: the server node cannot be reached
	ReplyNotAllowed       Reply = 0x02 // the server does not allow this client
	ReplyNetUnreachable   Reply = 0x03
	ReplyHostUnreachable  Reply = 0x04 // also: name not found, target dial timed out
	ReplyConnRefused      Reply = 0x05
	ReplyTTLExpired       Reply = 0x06
	ReplyCmdNotSupported  Reply = 0x07
	ReplyAddrNotSupported Reply = 0x08
)

var replyNames = [...]string{
	ReplySucceeded:        "succeeded",
	ReplyGeneralFailure:   "general failure",
	ReplyNotAllowed:       "not allowed by ruleset",
	ReplyNetUnreachable:   "network unreachable",
	ReplyHostUnreachable:  "host unreachable",
	ReplyConnRefused:      "connection refused",
	ReplyTTLExpired:       "TTL expired",
	ReplyCmdNotSupported:  "command not supported",
	ReplyAddrNotSupported: "address type not supported",
}

// replyLabels name the replies in Stats.Replies and in metrics.
var replyLabels = [...]string{
	ReplySucceeded:        "succeeded",
	ReplyGeneralFailure:   "general_failure",
	ReplyNotAllowed:       "not_allowed",
	ReplyNetUnreachable:   "network_unreachable",
	ReplyHostUnreachable:  "host_unreachable",
	ReplyConnRefused:      "connection_refused",
	ReplyTTLExpired:       "ttl_expired",
	ReplyCmdNotSupported:  "command_not_supported",
	ReplyAddrNotSupported: "address_type_not_supported",
}

// MaxReply is the highest reply code skywire sends.
const MaxReply = ReplyAddrNotSupported

// Label names r in one word (snake_case), as Stats.Replies and the
// metrics do: "succeeded", "not_allowed", "host_unreachable" …
func (r Reply) Label() string {
	if int(r) < len(replyLabels) {
		return replyLabels[r]
	}
	return "reply_" + strconv.Itoa(int(r))
}

func (r Reply) String() string {
	if int(r) < len(replyNames) {
		return replyNames[r]
	}
	return "reply(" + strconv.Itoa(int(r)) + ")"
}

// addr is a SOCKS destination: an IP address or a domain name (resolved
// by the server), and a port.
type addr struct {
	IP   netip.Addr // valid unless Name is set
	Name string
	Port uint16
}

func (a addr) String() string {
	if a.Name != "" {
		return netJoin(a.Name, a.Port)
	}
	return netip.AddrPortFrom(a.IP, a.Port).String()
}

func netJoin(host string, port uint16) string {
	return host + ":" + strconv.Itoa(int(port))
}

// appendAddr appends the SOCKS encoding of a: ATYP, address, port (BE).
func appendAddr(b []byte, a addr) ([]byte, error) {
	switch {
	case a.Name != "":
		if len(a.Name) > 255 {
			return b, fmt.Errorf("encode address: domain name of %d bytes: %w", len(a.Name), ErrMalformed)
		}
		b = append(b, atypDomain, byte(len(a.Name)))
		b = append(b, a.Name...)
	case a.IP.Is4():
		ip := a.IP.As4()
		b = append(b, atypIPv4)
		b = append(b, ip[:]...)
	case a.IP.Is6():
		ip := a.IP.As16()
		b = append(b, atypIPv6)
		b = append(b, ip[:]...)
	default:
		return b, fmt.Errorf("encode address: %w: no IP and no name", ErrMalformed)
	}
	return binary.BigEndian.AppendUint16(b, a.Port), nil
}

// readAddr reads ATYP, address and port from r, reading exactly the
// encoded bytes.
func readAddr(r io.Reader) (addr, error) {
	var b [255 + 2]byte // the longest field: a 255-byte name and the port
	if _, err := io.ReadFull(r, b[:1]); err != nil {
		return addr{}, fmt.Errorf("read address type: %w", err)
	}
	var a addr
	switch b[0] {
	case atypIPv4:
		if _, err := io.ReadFull(r, b[:4+2]); err != nil {
			return addr{}, fmt.Errorf("read IPv4 address: %w", err)
		}
		a.IP = netip.AddrFrom4([4]byte(b[:4]))
		a.Port = binary.BigEndian.Uint16(b[4:])
	case atypIPv6:
		if _, err := io.ReadFull(r, b[:16+2]); err != nil {
			return addr{}, fmt.Errorf("read IPv6 address: %w", err)
		}
		a.IP = netip.AddrFrom16([16]byte(b[:16]))
		a.Port = binary.BigEndian.Uint16(b[16:])
	case atypDomain:
		if _, err := io.ReadFull(r, b[:1]); err != nil {
			return addr{}, fmt.Errorf("read name length: %w", err)
		}
		n := int(b[0])
		if n == 0 {
			if _, err := io.ReadFull(r, b[:2]); err != nil {
				return addr{}, fmt.Errorf("read port: %w", err)
			}
			return addr{}, fmt.Errorf("read address: %w", errEmptyName)
		}
		if _, err := io.ReadFull(r, b[:n+2]); err != nil {
			return addr{}, fmt.Errorf("read domain name: %w", err)
		}
		a.Name = string(b[:n])
		a.Port = binary.BigEndian.Uint16(b[n:])
	default:
		return addr{}, fmt.Errorf("read address: %w %#x", errAddrType, b[0])
	}
	return a, nil
}

// parseAddr decodes an address at the start of b and returns the rest.
func parseAddr(b []byte) (addr, []byte, error) {
	r := byteReader{b: b}
	a, err := readAddr(&r)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: truncated address", ErrMalformed)
		}
		return addr{}, nil, err
	}
	return a, r.b, nil
}

type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// malformed turns a short read into ErrMalformed, keeping other errors
// (timeouts, resets) as they are.
func malformed(what string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: %w: truncated: %w", what, ErrMalformed, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// readGreeting reads a SOCKS5 method selection message (VER NMETHODS
// METHODS) and returns the methods offered.
func readGreeting(r io.Reader) ([]byte, error) {
	var b [2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, malformed("read greeting", err)
	}
	if b[0] != socksVersion {
		return nil, fmt.Errorf("read greeting: %w: version %d, want 5", ErrMalformed, b[0])
	}
	methods := make([]byte, b[1])
	if _, err := io.ReadFull(r, methods); err != nil {
		return nil, malformed("read greeting methods", err)
	}
	return methods, nil
}

// readAuth reads an RFC 1929 username/password request.
func readAuth(r io.Reader) (user, pass string, err error) {
	var b [256]byte
	if _, err := io.ReadFull(r, b[:2]); err != nil {
		return "", "", malformed("read auth", err)
	}
	if b[0] != authVersion {
		return "", "", fmt.Errorf("read auth: %w: version %d, want 1", ErrMalformed, b[0])
	}
	n := int(b[1])
	if _, err := io.ReadFull(r, b[:n+1]); err != nil {
		return "", "", malformed("read auth username", err)
	}
	user = string(b[:n])
	n = int(b[n])
	if _, err := io.ReadFull(r, b[:n]); err != nil {
		return "", "", malformed("read auth password", err)
	}
	return user, string(b[:n]), nil
}

// request is a SOCKS5 request (or a stream header: same fields).
type request struct {
	Cmd byte
	Dst addr
}

// readRequest reads a SOCKS5 request: VER CMD RSV ATYP DST.ADDR DST.PORT.
// An unknown address type gives an error wrapping errAddrType (reply
// ReplyAddrNotSupported); the caller checks Cmd.
func readRequest(r io.Reader) (request, error) {
	var b [3]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return request{}, malformed("read request", err)
	}
	if b[0] != socksVersion {
		return request{}, fmt.Errorf("read request: %w: version %d, want 5", ErrMalformed, b[0])
	}
	a, err := readAddr(r)
	if err != nil {
		return request{}, malformed("read request", err)
	}
	return request{Cmd: b[1], Dst: a}, nil
}

// appendReply appends a SOCKS5 reply with bound address bnd.
func appendReply(b []byte, rep Reply, bnd addr) []byte {
	b = append(b, socksVersion, byte(rep), 0)
	if !bnd.IP.IsValid() && bnd.Name == "" {
		bnd.IP = netip.IPv4Unspecified()
	}
	b, _ = appendAddr(b, bnd) // an IP address always encodes
	return b
}

// appendStreamHeader appends the header a client puts at the start of a
// mesh stream: version (1 or 2), command, destination.
func appendStreamHeader(b []byte, ver byte, req request) ([]byte, error) {
	b = append(b, ver, req.Cmd)
	return appendAddr(b, req.Dst)
}

// readStreamHeader reads the header at the start of a mesh stream and
// returns its version (1 or 2) with the request.
func readStreamHeader(r io.Reader) (byte, request, error) {
	var b [2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, request{}, malformed("read stream header", err)
	}
	if b[0] != streamVersion1 && b[0] != streamVersion2 {
		return 0, request{}, fmt.Errorf("read stream header: %w: version %d, want %d or %d", ErrMalformed, b[0], streamVersion1, streamVersion2)
	}
	if b[1] != cmdConnect && b[1] != cmdUDPAssociate {
		return 0, request{}, fmt.Errorf("read stream header: %w: command %d", ErrMalformed, b[1])
	}
	a, err := readAddr(r)
	if err != nil {
		return 0, request{}, malformed("read stream header", err)
	}
	return b[0], request{Cmd: b[1], Dst: a}, nil
}

// appendStreamReply appends the server's answer to a stream header of
// version ver: ver, reply code, association ID (u32 BE, 0 unless UDP),
// and in version 2 the bound address (the server's end of the target
// connection; 0.0.0.0:0 when unknown).
func appendStreamReply(b []byte, ver byte, rep Reply, assoc uint32, bnd addr) []byte {
	b = append(b, ver, byte(rep))
	b = binary.BigEndian.AppendUint32(b, assoc)
	if ver == streamVersion1 {
		return b
	}
	if !bnd.IP.IsValid() && bnd.Name == "" {
		bnd.IP = netip.IPv4Unspecified()
	}
	b, _ = appendAddr(b, bnd) // an IP address always encodes; a name is checked by its caller
	return b
}

// readStreamReply reads the server's answer to a stream header of
// version ver. The bound address is the zero addr in version 1.
func readStreamReply(r io.Reader, ver byte) (Reply, uint32, addr, error) {
	var b [streamReplyLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, 0, addr{}, malformed("read stream reply", err)
	}
	if b[0] != ver {
		return 0, 0, addr{}, fmt.Errorf("read stream reply: %w: version %d, want %d", ErrMalformed, b[0], ver)
	}
	rep, assoc := Reply(b[1]), binary.BigEndian.Uint32(b[2:])
	if ver == streamVersion1 {
		return rep, assoc, addr{}, nil
	}
	bnd, err := readAddr(r)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// Not io.EOF itself: that is a stream closed before any reply.
		return 0, 0, addr{}, fmt.Errorf("read stream reply: %w: truncated bound address", ErrMalformed)
	}
	if err != nil {
		return 0, 0, addr{}, fmt.Errorf("read stream reply: %w", err)
	}
	if bnd.Name != "" {
		return 0, 0, addr{}, fmt.Errorf("read stream reply: %w: bound address is a name", ErrMalformed)
	}
	return rep, assoc, bnd, nil
}

// parseUDPHeader splits a SOCKS5 UDP datagram (RSV RSV FRAG ATYP
// DST.ADDR DST.PORT DATA) into its fragment number, address and data.
func parseUDPHeader(b []byte) (frag byte, dst addr, data []byte, err error) {
	if len(b) < 3 {
		return 0, addr{}, nil, fmt.Errorf("parse UDP header: %w: %d bytes", ErrMalformed, len(b))
	}
	dst, data, err = parseAddr(b[3:])
	if err != nil {
		return 0, addr{}, nil, fmt.Errorf("parse UDP header: %w", err)
	}
	return b[2], dst, data, nil
}

// appendUDPHeader appends a SOCKS5 UDP header (fragment 0) for a.
func appendUDPHeader(b []byte, a addr) ([]byte, error) {
	b = append(b, 0, 0, 0)
	return appendAddr(b, a)
}
