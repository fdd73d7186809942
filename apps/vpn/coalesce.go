package vpn

import (
	"bytes"
	"encoding/binary"
)

// coalescer merges consecutive TCP segments of one flow into one
// super-packet for a GSO write (receive offload, as the kernel's GRO
// does it), following the kernel's rules: same addresses, ports, IP
// fields (IPv4: TOS, TTL, DF, no options, identifications in sequence;
// IPv6: traffic class, flow label, hop limit), the same ACK number,
// window and TCP options, each segment's sequence number where the last
// one ended, every segment but the last of the same size, only ACK and
// PSH flags, and a PSH segment last. A segment that does not fit ends the
// super-packet and may start the next one.
//
// It holds one flow: interleaved flows still work, each packet just ends
// the other flow's super-packet.
type coalescer struct {
	// buf holds the super-packet being built after room bytes that the
	// writer fills with its virtio_net_hdr.
	buf  []byte
	room int
	p    tcpPacket // headers of buf[room:]; p.tcpLen == 0: empty
	mss  int       // payload size of the first segment
	segs int
	last int  // payload size of the last segment
	done bool // a PSH segment or a short one ended the super-packet
}

const maxCoalesced = 65535 // the IPv4 total length field bounds a super-packet

func newCoalescer(room int) *coalescer {
	return &coalescer{buf: make([]byte, room, room+maxCoalesced), room: room}
}

// empty reports whether no segment is held.
func (c *coalescer) empty() bool { return c.p.tcpLen == 0 }

// take returns the held super-packet after room free bytes (headers as
// received, lengths and checksums not yet set), the segment size and the
// segment count, and empties the coalescer; the slice is valid until the
// next add.
func (c *coalescer) take() (b []byte, p tcpPacket, mss, segs int) {
	b, p, mss, segs = c.buf, c.p, c.mss, c.segs
	c.buf, c.p, c.segs, c.done = c.buf[:c.room], tcpPacket{}, 0, false
	return
}

// candidate reports whether the TCP segment pkt (headers p, checksum
// complete) may ever be merged: a data segment with only ACK and PSH set.
func candidate(pkt []byte, p tcpPacket) bool {
	if len(pkt) == p.hdrLen() {
		return false
	}
	if !p.v6 && p.ipLen != 20 {
		return false
	}
	return pkt[p.ipLen+13]&^(tcpACK|tcpPSH) == 0
}

// add appends pkt to the held super-packet if it continues it and
// reports whether it did. It never takes a packet for which candidate is
// false; the caller writes those (and the super-packet held before) on
// their own.
func (c *coalescer) add(pkt []byte, p tcpPacket) bool {
	if !candidate(pkt, p) {
		return false
	}
	if c.empty() {
		c.buf = append(c.buf[:c.room], pkt...)
		c.p, c.mss, c.segs, c.last = p, len(pkt)-p.hdrLen(), 1, len(pkt)-p.hdrLen()
		c.done = pkt[p.ipLen+13]&tcpPSH != 0
		return true
	}
	if c.done || !c.continues(pkt, p) {
		return false
	}
	n := len(pkt) - p.hdrLen()
	if n > c.mss || len(c.buf)-c.room+n > maxCoalesced {
		return false
	}
	c.buf = append(c.buf, pkt[p.hdrLen():]...)
	c.segs++
	c.last = n
	if pkt[p.ipLen+13]&tcpPSH != 0 {
		c.buf[c.room+c.p.ipLen+13] |= tcpPSH
		c.done = true
	}
	if n < c.mss {
		c.done = true
	}
	return true
}

// continues reports whether pkt is the next segment of the held flow.
func (c *coalescer) continues(pkt []byte, p tcpPacket) bool {
	h := c.buf[c.room:]
	if p.v6 != c.p.v6 || p.tcpLen != c.p.tcpLen {
		return false
	}
	be := binary.BigEndian
	if p.v6 {
		// version, traffic class, flow label; next header, hop limit;
		// addresses.
		if be.Uint32(pkt) != be.Uint32(h) || pkt[6] != h[6] || pkt[7] != h[7] || !bytes.Equal(pkt[8:40], h[8:40]) {
			return false
		}
	} else {
		// version/IHL, TOS; flags (DF); TTL, protocol; addresses; the
		// identification following the last segment's.
		if pkt[0] != h[0] || pkt[1] != h[1] || pkt[6]&0xe0 != h[6]&0xe0 || pkt[8] != h[8] || pkt[9] != h[9] ||
			!bytes.Equal(pkt[12:20], h[12:20]) || be.Uint16(pkt[4:]) != be.Uint16(h[4:])+uint16(c.segs) {
			return false
		}
	}
	t, ht := pkt[p.ipLen:p.hdrLen()], h[c.p.ipLen:c.p.hdrLen()]
	if be.Uint32(t) != be.Uint32(ht) { // ports
		return false
	}
	if be.Uint32(t[4:]) != be.Uint32(ht[4:])+uint32(len(c.buf)-c.room-c.p.hdrLen()) { // sequence
		return false
	}
	// ACK number, data offset, flags but PSH (handled by add), window,
	// urgent pointer; options.
	if be.Uint32(t[8:]) != be.Uint32(ht[8:]) || t[12] != ht[12] || t[13]&^tcpPSH != ht[13]&^tcpPSH || be.Uint16(t[14:]) != be.Uint16(ht[14:]) ||
		be.Uint16(t[18:]) != be.Uint16(ht[18:]) || !bytes.Equal(t[20:], ht[20:]) {
		return false
	}
	return true
}
