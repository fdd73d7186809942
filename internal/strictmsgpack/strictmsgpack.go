// Package strictmsgpack is the one way skywire decodes msgpack that came
// from a peer: a bounded pre-scan, then github.com/vmihailenco/msgpack/v5
// into the typed value, then "no trailing bytes".
//
// The pre-scan exists because msgpack v5 allocates by what the input
// claims: a 6-byte str32 header declaring 4 GiB makes it grow its decoder
// buffer by 1 MiB and then by a quarter per input toward the declared
// size, and a pooled decoder keeps that buffer for ever. Scan refuses any
// str, bin, ext, array or map whose declared length exceeds the bytes
// left, and any nesting deeper than a limit, before msgpack sees a byte,
// so decoding allocates in proportion to the message, not to its claims.
//
// Decoders come from this package's own pool, never from msgpack's global
// one (which msgpack.Unmarshal uses), and a decoder that has read a string
// or binary longer than keepBuf, or that returned an error, is dropped
// rather than pooled, so no oversized buffer or half-done state outlives
// the call that made it.
package strictmsgpack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// ErrMalformed is wrapped by every error of Scan and by the scan and
// trailing-byte errors of Unmarshal and Decode. Errors from msgpack itself
// (a value of the wrong type for a field) and from the caller's function
// are returned wrapped as they are; callers wrap all of them in their
// protocol's own sentinel.
var ErrMalformed = errors.New("malformed msgpack")

// DefaultMaxDepth is the nesting limit when Limits.MaxDepth is 0.
const DefaultMaxDepth = 16

// Limits tunes Scan. The zero value is the default.
type Limits struct {
	// MaxDepth is the deepest nesting accepted: the top-level value is
	// depth 0, the elements of a top-level array or map depth 1, and so
	// on. 0 means DefaultMaxDepth.
	MaxDepth int
	// NoExt refuses every msgpack ext type (fixext, ext8/16/32) for
	// protocols that never use them.
	NoExt bool
}

// keepBuf is the largest str/bin/ext body after which a decoder still goes
// back to the pool (msgpack keeps a buffer as large as the largest one it
// has read).
const keepBuf = 16 << 10

// Scan checks that b holds exactly one well-formed msgpack value whose
// every declared length fits in the bytes that follow it, nested no deeper
// than lim allows. It allocates nothing.
func Scan(b []byte, lim Limits) error {
	_, err := scan(b, lim)
	return err
}

// scan is Scan that also returns the longest str/bin/ext body it saw.
func scan(b []byte, lim Limits) (int, error) {
	s := scanner{maxDepth: lim.MaxDepth, noExt: lim.NoExt}
	if s.maxDepth <= 0 {
		s.maxDepth = DefaultMaxDepth
	}
	n, err := s.skip(b, 0)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if n != len(b) {
		return 0, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b)-n)
	}
	return s.longest, nil
}

// IsMap reports whether b starts with a map header (fixmap, map16 or
// map32). A protocol whose bodies are maps checks it before Unmarshal,
// which would also fill a struct from an array.
func IsMap(b []byte) bool { return len(b) > 0 && IsMapCode(b[0]) }

// IsMapCode reports whether c, a value's first byte (Decoder.PeekCode),
// is a map header.
func IsMapCode(c byte) bool {
	return msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32
}

// IsArrayCode reports whether c, a value's first byte
// (Decoder.PeekCode), is an array header (fixarray, array16 or array32).
func IsArrayCode(c byte) bool {
	return msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32
}

// Unmarshal scans b, decodes it into v (a pointer, as for
// msgpack.Unmarshal) and refuses trailing bytes.
func Unmarshal(b []byte, v any, lim Limits) error {
	return Decode(b, lim, func(d *msgpack.Decoder) error { return d.Decode(v) })
}

// Decode scans b, then calls fn with a decoder reading b, then refuses
// bytes fn left unread. fn must not keep d.
func Decode(b []byte, lim Limits, fn func(d *msgpack.Decoder) error) error {
	longest, err := scan(b, lim)
	if err != nil {
		return err
	}
	st := pool.Get().(*state)
	st.r.Reset(b)
	st.d.Reset(&st.r)
	err = fn(st.d)
	left := st.r.Len()
	st.r.Reset(nil)
	st.d.Reset(nil)
	// A decoder that failed may be left mid-record (DecodeRaw leaves its
	// recording on when Skip fails, and Reset does not clear it), so only
	// a clean one goes back.
	if err == nil && longest <= keepBuf {
		pool.Put(st)
	}
	if err != nil {
		return err
	}
	if left != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, left)
	}
	return nil
}

// state is a pooled decoder with the reader it reads from. A *bytes.Reader
// is an io.ByteScanner, so msgpack adds no bufio.Reader of its own.
type state struct {
	r bytes.Reader
	d *msgpack.Decoder
}

var pool = sync.Pool{New: func() any {
	st := new(state)
	st.d = msgpack.NewDecoder(&st.r)
	return st
}}

var errTruncated = errors.New("truncated")

type scanner struct {
	maxDepth int
	noExt    bool
	longest  int // longest str/bin/ext body seen
}

// skip returns the length of the value at the start of b.
func (s *scanner) skip(b []byte, depth int) (int, error) {
	if depth > s.maxDepth {
		return 0, fmt.Errorf("nested deeper than %d", s.maxDepth)
	}
	if len(b) == 0 {
		return 0, errTruncated
	}
	c := b[0]
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3: // fixint, nil, bool
		return 1, nil
	case c >= 0xa0 && c <= 0xbf: // fixstr
		return s.body(b, 1, int(c&0x1f))
	case c >= 0x90 && c <= 0x9f: // fixarray
		return s.items(b, 1, int(c&0x0f), depth)
	case c >= 0x80 && c <= 0x8f: // fixmap
		return s.items(b, 1, 2*int(c&0x0f), depth)
	}
	switch c {
	case 0xcc, 0xd0: // uint8, int8
		return fixed(b, 2)
	case 0xcd, 0xd1: // uint16, int16
		return fixed(b, 3)
	case 0xce, 0xd2, 0xca: // uint32, int32, float32
		return fixed(b, 5)
	case 0xcf, 0xd3, 0xcb: // uint64, int64, float64
		return fixed(b, 9)
	case 0xc4, 0xc5, 0xc6, 0xd9, 0xda, 0xdb: // bin8, bin16, bin32, str8, str16, str32
		size := 1 << (c - 0xc4)
		if c >= 0xd9 {
			size = 1 << (c - 0xd9)
		}
		n, hdr, err := length(b, size)
		if err != nil {
			return 0, err
		}
		return s.body(b, hdr, n)
	case 0xdc, 0xdd: // array16, array32
		n, hdr, err := length(b, 2<<(c-0xdc))
		if err != nil {
			return 0, err
		}
		return s.items(b, hdr, n, depth)
	case 0xde, 0xdf: // map16, map32
		n, hdr, err := length(b, 2<<(c-0xde))
		if err != nil {
			return 0, err
		}
		if n > len(b)-hdr { // checked before doubling: n may be 2^32-1
			return 0, fmt.Errorf("map of %d entries declared in %d bytes", n, len(b)-hdr)
		}
		return s.items(b, hdr, 2*n, depth)
	}
	if s.noExt {
		return 0, fmt.Errorf("unsupported msgpack code %#x", c)
	}
	switch c {
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type byte + data
		return s.body(b, 2, 1<<(c-0xd4))
	case 0xc7, 0xc8, 0xc9: // ext8, ext16, ext32: length, type byte, data
		n, hdr, err := length(b, 1<<(c-0xc7))
		if err != nil {
			return 0, err
		}
		return s.body(b, hdr+1, n)
	}
	// 0xc1 is never used.
	return 0, fmt.Errorf("unsupported msgpack code %#x", c)
}

// length reads the big-endian length of size bytes after the code byte
// and returns it with the header length.
func length(b []byte, size int) (n, hdr int, err error) {
	hdr = 1 + size
	if len(b) < hdr {
		return 0, 0, errTruncated
	}
	switch size {
	case 1:
		n = int(b[1])
	case 2:
		n = int(binary.BigEndian.Uint16(b[1:]))
	default:
		v := binary.BigEndian.Uint32(b[1:])
		if uint64(v) > uint64(len(b)) { // also keeps int(v) >= 0 where int is 32 bits
			return 0, 0, fmt.Errorf("length %d declared with %d bytes left", v, len(b)-hdr)
		}
		n = int(v)
	}
	return n, hdr, nil
}

func fixed(b []byte, n int) (int, error) {
	if len(b) < n {
		return 0, errTruncated
	}
	return n, nil
}

// body checks a str/bin/ext body of n bytes after a header of hdr bytes.
func (s *scanner) body(b []byte, hdr, n int) (int, error) {
	if hdr > len(b) || n > len(b)-hdr {
		return 0, fmt.Errorf("length %d declared with %d bytes left", n, max(len(b)-hdr, 0))
	}
	s.longest = max(s.longest, n)
	return hdr + n, nil
}

// items skips n values after a header of hdr bytes.
func (s *scanner) items(b []byte, hdr, n, depth int) (int, error) {
	if n > len(b)-hdr { // every item takes at least one byte
		return 0, fmt.Errorf("%d items declared in %d bytes", n, len(b)-hdr)
	}
	off := hdr
	for i := 0; i < n; i++ {
		k, err := s.skip(b[off:], depth+1)
		if err != nil {
			return 0, err
		}
		off += k
	}
	return off, nil
}

// Append appends the msgpack encoding of v to dst, integers in their
// smallest form, as every skywire protocol sends them. On error it returns
// dst unchanged (its spare capacity may have been written).
func Append(dst []byte, v any) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return dst, err
	}
	return buf.Bytes(), nil
}
