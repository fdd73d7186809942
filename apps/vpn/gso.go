package vpn

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A GSO datagram carries one TCP super-packet across the mesh:
//
//	+---------+---------+----------------------+----------------------------+
//	| kind: 1 | flags: 0| segment size: u16 BE | IP packet (TCP, >1 segment) |
//	+---------+---------+----------------------+----------------------------+
//
// An IP packet starts with 0x4_ or 0x6_, so the first byte tells a GSO
// datagram (kind 0x01) from a plain packet. The IP header's length fields
// count the whole super-packet; its IPv4 header checksum and the TCP
// checksum are ignored (the receiver sets them). A peer sends GSO
// datagrams only to a peer that said it takes them (hello/assign "gso").
const (
	gsoDgramHdrLen = 4
	gsoKindTCP     = 0x01
	// minGSOSize is the smallest segment size a GSO datagram may ask
	// for: below it one datagram would make the far end's kernel send
	// thousands of tiny packets (a 64 KiB datagram of 1-byte segments is
	// 65,000 packets). A TUN MTU of at least 576 gives segments of 500+.
	minGSOSize = 256

	// maxDatagram is the largest datagram payload the node's session
	// carries in one packet (see session.Config.DatagramMTU): a 64 KiB
	// link frame less the 5-byte data header, the 24-byte packet cipher,
	// the 14-byte worst-case session datagram frame and the node's 4-byte
	// datagram header. A super-packet that does not fit is sent as two.
	maxDatagram = 64<<10 - 5 - sessionCipherLen - sessionFrameLen - nodeDgramHdrLen
)

// decodeDatagram splits a datagram from the mesh into the IP packet it
// carries and, for a GSO datagram, the segment size of the TCP
// super-packet (0 for a plain packet, which is returned as it is for the
// role's checks). A GSO datagram is checked here: its super-packet is a
// well-formed TCP/IP packet (parseTCP) of more than one segment.
func decodeDatagram(b []byte) (pkt []byte, mss int, p tcpPacket, err error) {
	if len(b) == 0 || b[0]>>4 != 0 {
		return b, 0, tcpPacket{}, nil
	}
	if len(b) < gsoDgramHdrLen || b[0] != gsoKindTCP || b[1] != 0 {
		return nil, 0, p, fmt.Errorf("%w: datagram of kind %#x", errBadPacket, b[0])
	}
	mss = int(binary.BigEndian.Uint16(b[2:]))
	pkt = b[gsoDgramHdrLen:]
	if p, err = parseTCP(pkt); err != nil {
		return nil, 0, p, err
	}
	if mss < minGSOSize || len(pkt)-p.hdrLen() <= mss {
		return nil, 0, p, fmt.Errorf("%w: GSO datagram: %d payload bytes in segments of %d", errBadPacket, len(pkt)-p.hdrLen(), mss)
	}
	return pkt, mss, p, nil
}

// putGSOHeader writes a GSO datagram header into b[:gsoDgramHdrLen].
func putGSOHeader(b []byte, mss int) {
	b[0], b[1] = gsoKindTCP, 0
	binary.BigEndian.PutUint16(b[2:], uint16(mss))
}

// errSkip is returned by tunReader.read for a packet it dropped (counted
// by the caller); the loop goes on.
var errSkip = errors.New("vpn: packet skipped")

// tunReader reads packets from a device, with offloads if it has them.
type tunReader struct {
	dev  Device
	vdev VnetDevice // nil: no offloads
	buf  []byte
}

func newTunReader(dev Device) *tunReader {
	r := &tunReader{dev: dev, buf: make([]byte, virtioHdrLen+1<<16)}
	if v, ok := dev.(VnetDevice); ok && v.Offloads() {
		r.vdev = v
	}
	return r
}

// read returns the next packet, at buf[virtioHdrLen:] (the bytes before it
// are free for a header): a plain IP packet with complete checksums
// (mss 0), or a TCP super-packet of segments of mss bytes (headers p,
// checksums not set), or (p.udp) a UDP one of datagrams of mss bytes. A packet it cannot use gives an error wrapping
// errSkip; a device error ends the loop.
func (r *tunReader) read() (pkt []byte, mss int, p tcpPacket, err error) {
	if r.vdev == nil {
		n, err := r.dev.Read(r.buf[virtioHdrLen:])
		if err != nil {
			return nil, 0, p, fmt.Errorf("read %s: %w", r.dev.Name(), err)
		}
		return r.buf[virtioHdrLen : virtioHdrLen+n], 0, p, nil
	}
	n, err := r.vdev.ReadVnet(r.buf)
	if err != nil {
		return nil, 0, p, fmt.Errorf("read %s: %w", r.dev.Name(), err)
	}
	pkt, mss, p, err = splitVnet(r.buf[:n])
	if err != nil {
		return nil, 0, p, fmt.Errorf("%w: %w", errSkip, err)
	}
	return pkt, mss, p, nil
}

// splitVnet decodes what a TUN device with offloads read: a virtio_net_hdr
// and a packet. A packet the kernel left with a partial checksum gets it
// completed; a TCP super-packet is returned with its segment size (and,
// if it holds only one segment, completed and returned as plain).
func splitVnet(b []byte) (pkt []byte, mss int, p tcpPacket, err error) {
	h, err := parseVirtioHdr(b)
	if err != nil {
		return nil, 0, p, err
	}
	pkt = b[virtioHdrLen:]
	switch h.gsoType &^ virtioGSOECN {
	case virtioGSONone:
		if h.flags&virtioFlagNeedsCsum != 0 {
			if err := completeChecksum(pkt, int(h.csumStart), int(h.csumOffset)); err != nil {
				return nil, 0, p, err
			}
		}
		return pkt, 0, p, nil
	case virtioGSOTCPv4, virtioGSOTCPv6:
		if p, err = parseTCP(pkt); err != nil {
			return nil, 0, p, err
		}
		if p.v6 != (h.gsoType&^virtioGSOECN == virtioGSOTCPv6) || h.gsoSize == 0 {
			return nil, 0, p, fmt.Errorf("%w: GSO type %d, segment size %d for this packet", errBadPacket, h.gsoType, h.gsoSize)
		}
		if len(pkt)-p.hdrLen() <= int(h.gsoSize) {
			if !p.v6 {
				setIPv4Checksum(pkt[:p.ipLen])
			}
			setTCPChecksum(pkt, p, false)
			return pkt, 0, p, nil
		}
		return pkt, int(h.gsoSize), p, nil
	case virtioGSOUDPL4:
		if p, err = parseUDP(pkt); err != nil {
			return nil, 0, p, err
		}
		if h.gsoSize == 0 {
			return nil, 0, p, fmt.Errorf("%w: UDP GSO with segment size 0", errBadPacket)
		}
		if len(pkt)-p.hdrLen() <= int(h.gsoSize) {
			if !p.v6 {
				setIPv4Checksum(pkt[:p.ipLen])
			}
			setUDPChecksum(pkt, p)
			return pkt, 0, p, nil
		}
		return pkt, int(h.gsoSize), p, nil
	}
	return nil, 0, p, fmt.Errorf("%w: GSO type %d not enabled", errBadPacket, h.gsoType)
}

// tunWriter writes packets from the mesh to a device: with offloads, a
// TCP super-packet in one write that the kernel segments, and runs of
// segments coalesced into one; without, a super-packet segment by segment.
type tunWriter struct {
	dev  Device
	vdev VnetDevice
	co   *coalescer
	buf  []byte
	hdr  [virtioHdrLen]byte
}

func newTunWriter(dev Device) *tunWriter {
	w := &tunWriter{dev: dev, buf: make([]byte, 0, virtioHdrLen+1<<16)}
	if v, ok := dev.(VnetDevice); ok && v.Offloads() {
		w.vdev = v
		w.co = newCoalescer(virtioHdrLen)
	}
	return w
}

// write writes pkt, a plain packet (mss 0) or a checked TCP super-packet
// (headers p, segments of mss bytes). A plain TCP segment may wait in the
// coalescer for the next: call flush when no packet follows soon.
func (w *tunWriter) write(pkt []byte, mss int, p tcpPacket) error {
	if w.vdev == nil {
		if mss == 0 {
			_, err := w.dev.Write(pkt)
			return err
		}
		var err error
		w.buf, err = segmentTCP(w.buf, 0, pkt, p, mss, 1, func(seg []byte) error {
			_, err := w.dev.Write(seg)
			return err
		})
		return err
	}
	if mss == 0 {
		if q, err := parseTCP(pkt); err == nil && w.co.add(pkt, q) {
			return nil
		} else if err == nil && candidate(pkt, q) {
			// Continues nothing held: what is held goes first, and
			// this segment may start the next super-packet.
			if err := w.flush(); err != nil {
				return err
			}
			w.co.add(pkt, q)
			return nil
		}
		if err := w.flush(); err != nil {
			return err
		}
		w.buf = append(append(w.buf[:0], w.hdr[:]...), pkt...)
		virtioHdr{}.put(w.buf)
		_, err := w.vdev.WriteVnet(w.buf)
		return err
	}
	if err := w.flush(); err != nil {
		return err
	}
	w.buf = append(append(w.buf[:0], w.hdr[:]...), pkt...)
	return w.writeGSO(w.buf, p, mss)
}

// flush writes the super-packet the coalescer holds, if any.
func (w *tunWriter) flush() error {
	if w.co == nil || w.co.empty() {
		return nil
	}
	full, p, mss, segs := w.co.take()
	if segs == 1 { // arrived whole, checksums complete
		virtioHdr{}.put(full)
		_, err := w.vdev.WriteVnet(full)
		return err
	}
	return w.writeGSO(full, p, mss)
}

// writeGSO writes the TCP super-packet b[virtioHdrLen:] (headers p) for
// the kernel to cut into segments of mss bytes.
func (w *tunWriter) writeGSO(b []byte, p tcpPacket, mss int) error {
	pkt := b[virtioHdrLen:]
	setIPLength(pkt, p.v6, len(pkt))
	gso := uint8(virtioGSOTCPv4)
	if p.v6 {
		gso = virtioGSOTCPv6
	} else {
		setIPv4Checksum(pkt[:p.ipLen])
	}
	if pkt[p.ipLen+13]&tcpCWR != 0 {
		gso |= virtioGSOECN
	}
	setTCPChecksum(pkt, p, true)
	virtioHdr{
		flags: virtioFlagNeedsCsum, gsoType: gso,
		hdrLen: uint16(p.hdrLen()), gsoSize: uint16(mss),
		csumStart: uint16(p.ipLen), csumOffset: 16,
	}.put(b)
	_, err := w.vdev.WriteVnet(b)
	return err
}
