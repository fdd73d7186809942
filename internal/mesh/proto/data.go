package proto

import (
	"encoding/binary"
	"fmt"
)

// DataHeaderLen is the size of a data frame header: label (4) + kind (1).
const DataHeaderLen = 5

// Kind says what a data frame's payload is. Relays never look at it.
type Kind uint8

// Payload kinds.
const (
	KindSession    Kind = 0 // a session packet, sealed end to end (secure.SealExplicit)
	KindHandshake1 Kind = 1 // secure handshake msg1 ("skywire-session-v1")
	KindHandshake2 Kind = 2 // secure handshake msg2 or refusal
	KindKeepalive  Kind = 3 // keeps the route's rules alive; empty payload
	KindPing       Kind = 4 // 8-byte ping ID; the endpoint answers KindPong
	KindPong       Kind = 5 // the ping ID echoed
	maxKind             = KindPong
)

var kindNames = [...]string{"session", "handshake1", "handshake2", "keepalive", "ping", "pong"}

func (k Kind) String() string {
	if k <= maxKind {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// PutDataHeader writes a data header into b[:DataHeaderLen].
func PutDataHeader(b []byte, label uint32, kind Kind) {
	_ = b[DataHeaderLen-1]
	binary.BigEndian.PutUint32(b, label)
	b[4] = byte(kind)
}

// AppendData appends a whole data frame to dst.
func AppendData(dst []byte, label uint32, kind Kind, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, label)
	dst = append(dst, byte(kind))
	return append(dst, payload...)
}

// Label reads the label of frame b; ok is false if b is shorter than a header.
// It is the relay's whole parse.
func Label(b []byte) (label uint32, ok bool) {
	if len(b) < DataHeaderLen {
		return 0, false
	}
	return binary.BigEndian.Uint32(b), true
}

// SetLabel rewrites the label of frame b in place (b must hold a header).
func SetLabel(b []byte, label uint32) { binary.BigEndian.PutUint32(b, label) }

// ParseData splits a data frame; it errors (ErrMalformed) on a short frame
// or an unknown kind. payload aliases b.
func ParseData(b []byte) (label uint32, kind Kind, payload []byte, err error) {
	if len(b) < DataHeaderLen {
		return 0, 0, nil, fmt.Errorf("parse data frame: %w: %d bytes", ErrMalformed, len(b))
	}
	kind = Kind(b[4])
	if kind > maxKind {
		return 0, 0, nil, fmt.Errorf("parse data frame: %w: unknown kind %d", ErrMalformed, uint8(kind))
	}
	return binary.BigEndian.Uint32(b), kind, b[DataHeaderLen:], nil
}
