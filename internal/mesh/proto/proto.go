// Package proto is the wire format of skywire's mesh: the control messages
// exchanged between nodes and node managers, and the fixed binary header of
// the data frames that carry route traffic. docs/protocol.md describes both
// byte by byte; the test vectors there are checked by this package's tests.
//
// Both travel inside internal/link frames. The link frame type says which:
// LinkControl (16) frames hold one control message, LinkData (17) frames
// hold one data frame.
//
// # Control messages
//
// A control message is one type byte (Type) followed by one msgpack map
// whose keys are short field names. Encode writes integers in their most
// compact msgpack form; Decode accepts any msgpack integer width, ignores
// unknown map keys (so later versions can add fields) and rejects anything
// else that does not match: wrong types, keys that are not 32-byte binaries,
// trailing bytes, messages larger than MaxControl. Decode is the only decode
// switch; it never panics on any input.
//
// # Data frames
//
// A data frame is a 5-byte header, the route label (uint32, big endian) and
// the payload kind (one byte), followed by the payload. Relays read and
// rewrite the label only; the kind and payload are for the route's
// endpoints. Session packets are sealed end to end before they are framed.
package proto

import (
	"errors"
)

// Version is the control protocol version carried in Hello and Welcome.
const Version = 1

// Link frame types used by the mesh (internal/link reserves types below 16).
const (
	LinkControl uint8 = 16
	LinkData    uint8 = 17
)

// MaxControl bounds an encoded control message (type byte included). It is
// below the link layer's default maximum frame of 64 KiB.
const MaxControl = 60 << 10

// Sentinel errors.
var (
	// ErrMalformed: bytes that are not a valid message or frame.
	ErrMalformed = errors.New("malformed message")
	// ErrUnknownType: a control message type this version does not know.
	ErrUnknownType = errors.New("unknown message type")
	// ErrTooLarge: a message that would exceed MaxControl.
	ErrTooLarge = errors.New("message too large")
)
