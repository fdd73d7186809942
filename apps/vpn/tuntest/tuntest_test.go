package tuntest

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"testing"
)

func TestDevice(t *testing.T) {
	d := New("tun9")
	p := IPv4(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), 17, []byte("hi"))
	go d.Inject(p)
	buf := make([]byte, 100)
	n, err := d.Read(buf)
	if err != nil || string(buf[:n]) != string(p) {
		t.Fatalf("Read = %x, %v; want %x", buf[:n], err, p)
	}
	if _, err := d.Write(p); err != nil {
		t.Fatal(err)
	}
	if got := <-d.Written(); string(got) != string(p) {
		t.Fatalf("Written %x", got)
	}
	d.Close()
	d.Close()
	if _, err := d.Read(buf); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if d.Inject(p) {
		t.Error("Inject into a closed device succeeded")
	}
	if _, err := d.Write(p); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
}

func TestIPv4Checksum(t *testing.T) {
	p := IPv4(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.2"), 6, make([]byte, 33))
	if len(p) != 53 || binary.BigEndian.Uint16(p[2:]) != 53 || p[0] != 0x45 {
		t.Fatalf("header % x", p[:20])
	}
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff {
		t.Errorf("header checksum does not verify: %#x", sum)
	}
}

func TestDropsWhenFull(t *testing.T) {
	d := New("tun9")
	for i := 0; i < Queue+3; i++ {
		d.Write([]byte{0x45})
	}
	if d.Dropped() != 3 {
		t.Errorf("Dropped = %d, want 3", d.Dropped())
	}
}
