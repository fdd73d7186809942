package vpn

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// TCP segmentation offload, in software where it has to be (see the
// package doc, "Offloads"). A TUN device opened with IFF_VNET_HDR puts a
// virtio_net_hdr in front of every packet; with TSO turned on, one read
// returns a TCP "super-packet" of up to 64 KiB: one IP and TCP header and
// the payload of many segments, with the TCP checksum field holding only
// the pseudo-header sum. The VPN carries it across the mesh whole, as one
// GSO datagram, and the far end either writes it to its own TUN with a
// virtio_net_hdr asking the kernel to segment it, or cuts it into
// segments itself (segmentTCP). The other way round, consecutive segments
// of one flow that arrive as separate datagrams are merged into one
// super-packet before a TUN write (coalescer).

// virtio_net_hdr (include/uapi/linux/virtio_net.h), in host byte order:
// the TUN device keeps the legacy layout unless told otherwise.
const (
	virtioHdrLen = 10

	virtioFlagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM

	virtioGSONone  = 0    // VIRTIO_NET_HDR_GSO_NONE
	virtioGSOTCPv4 = 1    // VIRTIO_NET_HDR_GSO_TCPV4
	virtioGSOUDP   = 3    // VIRTIO_NET_HDR_GSO_UDP (UFO, fragments)
	virtioGSOTCPv6 = 4    // VIRTIO_NET_HDR_GSO_TCPV6
	virtioGSOUDPL4 = 5    // VIRTIO_NET_HDR_GSO_UDP_L4 (USO)
	virtioGSOECN   = 0x80 // VIRTIO_NET_HDR_GSO_ECN
)

// virtioHdr is a decoded virtio_net_hdr.
type virtioHdr struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16
	gsoSize    uint16
	csumStart  uint16
	csumOffset uint16
}

// errBadPacket is wrapped by the errors of every decoder here: the
// packet is dropped and counted, nothing else happens.
var errBadPacket = errors.New("vpn: malformed packet")

func parseVirtioHdr(b []byte) (virtioHdr, error) {
	if len(b) < virtioHdrLen {
		return virtioHdr{}, fmt.Errorf("%w: %d bytes, short of a virtio_net_hdr", errBadPacket, len(b))
	}
	ne := binary.NativeEndian
	return virtioHdr{
		flags: b[0], gsoType: b[1],
		hdrLen: ne.Uint16(b[2:]), gsoSize: ne.Uint16(b[4:]),
		csumStart: ne.Uint16(b[6:]), csumOffset: ne.Uint16(b[8:]),
	}, nil
}

func (h virtioHdr) put(b []byte) {
	ne := binary.NativeEndian
	b[0], b[1] = h.flags, h.gsoType
	ne.PutUint16(b[2:], h.hdrLen)
	ne.PutUint16(b[4:], h.gsoSize)
	ne.PutUint16(b[6:], h.csumStart)
	ne.PutUint16(b[8:], h.csumOffset)
}

// tcpPacket is where the headers of a TCP/IP packet are (or, with udp
// set, of a UDP/IP packet: tcpLen is then the 8-byte UDP header).
type tcpPacket struct {
	v6     bool
	udp    bool
	ipLen  int // IP header length: 20..60 (IPv4) or 40 (IPv6)
	tcpLen int // TCP header length: 20..60
}

func (p tcpPacket) hdrLen() int { return p.ipLen + p.tcpLen }

// parseTCP checks that pkt is exactly one TCP/IP packet: IPv4 (not a
// fragment, total length = len(pkt)) or IPv6 (no extension headers,
// payload length = len(pkt)-40), a whole TCP header.
func parseTCP(pkt []byte) (tcpPacket, error) { return parseIP(pkt, 6) }

// parseUDP is parseTCP for UDP: the UDP length field must be the rest of
// the packet.
func parseUDP(pkt []byte) (tcpPacket, error) {
	p, err := parseIP(pkt, 17)
	if err != nil {
		return p, err
	}
	p.udp, p.tcpLen = true, 8
	if int(binary.BigEndian.Uint16(pkt[p.ipLen+4:])) != len(pkt)-p.ipLen {
		return p, fmt.Errorf("%w: UDP length %d in %d bytes", errBadPacket, binary.BigEndian.Uint16(pkt[p.ipLen+4:]), len(pkt)-p.ipLen)
	}
	return p, nil
}

// parseIP checks the IP header of pkt and a transport header of protocol
// proto (6 TCP, 17 UDP) after it.
func parseIP(pkt []byte, proto byte) (tcpPacket, error) {
	if len(pkt) < 1 {
		return tcpPacket{}, fmt.Errorf("%w: empty", errBadPacket)
	}
	var p tcpPacket
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return p, fmt.Errorf("%w: %d bytes, short of an IPv4 header", errBadPacket, len(pkt))
		}
		p.ipLen = int(pkt[0]&0x0f) * 4
		if p.ipLen < 20 || int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt) {
			return p, fmt.Errorf("%w: IPv4 header length %d, total length %d in %d bytes", errBadPacket, p.ipLen, binary.BigEndian.Uint16(pkt[2:]), len(pkt))
		}
		if pkt[9] != proto {
			return p, fmt.Errorf("%w: IPv4 protocol %d, want %d", errBadPacket, pkt[9], proto)
		}
		if binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 {
			return p, fmt.Errorf("%w: an IPv4 fragment", errBadPacket)
		}
	case 6:
		p.v6, p.ipLen = true, 40
		if len(pkt) < 40 || int(binary.BigEndian.Uint16(pkt[4:]))+40 != len(pkt) {
			return p, fmt.Errorf("%w: IPv6 payload length does not match %d bytes", errBadPacket, len(pkt))
		}
		if pkt[6] != proto {
			return p, fmt.Errorf("%w: IPv6 next header %d, want %d", errBadPacket, pkt[6], proto)
		}
	default:
		return p, fmt.Errorf("%w: IP version %d", errBadPacket, pkt[0]>>4)
	}
	if proto == 17 {
		if len(pkt) < p.ipLen+8 {
			return p, fmt.Errorf("%w: %d bytes, short of a UDP header", errBadPacket, len(pkt))
		}
		return p, nil
	}
	if len(pkt) < p.ipLen+20 {
		return p, fmt.Errorf("%w: %d bytes, short of a TCP header", errBadPacket, len(pkt))
	}
	p.tcpLen = int(pkt[p.ipLen+12]>>4) * 4
	if p.tcpLen < 20 || p.hdrLen() > len(pkt) {
		return p, fmt.Errorf("%w: TCP header length %d in %d bytes", errBadPacket, p.tcpLen, len(pkt)-p.ipLen)
	}
	return p, nil
}

// TCP flags (byte 13 of the header).
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
	tcpECE = 0x40
	tcpCWR = 0x80
)

// sum16 adds b to the one's-complement sum s as big-endian 16-bit words
// (an odd last byte padded with zero); fold it with fold16.
func sum16(s uint64, b []byte) uint64 {
	for len(b) >= 8 {
		s += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

func fold16(s uint64) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// pseudoSum is the sum of the TCP/UDP pseudo-header of ip (its addresses,
// protocol proto and the transport length l).
func pseudoSum(ip []byte, v6 bool, proto uint8, l int) uint64 {
	var s uint64
	if v6 {
		s = sum16(0, ip[8:40])
	} else {
		s = sum16(0, ip[12:20])
	}
	return s + uint64(proto) + uint64(l)
}

// setIPv4Checksum recomputes the header checksum of the IPv4 header ip.
func setIPv4Checksum(ip []byte) {
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^fold16(sum16(0, ip)))
}

// setIPLength writes the total length n of packet pkt into its header.
func setIPLength(pkt []byte, v6 bool, n int) {
	if v6 {
		binary.BigEndian.PutUint16(pkt[4:], uint16(n-40))
	} else {
		binary.BigEndian.PutUint16(pkt[2:], uint16(n))
	}
}

// setTCPChecksum completes the TCP checksum of pkt (full: a packet a host
// accepts as it is) or, with partial, leaves only the pseudo-header sum
// in it, as the kernel does for CHECKSUM_PARTIAL and GSO packets.
func setTCPChecksum(pkt []byte, p tcpPacket, partial bool) {
	tcp := pkt[p.ipLen:]
	tcp[16], tcp[17] = 0, 0
	s := pseudoSum(pkt, p.v6, 6, len(tcp))
	if partial {
		binary.BigEndian.PutUint16(tcp[16:], fold16(s))
		return
	}
	binary.BigEndian.PutUint16(tcp[16:], ^fold16(sum16(s, tcp)))
}

// completeChecksum finishes a checksum the kernel left partial
// (VIRTIO_NET_HDR_F_NEEDS_CSUM on a packet that is not GSO): the field at
// start+offset holds the pseudo-header sum; the sum from start to the end
// of pkt, complemented, goes in its place.
func completeChecksum(pkt []byte, start, offset int) error {
	if start < 0 || offset < 0 || start+offset+2 > len(pkt) {
		return fmt.Errorf("%w: checksum at %d+%d outside %d bytes", errBadPacket, start, offset, len(pkt))
	}
	c := ^fold16(sum16(0, pkt[start:]))
	if c == 0 && offset == 6 { // UDP sends a computed zero as 0xffff
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[start+offset:], c)
	return nil
}

// segmentTCP cuts the TCP super-packet pkt (headers p, payload in
// segments of mss bytes) into packets of at most perOut segments each and
// calls emit with each, in order, after room free bytes of buf (grown if
// short; emit must be done with the bytes when it returns). It does what
// the kernel's TSO does: every packet gets a copy of the headers with its
// own length, sequence number and (IPv4) identification, the first ID's
// successors in order; FIN and PSH stay on the last packet only, CWR on
// the first only. A packet of one segment gets complete checksums; a
// longer one keeps a partial TCP checksum (the pseudo-header sum) for a
// GSO write. It returns the buffer for reuse.
func segmentTCP(buf []byte, room int, pkt []byte, p tcpPacket, mss, perOut int, emit func([]byte) error) ([]byte, error) {
	hl := p.hdrLen()
	payload := pkt[hl:]
	if mss < 1 || perOut < 1 {
		return buf, fmt.Errorf("%w: segment size %d, %d per packet", errBadPacket, mss, perOut)
	}
	if len(payload) == 0 {
		return buf, fmt.Errorf("%w: a TCP super-packet without payload", errBadPacket)
	}
	if cap(buf) < room {
		buf = make([]byte, room, room+hl+min(mss*perOut, len(payload)))
	}
	chunk := mss * perOut
	seq := binary.BigEndian.Uint32(pkt[p.ipLen+4:])
	var id uint16
	if !p.v6 {
		id = binary.BigEndian.Uint16(pkt[4:])
	}
	flags := pkt[p.ipLen+13]
	for off, seg := 0, 0; off < len(payload); off += chunk {
		n := min(chunk, len(payload)-off)
		b, out := appendSegment(buf[:room], pkt[:hl], payload[off:off+n], p, id+uint16(seg))
		buf = b
		tcp := out[p.ipLen:]
		binary.BigEndian.PutUint32(tcp[4:], seq+uint32(off))
		f := flags
		if off > 0 {
			f &^= tcpCWR
		}
		if off+n < len(payload) {
			f &^= tcpFIN | tcpPSH
		}
		tcp[13] = f
		setTCPChecksum(out, p, n > mss)
		if err := emit(b); err != nil {
			return buf, err
		}
		seg += (n + mss - 1) / mss
	}
	return buf, nil
}

// appendSegment appends to buf the headers hdr of a super-packet
// (headers p) and the payload of one of its segments, and sets the new
// packet's IP length and, on IPv4, its identification id and header
// checksum. It returns buf and the packet in it.
func appendSegment(buf, hdr, payload []byte, p tcpPacket, id uint16) (b, out []byte) {
	b = append(append(buf, hdr...), payload...)
	out = b[len(buf):]
	setIPLength(out, p.v6, len(out))
	if !p.v6 {
		binary.BigEndian.PutUint16(out[4:], id)
		setIPv4Checksum(out[:p.ipLen])
	}
	return b, out
}

// segments returns how many segments of mss bytes the super-packet pkt
// (headers p) holds; 1 for a plain packet (mss 0).
func segments(pkt []byte, p tcpPacket, mss int) int {
	if mss == 0 {
		return 1
	}
	return (len(pkt) - p.hdrLen() + mss - 1) / mss
}

// segmentUDP cuts the UDP super-packet pkt (headers p, USO: payload in
// datagrams of mss bytes) into UDP packets and calls emit with each, as
// segmentTCP does: every packet gets the headers with its own IP and UDP
// length, IPv4 identification (the first one's successors) and complete
// checksums.
func segmentUDP(buf []byte, room int, pkt []byte, p tcpPacket, mss int, emit func([]byte) error) ([]byte, error) {
	hl := p.hdrLen()
	payload := pkt[hl:]
	if mss < 1 || len(payload) == 0 {
		return buf, fmt.Errorf("%w: UDP segment size %d for %d bytes", errBadPacket, mss, len(payload))
	}
	if cap(buf) < room {
		buf = make([]byte, room, room+hl+mss)
	}
	var id uint16
	if !p.v6 {
		id = binary.BigEndian.Uint16(pkt[4:])
	}
	for off, seg := 0, 0; off < len(payload); off, seg = off+mss, seg+1 {
		n := min(mss, len(payload)-off)
		b, out := appendSegment(buf[:room], pkt[:hl], payload[off:off+n], p, id+uint16(seg))
		buf = b
		setUDPChecksum(out, p)
		if err := emit(b); err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// setUDPChecksum sets the UDP length and a complete checksum of pkt.
func setUDPChecksum(pkt []byte, p tcpPacket) {
	udp := pkt[p.ipLen:]
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	udp[6], udp[7] = 0, 0
	c := ^fold16(sum16(pseudoSum(pkt, p.v6, 17, len(udp)), udp))
	if c == 0 {
		c = 0xffff // a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(udp[6:], c)
}

// segmentPlain cuts a TCP or UDP super-packet into plain packets.
func segmentPlain(buf []byte, room int, pkt []byte, p tcpPacket, mss int, emit func([]byte) error) ([]byte, error) {
	if p.udp {
		return segmentUDP(buf, room, pkt, p, mss, emit)
	}
	return segmentTCP(buf, room, pkt, p, mss, 1, emit)
}
