package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/skywire-mesh/skywire/internal/strictmsgpack"

	"github.com/skywire-mesh/skywire/keys"
)

// Record framing on disk:
//
//	+-----------------+----------------+--------+----------------+
//	| length: u32 BE  | crc32c: u32 BE | type:1 | msgpack body   |
//	+-----------------+----------------+--------+----------------+
//
// length counts the type byte and the body; the CRC (Castagnoli) covers
// the same bytes. A record is appended with one write and followed by an
// fsync, so only the last record of the file can be torn.
const (
	recHeaderLen = 8
	// MaxRecord bounds one record (type byte + body); a length above it is
	// corruption, checked before anything is allocated.
	MaxRecord = 1 << 20
)

// Record types.
const (
	recMessage byte = 1 // a whole message (new, or rewritten by compaction)
	recState   byte = 2 // a state change of a message
	recNick    byte = 3 // an address book entry (empty name: removed)
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by errors decoding a record.
var ErrCorrupt = errors.New("corrupt store record")

// diskMessage is the body of recMessage.
type diskMessage struct {
	ID     ID       `msgpack:"id"`
	Peer   [32]byte `msgpack:"p"`
	Dir    uint8    `msgpack:"d"`
	Text   string   `msgpack:"x"`
	Sent   int64    `msgpack:"t"`
	Stored int64    `msgpack:"rt"`
	State  uint8    `msgpack:"s"`
	Reason string   `msgpack:"w"`
}

// diskState is the body of recState.
type diskState struct {
	ID     ID       `msgpack:"id"`
	Peer   [32]byte `msgpack:"p"`
	Dir    uint8    `msgpack:"d"`
	State  uint8    `msgpack:"s"`
	Reason string   `msgpack:"w"`
	At     int64    `msgpack:"t"`
}

// diskNick is the body of recNick.
type diskNick struct {
	Peer [32]byte `msgpack:"p"`
	Name string   `msgpack:"n"`
}

func toDisk(m *Message) diskMessage {
	return diskMessage{
		ID: m.ID, Peer: m.Peer, Dir: uint8(m.Dir), Text: m.Text,
		Sent: unixNano(m.Sent), Stored: unixNano(m.Stored),
		State: uint8(m.State), Reason: m.Reason,
	}
}

func fromDisk(d diskMessage) Message {
	return Message{
		ID: d.ID, Peer: keys.PublicKey(d.Peer), Dir: Direction(d.Dir), Text: d.Text,
		Sent: fromNano(d.Sent), Stored: fromNano(d.Stored),
		State: State(d.State), Reason: d.Reason,
	}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// appendRecord appends the framed record (typ, body of v) to dst.
func appendRecord(dst []byte, typ byte, v any) ([]byte, error) {
	body, err := msgpack.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("encode record %d: %w", typ, err)
	}
	n := 1 + len(body)
	if n > MaxRecord {
		return dst, fmt.Errorf("encode record %d: %d bytes: %w", typ, n, ErrTooLarge)
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = binary.BigEndian.AppendUint32(dst, 0)
	dst = append(dst, typ)
	dst = append(dst, body...)
	crc := crc32.Checksum(dst[start+recHeaderLen:], crcTable)
	binary.BigEndian.PutUint32(dst[start+4:], crc)
	return dst, nil
}

// record is one decoded record.
type record struct {
	typ   byte
	msg   diskMessage
	state diskState
	nick  diskNick
}

// parseRecord decodes the record at the start of b. It returns the record
// and its total length; errTruncated means b ends inside the record.
func parseRecord(b []byte) (record, int, error) {
	if len(b) < recHeaderLen {
		return record{}, 0, errTruncated
	}
	n := binary.BigEndian.Uint32(b)
	if n == 0 || n > MaxRecord {
		return record{}, 0, fmt.Errorf("%w: length %d", ErrCorrupt, n)
	}
	total := recHeaderLen + int(n)
	if len(b) < total {
		return record{}, 0, errTruncated
	}
	payload := b[recHeaderLen:total]
	if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(b[4:]) {
		return record{}, 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	r, err := decodePayload(payload)
	if err != nil {
		return record{}, 0, err
	}
	return r, total, nil
}

// decodePayload decodes a record's type byte and body.
func decodePayload(p []byte) (record, error) {
	r := record{typ: p[0]}
	var v any
	switch r.typ {
	case recMessage:
		v = &r.msg
	case recState:
		v = &r.state
	case recNick:
		v = &r.nick
	default:
		return record{}, fmt.Errorf("%w: unknown type %d", ErrCorrupt, r.typ)
	}
	if err := strictmsgpack.Unmarshal(p[1:], v, strictmsgpack.Limits{}); err != nil {
		return record{}, fmt.Errorf("%w: type %d: %v", ErrCorrupt, r.typ, err)
	}
	return r, nil
}

var errTruncated = errors.New("truncated record")
