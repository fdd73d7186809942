// Package tuntest is an in-memory TUN device for tests of the VPN: the
// test plays the kernel, injecting the packets the device reads and
// receiving the packets it writes. It also builds IPv4 packets.
package tuntest

import (
	"encoding/binary"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
)

// Queue is how many written packets wait for the test before more are
// dropped, like a kernel queue.
const Queue = 1024

// Device is a fake TUN device. It satisfies vpn.Device.
type Device struct {
	name    string
	in      chan []byte
	out     chan []byte
	closed  chan struct{}
	once    sync.Once
	dropped atomic.Uint64
	offload bool
}

// New returns a device called name.
func New(name string) *Device {
	return &Device{name: name, in: make(chan []byte), out: make(chan []byte, Queue), closed: make(chan struct{})}
}

// NewOffload returns a device with offloads, like a Linux TUN device
// opened with IFF_VNET_HDR and TSO: every packet it reads or writes
// (Inject, Written) starts with a 10-byte virtio_net_hdr, and it satisfies
// vpn.VnetDevice with Offloads true.
func NewOffload(name string) *Device {
	d := New(name)
	d.offload = true
	return d
}

// Offloads reports whether the device was made by NewOffload.
func (d *Device) Offloads() bool { return d.offload }

// ReadVnet is Read, for a device with offloads (the test injects the
// virtio_net_hdr with the packet).
func (d *Device) ReadVnet(b []byte) (int, error) { return d.Read(b) }

// WriteVnet is Write, for a device with offloads (Written yields the
// virtio_net_hdr with the packet).
func (d *Device) WriteVnet(b []byte) (int, error) { return d.Write(b) }

// Name returns the device name.
func (d *Device) Name() string { return d.name }

// Read returns the next injected packet; after Close it returns
// os.ErrClosed, like a closed TUN file.
func (d *Device) Read(b []byte) (int, error) {
	select {
	case p := <-d.in:
		return copy(b, p), nil
	case <-d.closed:
		return 0, os.ErrClosed
	}
}

// Write queues a copy of b for Written; when the queue is full it is
// dropped (and counted).
func (d *Device) Write(b []byte) (int, error) {
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	default:
	}
	select {
	case d.out <- append([]byte(nil), b...):
	default:
		d.dropped.Add(1)
	}
	return len(b), nil
}

// Close closes the device; Read returns at once.
func (d *Device) Close() error {
	d.once.Do(func() { close(d.closed) })
	return nil
}

// Inject makes Read return p (as the kernel does for a packet routed to
// the device). It returns false if the device is closed first.
func (d *Device) Inject(p []byte) bool {
	select {
	case d.in <- p:
		return true
	case <-d.closed:
		return false
	}
}

// Written yields the packets the device's user wrote (to the kernel).
func (d *Device) Written() <-chan []byte { return d.out }

// Closed is closed by Close.
func (d *Device) Closed() <-chan struct{} { return d.closed }

// Dropped counts written packets dropped because the queue was full.
func (d *Device) Dropped() uint64 { return d.dropped.Load() }

// IPv4 returns an IPv4 packet (20-byte header, valid checksum, TTL 64)
// from src to dst with protocol proto and payload.
func IPv4(src, dst netip.Addr, proto byte, payload []byte) []byte {
	p := make([]byte, 20+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8] = 64
	p[9] = proto
	s, d := src.As4(), dst.As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	copy(p[20:], payload)
	return p
}
