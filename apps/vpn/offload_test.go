package vpn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// The tests build packets by hand and check checksums with refSum, a
// plain RFC 1071 sum over explicitly built pseudo-headers: nothing of
// offload.go's arithmetic.

// refSum is the one's-complement sum of the 16-bit big-endian words of
// the concatenation of parts, folded (0xffff means "checks").
func refSum(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var s uint32
	for i := 0; i < len(all); i += 2 {
		s += uint32(all[i])<<8 | uint32(all[i+1])
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// refPseudo is the TCP/UDP pseudo-header of ip for a transport of l bytes.
func refPseudo(ip []byte, proto byte, l int) []byte {
	if ip[0]>>4 == 6 {
		p := append([]byte(nil), ip[8:40]...)
		return append(p, byte(l>>24), byte(l>>16), byte(l>>8), byte(l), 0, 0, 0, proto)
	}
	p := append([]byte(nil), ip[12:20]...)
	return append(p, 0, proto, byte(l>>8), byte(l))
}

// checkPacket fails unless pkt is a TCP/IP packet whose IPv4 header
// checksum and TCP checksum verify.
func checkPacket(t *testing.T, pkt []byte) {
	t.Helper()
	checkSums(t, pkt, 6, "TCP", parseTCP)
}

// checkSums fails unless pkt parses with parse as a packet of protocol
// proto (named name) whose IPv4 header checksum and transport checksum
// verify.
func checkSums(t *testing.T, pkt []byte, proto byte, name string, parse func([]byte) (tcpPacket, error)) {
	t.Helper()
	p, err := parse(pkt)
	if err != nil {
		t.Fatalf("%s packet does not parse: %v", name, err)
	}
	if !p.v6 && refSum(pkt[:p.ipLen]) != 0xffff {
		t.Fatal("IPv4 header checksum wrong")
	}
	if refSum(refPseudo(pkt, proto, len(pkt)-p.ipLen), pkt[p.ipLen:]) != 0xffff {
		t.Fatalf("%s checksum wrong", name)
	}
}

// checkPartial fails unless the TCP checksum field of pkt holds the
// folded pseudo-header sum (what the kernel leaves for CHECKSUM_PARTIAL).
func checkPartial(t *testing.T, pkt []byte, p tcpPacket) {
	t.Helper()
	want := refSum(refPseudo(pkt, 6, len(pkt)-p.ipLen))
	if got := binary.BigEndian.Uint16(pkt[p.ipLen+16:]); got != want {
		t.Fatalf("partial TCP checksum %#04x, want the pseudo-header sum %#04x", got, want)
	}
}

// tcpSpec describes a hand-made packet.
type tcpSpec struct {
	v6      bool
	id      uint16 // IPv4 identification
	seq     uint32
	flags   byte
	opts    []byte // TCP options, a multiple of 4 bytes
	payload []byte
}

var (
	src4, dst4 = []byte{10, 77, 0, 2}, []byte{10, 200, 0, 2}
	src6       = []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}
	dst6       = []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9}
	tsOption   = []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2} // NOP NOP timestamps
)

// mkTCP builds the packet s with correct checksums (refSum).
func mkTCP(s tcpSpec) []byte {
	tcp := make([]byte, 20+len(s.opts))
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], s.seq)
	binary.BigEndian.PutUint32(tcp[8:], 777)
	tcp[12] = byte(len(tcp)/4) << 4
	tcp[13] = s.flags
	binary.BigEndian.PutUint16(tcp[14:], 502)
	copy(tcp[20:], s.opts)
	tcp = append(tcp, s.payload...)
	ip := refIP(s.v6, 6, len(tcp), s.id, 0x40) // DF
	binary.BigEndian.PutUint16(tcp[16:], ^refSum(refPseudo(ip, 6, len(tcp)), tcp))
	return append(ip, tcp...)
}

// refIP builds the IP header, src4 to dst4 or src6 to dst6 with TTL 64,
// of a packet of protocol proto with l4 bytes after the header; on IPv4
// with the identification id, frag (the byte at offset 6: 0x40 is DF)
// and a correct checksum.
func refIP(v6 bool, proto byte, l4 int, id uint16, frag byte) []byte {
	if v6 {
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(l4))
		ip[6], ip[7] = proto, 64
		copy(ip[8:], src6)
		copy(ip[24:], dst6)
		return ip
	}
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+l4))
	binary.BigEndian.PutUint16(ip[4:], id)
	ip[6] = frag
	ip[8], ip[9] = 64, proto
	copy(ip[12:], src4)
	copy(ip[16:], dst4)
	binary.BigEndian.PutUint16(ip[10:], ^refSum(ip))
	return ip
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func variants() []struct {
	name string
	v6   bool
	opts []byte
} {
	return []struct {
		name string
		v6   bool
		opts []byte
	}{{"ipv4", false, nil}, {"ipv4+options", false, tsOption}, {"ipv6", true, nil}, {"ipv6+options", true, tsOption}}
}

// A super-packet cut into segments: each a packet a host accepts, with
// sequence numbers and IPv4 IDs in order, PSH and FIN only on the last,
// CWR only on the first, the payload unchanged; cut into groups of three
// segments, each group keeps a partial checksum for a GSO write.
func TestSegmentTCP(t *testing.T) {
	const mss = 1000
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			payload := pattern(10*mss + 123)
			super := mkTCP(tcpSpec{v6: v.v6, id: 0xfffe, seq: 0xffffff00, flags: tcpACK | tcpPSH | tcpFIN | tcpCWR, opts: v.opts, payload: payload})
			p, err := parseTCP(super)
			if err != nil {
				t.Fatal(err)
			}
			for _, per := range []int{1, 3} {
				var got []byte
				var outs [][]byte
				_, err := segmentTCP(nil, 0, super, p, mss, per, func(b []byte) error {
					outs = append(outs, append([]byte(nil), b...))
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if want := (11 + per - 1) / per; len(outs) != want {
					t.Fatalf("per %d: %d packets, want %d", per, len(outs), want)
				}
				for i, o := range outs {
					q, err := parseTCP(o)
					if err != nil {
						t.Fatalf("per %d packet %d: %v", per, i, err)
					}
					n := len(o) - q.hdrLen()
					if n <= mss {
						checkPacket(t, o)
					} else {
						checkPartial(t, o, q)
						if !v.v6 && refSum(o[:q.ipLen]) != 0xffff {
							t.Fatalf("packet %d: IPv4 header checksum wrong", i)
						}
					}
					if seq := binary.BigEndian.Uint32(o[q.ipLen+4:]); seq != 0xffffff00+uint32(len(got)) {
						t.Errorf("per %d packet %d: seq %#x", per, i, seq)
					}
					if !v.v6 {
						if id := binary.BigEndian.Uint16(o[4:]); id != 0xfffe+uint16(i*per) {
							t.Errorf("per %d packet %d: IPv4 ID %#x, want %#x", per, i, id, 0xfffe+uint16(i*per))
						}
					}
					f := o[q.ipLen+13]
					last, first := i == len(outs)-1, i == 0
					if (f&tcpPSH != 0) != last || (f&tcpFIN != 0) != last || (f&tcpCWR != 0) != first || f&tcpACK == 0 {
						t.Errorf("per %d packet %d of %d: flags %#x", per, i, len(outs), f)
					}
					if !bytes.Equal(o[q.ipLen+20:q.hdrLen()], v.opts) {
						t.Errorf("packet %d: options %x, want %x", i, o[q.ipLen+20:q.hdrLen()], v.opts)
					}
					got = append(got, o[q.hdrLen():]...)
				}
				if !bytes.Equal(got, payload) {
					t.Fatalf("per %d: payloads differ", per)
				}
			}
		})
	}
}

// segmentsOf cuts payload into packets of mss bytes from seq and id, the
// flags on every one (PSH on the last if last).
func segmentsOf(v6 bool, opts []byte, id uint16, seq uint32, payload []byte, mss int, psh bool) [][]byte {
	var out [][]byte
	for off := 0; off < len(payload); off += mss {
		n := min(mss, len(payload)-off)
		f := byte(tcpACK)
		if psh && off+n == len(payload) {
			f |= tcpPSH
		}
		out = append(out, mkTCP(tcpSpec{v6: v6, id: id + uint16(len(out)), seq: seq + uint32(off), flags: f, opts: opts, payload: payload[off : off+n]}))
	}
	return out
}

// fakeVnet is a VnetDevice that records what is written.
type fakeVnet struct {
	writes [][]byte
	plain  [][]byte
}

func (d *fakeVnet) Name() string                   { return "fake0" }
func (d *fakeVnet) Close() error                   { return nil }
func (d *fakeVnet) Offloads() bool                 { return true }
func (d *fakeVnet) Read(b []byte) (int, error)     { return 0, errors.New("not used") }
func (d *fakeVnet) ReadVnet(b []byte) (int, error) { return 0, errors.New("not used") }
func (d *fakeVnet) Write(b []byte) (int, error) {
	d.plain = append(d.plain, bytes.Clone(b))
	return len(b), nil
}
func (d *fakeVnet) WriteVnet(b []byte) (int, error) {
	d.writes = append(d.writes, bytes.Clone(b))
	return len(b), nil
}

func countGSO(ws [][]byte) (n int) {
	for _, w := range ws {
		if h, _ := parseVirtioHdr(w); h.gsoType != virtioGSONone {
			n++
		}
	}
	return n
}

// kernelSegments does what the kernel does with each write: a GSO write
// (checked: NEEDS_CSUM, csum_start at the TCP header, offset 16, hdr_len,
// a partial checksum, a valid IPv4 header checksum) is cut into segments
// of gso_size; a plain write is taken as it is. Every packet returned is
// checked with refSum.
func kernelSegments(t *testing.T, writes [][]byte) [][]byte {
	t.Helper()
	var out [][]byte
	for _, w := range writes {
		h, err := parseVirtioHdr(w)
		if err != nil {
			t.Fatal(err)
		}
		pkt := w[virtioHdrLen:]
		if h.gsoType == virtioGSONone {
			checkPacket(t, pkt)
			out = append(out, bytes.Clone(pkt))
			continue
		}
		p, err := parseTCP(pkt)
		if err != nil {
			t.Fatalf("GSO write does not parse: %v", err)
		}
		wantType := uint8(virtioGSOTCPv4)
		if p.v6 {
			wantType = virtioGSOTCPv6
		}
		if h.gsoType&^virtioGSOECN != wantType || h.flags != virtioFlagNeedsCsum || int(h.csumStart) != p.ipLen ||
			h.csumOffset != 16 || int(h.hdrLen) != p.hdrLen() || h.gsoSize == 0 {
			t.Fatalf("GSO write with header %+v for a packet with headers %+v", h, p)
		}
		checkPartial(t, pkt, p)
		if !p.v6 && refSum(pkt[:p.ipLen]) != 0xffff {
			t.Fatalf("GSO write: IPv4 header checksum wrong")
		}
		if _, err := segmentTCP(nil, 0, pkt, p, int(h.gsoSize), 1, func(b []byte) error {
			checkPacket(t, b)
			out = append(out, bytes.Clone(b))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// writeAll writes pkts (plain packets from the mesh) through a writer on
// a fakeVnet, flushing at the end, and returns the device.
func writeAll(t *testing.T, pkts [][]byte) *fakeVnet {
	t.Helper()
	d := &fakeVnet{}
	w := newTunWriter(d)
	for _, p := range pkts {
		if err := w.write(bytes.Clone(p), 0, tcpPacket{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	return d
}

func sameSequence(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("the kernel would deliver %d packets, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("packet %d differs:\n got %x\nwant %x", i, got[i], want[i])
		}
	}
}

// Segments from the mesh are coalesced into GSO writes by the kernel's
// rules; what the kernel makes of the writes is exactly the segments, in
// the order they came.
func TestCoalesce(t *testing.T) {
	const mss = 1000
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			seg := func(id uint16, seq uint32, flags byte, n int, opts []byte) []byte {
				return mkTCP(tcpSpec{v6: v.v6, id: id, seq: seq, flags: flags, opts: opts, payload: pattern(n)})
			}
			opts2 := bytes.Clone(tsOption) // options appear
			if v.opts != nil {
				opts2[11]++ // another timestamp echo
			}
			cases := []struct {
				name   string
				pkts   [][]byte
				writes int // how many writes, how many of them GSO
				gso    int
			}{
				{"one flow, short last with PSH", segmentsOf(v.v6, v.opts, 1, 100, pattern(20*mss+500), mss, true), 1, 1},
				// 66 segments do not fit in one IP packet's 65,535 bytes.
				{"more than 64 KiB", segmentsOf(v.v6, v.opts, 1, 100, pattern(66*mss), mss, false), 2, 1},
				{"PSH in the middle", [][]byte{
					seg(1, 0, tcpACK, mss, v.opts), seg(2, mss, tcpACK|tcpPSH, mss, v.opts),
					seg(3, 2*mss, tcpACK, mss, v.opts), seg(4, 3*mss, tcpACK, mss, v.opts),
				}, 2, 2},
				{"FIN ends the flow", [][]byte{
					seg(1, 0, tcpACK, mss, v.opts), seg(2, mss, tcpACK, mss, v.opts), seg(3, 2*mss, tcpACK|tcpFIN, 10, v.opts),
				}, 2, 1},
				{"out of order", [][]byte{
					seg(1, 0, tcpACK, mss, v.opts), seg(2, mss, tcpACK, mss, v.opts),
					seg(4, 3*mss, tcpACK, mss, v.opts), seg(3, 2*mss, tcpACK, mss, v.opts), seg(5, 4*mss, tcpACK, mss, v.opts),
				}, 4, 1}, // 0+1, 3, 2, 4: a gap ends a super-packet
				{"options change", [][]byte{
					seg(1, 0, tcpACK, mss, v.opts), seg(2, mss, tcpACK, mss, opts2), seg(3, 2*mss, tcpACK, mss, opts2),
				}, 2, 1},
				{"longer segment after a short one", [][]byte{
					seg(1, 0, tcpACK, 500, v.opts), seg(2, 500, tcpACK, mss, v.opts),
				}, 2, 0},
				{"pure ACKs", [][]byte{seg(1, 0, tcpACK, 0, v.opts), seg(2, 0, tcpACK, 0, v.opts)}, 2, 0},
				{"SYN", [][]byte{seg(1, 0, tcpSYN, 0, v.opts), seg(2, 1, tcpACK, mss, v.opts)}, 2, 0},
			}
			if !v.v6 {
				cases = append(cases, struct {
					name   string
					pkts   [][]byte
					writes int
					gso    int
				}{"IPv4 ID gap", [][]byte{seg(1, 0, tcpACK, mss, v.opts), seg(2, mss, tcpACK, mss, v.opts), seg(9, 2*mss, tcpACK, mss, v.opts)}, 2, 1})
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					d := writeAll(t, c.pkts)
					if len(d.writes) != c.writes || countGSO(d.writes) != c.gso {
						t.Errorf("%d writes, %d GSO; want %d, %d", len(d.writes), countGSO(d.writes), c.writes, c.gso)
					}
					sameSequence(t, kernelSegments(t, d.writes), c.pkts)
				})
			}
		})
	}
}

// A GSO datagram from the mesh becomes one GSO write on a device with
// offloads, and its segments on a device without; both are the segments
// the sender's kernel would have sent.
func TestWriteSuperPacket(t *testing.T) {
	const mss = 1448
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			payload := pattern(30*mss + 7)
			want := segmentsOf(v.v6, v.opts, 40, 1000, payload, mss, true)
			super := mkTCP(tcpSpec{v6: v.v6, id: 40, seq: 1000, flags: tcpACK | tcpPSH, opts: v.opts, payload: payload})
			// The sender's kernel leaves a partial checksum; the wire
			// form says it is ignored: scribble over it.
			dgram := append([]byte{gsoKindTCP, 0, mss >> 8, mss & 0xff}, super...)
			p, _ := parseTCP(super)
			dgram[gsoDgramHdrLen+p.ipLen+16] ^= 0x5a
			if !v.v6 {
				dgram[gsoDgramHdrLen+10] ^= 0x5a
			}
			pkt, gotMSS, q, err := decodeDatagram(dgram)
			if err != nil || gotMSS != mss || q != p {
				t.Fatalf("decodeDatagram: mss %d, headers %+v, %v", gotMSS, q, err)
			}
			vd := &fakeVnet{}
			w := newTunWriter(vd)
			if err := w.write(bytes.Clone(pkt), mss, q); err != nil {
				t.Fatal(err)
			}
			if len(vd.writes) != 1 {
				t.Fatalf("%d writes to a device with offloads, want 1", len(vd.writes))
			}
			sameSequence(t, kernelSegments(t, vd.writes), want)

			pd := &plainDev{}
			w = newTunWriter(pd)
			if err := w.write(bytes.Clone(pkt), mss, q); err != nil {
				t.Fatal(err)
			}
			for _, b := range pd.writes {
				checkPacket(t, b)
			}
			sameSequence(t, pd.writes, want)
		})
	}
}

// plainDev is a Device without offloads that records writes.
type plainDev struct{ writes [][]byte }

func (d *plainDev) Name() string               { return "plain0" }
func (d *plainDev) Close() error               { return nil }
func (d *plainDev) Read(b []byte) (int, error) { return 0, errors.New("not used") }
func (d *plainDev) Write(b []byte) (int, error) {
	d.writes = append(d.writes, bytes.Clone(b))
	return len(b), nil
}

func TestDecodeDatagram(t *testing.T) {
	super := mkTCP(tcpSpec{id: 1, flags: tcpACK, payload: pattern(3000)})
	gso := func(kind, flags byte, mss uint16, pkt []byte) []byte {
		return append([]byte{kind, flags, byte(mss >> 8), byte(mss)}, pkt...)
	}
	udp := bytes.Clone(super)
	udp[9] = 17
	cases := []struct {
		name    string
		b       []byte
		mss     int
		wantErr bool
	}{
		{"plain IPv4", super, 0, false},
		{"plain junk is left to the role", []byte{0x45, 1, 2}, 0, false},
		{"empty", nil, 0, false},
		{"GSO", gso(gsoKindTCP, 0, 1000, super), 1000, false},
		{"unknown kind", gso(0x02, 0, 1000, super), 0, true},
		{"flags set", gso(gsoKindTCP, 1, 1000, super), 0, true},
		{"segment size 0", gso(gsoKindTCP, 0, 0, super), 0, true},
		{"segment size 1: 3,000 packets from one datagram", gso(gsoKindTCP, 0, 1, super), 0, true},
		{"smallest segment size", gso(gsoKindTCP, 0, minGSOSize, super), minGSOSize, false},
		{"one segment", gso(gsoKindTCP, 0, 3000, super), 0, true},
		{"short header", []byte{gsoKindTCP, 0, 1}, 0, true},
		{"truncated packet", gso(gsoKindTCP, 0, 1000, super[:len(super)-1]), 0, true},
		{"UDP", gso(gsoKindTCP, 0, 1000, udp), 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, mss, _, err := decodeDatagram(c.b)
			if (err != nil) != c.wantErr || mss != c.mss {
				t.Fatalf("mss %d, err %v; want mss %d, error %v", mss, err, c.mss, c.wantErr)
			}
			if err != nil && !errors.Is(err, errBadPacket) {
				t.Fatalf("error %v does not wrap errBadPacket", err)
			}
		})
	}
}

// vnet prepends a virtio_net_hdr to pkt.
func vnet(h virtioHdr, pkt []byte) []byte {
	b := make([]byte, virtioHdrLen, virtioHdrLen+len(pkt))
	h.put(b)
	return append(b, pkt...)
}

// partial replaces the TCP checksum of pkt with the pseudo-header sum, as
// the kernel hands over a CHECKSUM_PARTIAL packet.
func partial(pkt []byte) []byte {
	pkt = bytes.Clone(pkt)
	p, _ := parseTCP(pkt)
	binary.BigEndian.PutUint16(pkt[p.ipLen+16:], refSum(refPseudo(pkt, 6, len(pkt)-p.ipLen)))
	return pkt
}

// What a TUN device with offloads reads: partial checksums completed,
// super-packets returned with their segment size, the rest refused.
func TestSplitVnet(t *testing.T) {
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			small := mkTCP(tcpSpec{v6: v.v6, id: 3, seq: 9, flags: tcpACK | tcpPSH, opts: v.opts, payload: pattern(100)})
			p, _ := parseTCP(small)
			tcpType := uint8(virtioGSOTCPv4)
			if v.v6 {
				tcpType = virtioGSOTCPv6
			}
			csum := virtioHdr{flags: virtioFlagNeedsCsum, csumStart: uint16(p.ipLen), csumOffset: 16}
			pkt, mss, _, err := splitVnet(vnet(csum, partial(small)))
			if err != nil || mss != 0 || !bytes.Equal(pkt, small) {
				t.Fatalf("partial checksum: mss %d, %v; packet completed correctly: %v", mss, err, bytes.Equal(pkt, small))
			}
			super := mkTCP(tcpSpec{v6: v.v6, id: 3, seq: 9, flags: tcpACK, opts: v.opts, payload: pattern(5000)})
			gsoHdr := virtioHdr{flags: virtioFlagNeedsCsum, gsoType: tcpType, gsoSize: 1000, hdrLen: uint16(p.hdrLen()), csumStart: uint16(p.ipLen), csumOffset: 16}
			if pkt, mss, _, err := splitVnet(vnet(gsoHdr, partial(super))); err != nil || mss != 1000 || len(pkt) != len(super) {
				t.Fatalf("super-packet: mss %d, %d bytes, %v", mss, len(pkt), err)
			}
			// A "super-packet" of one segment is completed and plain.
			one := gsoHdr
			one.gsoSize = 100
			if pkt, mss, _, err := splitVnet(vnet(one, partial(small))); err != nil || mss != 0 || !bytes.Equal(pkt, small) {
				t.Fatalf("one-segment GSO: mss %d, %v", mss, err)
			}
			bad := map[string][]byte{
				"short":            make([]byte, virtioHdrLen-1),
				"wrong IP version": vnet(virtioHdr{gsoType: tcpType ^ (virtioGSOTCPv4 ^ virtioGSOTCPv6), gsoSize: 1000}, super),
				"segment size 0":   vnet(virtioHdr{gsoType: tcpType}, super),
				"UDP_L4":           vnet(virtioHdr{gsoType: virtioGSOUDPL4, gsoSize: 1000}, super),
				"checksum outside": vnet(virtioHdr{flags: virtioFlagNeedsCsum, csumStart: uint16(len(small) - 1), csumOffset: 16}, small),
				"truncated GSO":    vnet(gsoHdr, super[:len(super)-1]),
			}
			for name, b := range bad {
				if _, _, _, err := splitVnet(b); !errors.Is(err, errBadPacket) {
					t.Errorf("%s: %v, want errBadPacket", name, err)
				}
			}
		})
	}
}

// mkUDP builds a UDP packet with a correct checksum (refSum).
func mkUDP(v6 bool, id uint16, payload []byte) []byte {
	udp := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], 5353)
	binary.BigEndian.PutUint16(udp[2:], 4433)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	udp = append(udp, payload...)
	ip := refIP(v6, 17, len(udp), id, 0)
	c := ^refSum(refPseudo(ip, 17, len(udp)), udp)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return append(ip, udp...)
}

// checkUDP fails unless pkt is a UDP/IP packet whose checksums verify.
func checkUDP(t *testing.T, pkt []byte) {
	t.Helper()
	checkSums(t, pkt, 17, "UDP", parseUDP)
}

// A UDP packet with a partial checksum is completed (offset 6); a USO
// super-packet is returned with its datagram size and cuts into the
// datagrams the sender wrote.
func TestSplitVnetUDP(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("ipv6=%v", v6), func(t *testing.T) {
			ipLen := 20
			if v6 {
				ipLen = 40
			}
			one := mkUDP(v6, 7, pattern(33))
			part := bytes.Clone(one)
			binary.BigEndian.PutUint16(part[ipLen+6:], refSum(refPseudo(part, 17, len(part)-ipLen)))
			pkt, mss, _, err := splitVnet(vnet(virtioHdr{flags: virtioFlagNeedsCsum, csumStart: uint16(ipLen), csumOffset: 6}, part))
			if err != nil || mss != 0 || !bytes.Equal(pkt, one) {
				t.Fatalf("partial UDP checksum: mss %d, %v, completed right %v", mss, err, bytes.Equal(pkt, one))
			}
			const size = 1200
			payload := pattern(7*size + 11)
			super := mkUDP(v6, 100, payload)
			uso := virtioHdr{flags: virtioFlagNeedsCsum, gsoType: virtioGSOUDPL4, gsoSize: size, hdrLen: uint16(ipLen + 8), csumStart: uint16(ipLen), csumOffset: 6}
			pkt, mss, p, err := splitVnet(vnet(uso, super))
			if err != nil || mss != size || !p.udp {
				t.Fatalf("USO super-packet: mss %d, %+v, %v", mss, p, err)
			}
			var got [][]byte
			if _, err := segmentPlain(nil, 0, pkt, p, mss, func(b []byte) error {
				checkUDP(t, b)
				got = append(got, bytes.Clone(b))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			var want [][]byte
			for i, off := 0, 0; off < len(payload); i, off = i+1, off+size {
				want = append(want, mkUDP(v6, 100+uint16(i), payload[off:min(off+size, len(payload))]))
			}
			sameSequence(t, got, want)
			// One datagram's worth: completed and plain.
			pkt, mss, _, err = splitVnet(vnet(uso, part))
			if err != nil || mss != 0 || !bytes.Equal(pkt, one) {
				t.Fatalf("one-datagram USO: mss %d, %v", mss, err)
			}
			for name, b := range map[string][]byte{
				"size 0":     vnet(virtioHdr{gsoType: virtioGSOUDPL4}, super),
				"UDP length": vnet(uso, append(bytes.Clone(super), 0)),
				"TCP as UDP": vnet(uso, mkTCP(tcpSpec{v6: v6, payload: pattern(5000)})),
				"short":      vnet(uso, super[:ipLen+4]),
			} {
				if _, _, _, err := splitVnet(b); !errors.Is(err, errBadPacket) {
					t.Errorf("%s: %v, want errBadPacket", name, err)
				}
			}
		})
	}
}

// FuzzSplitVnet: whatever a device hands over, splitVnet returns a
// packet or an error, and a super-packet it accepts segments into valid
// packets holding its payload.
func FuzzSplitVnet(f *testing.F) {
	super := mkTCP(tcpSpec{id: 3, seq: 9, flags: tcpACK, opts: tsOption, payload: pattern(5000)})
	p, _ := parseTCP(super)
	f.Add(vnet(virtioHdr{flags: virtioFlagNeedsCsum, gsoType: virtioGSOTCPv4, gsoSize: 1000, csumStart: uint16(p.ipLen), csumOffset: 16}, super))
	f.Add(vnet(virtioHdr{flags: virtioFlagNeedsCsum, csumStart: 20, csumOffset: 16}, super[:200]))
	f.Add(vnet(virtioHdr{gsoType: virtioGSOTCPv6, gsoSize: 7}, mkTCP(tcpSpec{v6: true, payload: pattern(50)})))
	f.Add(vnet(virtioHdr{gsoType: virtioGSOUDPL4, gsoSize: 100}, mkUDP(false, 1, pattern(450))))
	f.Add(vnet(virtioHdr{gsoType: virtioGSOUDPL4, gsoSize: 9}, mkUDP(true, 1, pattern(20))))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkt, mss, p, err := splitVnet(bytes.Clone(b))
		if err != nil || mss == 0 {
			return
		}
		segmentChecked(t, pkt, p, mss)
	})
}

// FuzzDecodeDatagram: a datagram from the mesh is a plain packet, an
// error, or a super-packet that segments into valid packets, and that a
// device with offloads gets as one valid GSO write.
func FuzzDecodeDatagram(f *testing.F) {
	f.Add(append([]byte{gsoKindTCP, 0, 3, 232}, mkTCP(tcpSpec{id: 1, flags: tcpACK, payload: pattern(3000)})...))
	f.Add(append([]byte{gsoKindTCP, 0, 1, 0}, mkTCP(tcpSpec{v6: true, opts: tsOption, flags: tcpACK | tcpFIN, payload: pattern(100)})...))
	f.Add([]byte{0x45, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		pkt, mss, p, err := decodeDatagram(bytes.Clone(b))
		if err != nil || mss == 0 {
			return
		}
		segmentChecked(t, pkt, p, mss)
		d := &fakeVnet{}
		if err := newTunWriter(d).write(pkt, mss, p); err != nil {
			t.Fatal(err)
		}
		kernelSegments(t, d.writes)
	})
}

// segmentChecked cuts the super-packet pkt (TCP, or UDP if p.udp) into
// plain packets and fails unless each is valid, carries at most mss
// payload bytes, and together they hold pkt's payload.
func segmentChecked(t *testing.T, pkt []byte, p tcpPacket, mss int) {
	t.Helper()
	var payload []byte
	if _, err := segmentPlain(nil, 0, pkt, p, mss, func(b []byte) error {
		hl := p.hdrLen()
		if p.udp {
			checkUDP(t, b)
		} else {
			checkPacket(t, b)
			q, _ := parseTCP(b)
			hl = q.hdrLen()
		}
		if len(b)-hl > mss {
			t.Fatalf("segment of %d bytes, mss %d", len(b)-hl, mss)
		}
		payload = append(payload, b[hl:]...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(payload, pkt[p.hdrLen():]) {
		t.Fatal("segments do not hold the super-packet's payload")
	}
}

// FuzzCoalesce: any sequence of well-formed TCP segments (sequence
// numbers, IDs, flags, sizes and options from the fuzzer) written through
// the coalescer reaches the kernel as exactly those segments, in order.
func FuzzCoalesce(f *testing.F) {
	f.Add([]byte{0, 1, 0x10, 100, 0, 0, 1, 0x10, 100, 0, 0, 1, 0x18, 50, 0})
	f.Add([]byte{1, 1, 0x10, 200, 1, 1, 1, 0x10, 200, 1, 2, 0, 0x11, 10, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		v6 := len(b) > 0 && b[0]&1 == 1
		var pkts [][]byte
		seq, id := uint32(1000), uint16(1)
		for i := 1; i+5 <= len(b) && len(pkts) < 200; i += 5 {
			// seq step, id step, flags, payload size / 8, options
			n := int(b[i+3]) * 8
			var opts []byte
			if b[i+4]&1 == 1 {
				opts = bytes.Clone(tsOption)
				opts[11] = b[i+4] >> 1
			}
			pkts = append(pkts, mkTCP(tcpSpec{v6: v6, id: id, seq: seq, flags: b[i+2], opts: opts, payload: pattern(n)}))
			seq += uint32(n) * uint32(b[i]) // 1: the next segment
			id += uint16(b[i+1])
		}
		d := writeAll(t, pkts)
		sameSequence(t, kernelSegments(t, d.writes), pkts)
	})
}
