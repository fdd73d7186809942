package proto

import (
	"encoding/binary"
	"fmt"
)

// maxDepth bounds nesting in a control message; the deepest message
// (DirectoryReply) nests 5 levels.
const maxDepth = 8

// scan checks that b holds exactly one well-formed msgpack value whose
// every declared length fits in the bytes that follow it, before the
// reflection-based decoder (which preallocates declared lengths) sees it.
// This bounds decoding memory by the message size.
func scan(b []byte) error {
	n, err := skip(b, 0)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("%d trailing bytes", len(b)-n)
	}
	return nil
}

// skip returns the length of the value at the start of b.
func skip(b []byte, depth int) (int, error) {
	if depth > maxDepth {
		return 0, fmt.Errorf("nested deeper than %d", maxDepth)
	}
	if len(b) == 0 {
		return 0, fmt.Errorf("truncated")
	}
	c := b[0]
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return 1, nil
	case c >= 0xa0 && c <= 0xbf:
		return span(b, 1, int(c&0x1f))
	case c >= 0x90 && c <= 0x9f:
		return items(b, 1, int(c&0x0f), depth)
	case c >= 0x80 && c <= 0x8f:
		return items(b, 1, 2*int(c&0x0f), depth)
	}
	switch c {
	case 0xcc, 0xd0:
		return span(b, 1, 1)
	case 0xcd, 0xd1:
		return span(b, 1, 2)
	case 0xce, 0xd2, 0xca:
		return span(b, 1, 4)
	case 0xcf, 0xd3, 0xcb:
		return span(b, 1, 8)
	case 0xc4, 0xd9: // bin8, str8
		if len(b) < 2 {
			return 0, fmt.Errorf("truncated")
		}
		return span(b, 2, int(b[1]))
	case 0xc5, 0xda: // bin16, str16
		if len(b) < 3 {
			return 0, fmt.Errorf("truncated")
		}
		return span(b, 3, int(binary.BigEndian.Uint16(b[1:])))
	case 0xc6, 0xdb: // bin32, str32
		if len(b) < 5 {
			return 0, fmt.Errorf("truncated")
		}
		return span(b, 5, int(binary.BigEndian.Uint32(b[1:])))
	case 0xdc, 0xde: // array16, map16
		if len(b) < 3 {
			return 0, fmt.Errorf("truncated")
		}
		n := int(binary.BigEndian.Uint16(b[1:]))
		if c == 0xde {
			n *= 2
		}
		return items(b, 3, n, depth)
	case 0xdd, 0xdf: // array32, map32
		if len(b) < 5 {
			return 0, fmt.Errorf("truncated")
		}
		n := int(binary.BigEndian.Uint32(b[1:]))
		if c == 0xdf {
			n *= 2
		}
		return items(b, 5, n, depth)
	}
	// ext types and the never-used 0xc1: not part of this protocol.
	return 0, fmt.Errorf("unsupported msgpack code %#x", c)
}

func span(b []byte, hdr, n int) (int, error) {
	if n < 0 || n > len(b)-hdr {
		return 0, fmt.Errorf("length %d exceeds the %d bytes left", n, len(b)-hdr)
	}
	return hdr + n, nil
}

func items(b []byte, hdr, n, depth int) (int, error) {
	if n < 0 || n > len(b)-hdr { // every item takes at least one byte
		return 0, fmt.Errorf("%d items declared in %d bytes", n, len(b)-hdr)
	}
	off := hdr
	for i := 0; i < n; i++ {
		k, err := skip(b[off:], depth+1)
		if err != nil {
			return 0, err
		}
		off += k
	}
	return off, nil
}
