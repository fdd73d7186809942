//go:build linux

package vpn

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/skywire-mesh/skywire/internal/rawio"
)

const supported = true

// TUNSETOFFLOAD flags (include/uapi/linux/if_tun.h): what the reader
// takes from the kernel.
const (
	tunFCsum = 0x01 // TUN_F_CSUM: packets with partial checksums
	tunFTSO4 = 0x02 // TUN_F_TSO4
	tunFTSO6 = 0x04 // TUN_F_TSO6
	tunFUSO4 = 0x20 // TUN_F_USO4 (Linux 6.2)
	tunFUSO6 = 0x40 // TUN_F_USO6
)

// tunDevice is a Linux TUN device (IFF_TUN|IFF_NO_PI: each read and write
// is one bare IP packet; with IFF_VNET_HDR and offloads, each is a
// virtio_net_hdr and a packet that may be a TCP super-packet). The file
// descriptor is non-blocking, so Go's poller serves Read and Close
// unblocks it.
type tunDevice struct {
	f        *os.File
	rw       io.ReadWriter // f's data path: rawio.Wrap(f)
	name     string
	offloads bool
	uso      bool // UDP segmentation offload too
	once     sync.Once
	closed   error

	// With offloads, Read and Write (plain packets) go through these.
	rmu     sync.Mutex
	rbuf    []byte
	pending [][]byte // segments of a super-packet not yet returned by Read
	wmu     sync.Mutex
	wbuf    []byte

	offloadErr error // why offloads are off, if the kernel refused them
}

// OpenTUN creates the TUN device name (IFF_TUN|IFF_NO_PI, not
// persistent: it disappears, with its addresses and routes, when closed
// or when the process dies). It needs CAP_NET_ADMIN. It turns on TCP
// segmentation offload (IFF_VNET_HDR; TUNSETOFFLOAD with TUN_F_CSUM,
// TSO4, TSO6, and USO4/USO6 where the kernel has them) unless the environment has SKYWIRE_VPN_OFFLOAD=off; when
// the kernel refuses, the device works without (Offloads reports which,
// OffloadError why).
func OpenTUN(name string) (Device, error) {
	if len(name) == 0 || len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("open tun %q: name must be 1 to %d bytes", name, unix.IFNAMSIZ-1)
	}
	if !offloadsAllowed() {
		return openTUN(name, false)
	}
	d, err := openTUN(name, true)
	if err != nil && errors.Is(err, errNameTaken) {
		return nil, err
	}
	if err == nil {
		return d, nil
	}
	plain, perr := openTUN(name, false)
	if perr != nil {
		return nil, perr
	}
	plain.offloadErr = err
	return plain, nil
}

var errNameTaken = errors.New("the name is taken")

func openTUN(name string, offloads bool) (*tunDevice, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open tun %s: /dev/net/tun: %w", name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open tun %s: %w", name, err)
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if offloads {
		flags |= unix.IFF_VNET_HDR
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EBUSY) {
			err = fmt.Errorf("%w: %w", errNameTaken, err)
		}
		return nil, fmt.Errorf("open tun %s: TUNSETIFF (needs CAP_NET_ADMIN; EBUSY: the name is taken): %w", name, err)
	}
	uso := false
	if offloads {
		// UDP segmentation offload where the kernel has it (6.2+;
		// older ones refuse the unknown flags with EINVAL).
		tso := tunFCsum | tunFTSO4 | tunFTSO6
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tso|tunFUSO4|tunFUSO6); err == nil {
			uso = true
		} else if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tso); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("open tun %s: TUNSETOFFLOAD: %w", name, err)
		}
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	d := &tunDevice{f: f, rw: rawio.Wrap(f), name: ifr.Name(), offloads: offloads, uso: uso}
	if offloads {
		d.rbuf = make([]byte, virtioHdrLen+1<<16)
	}
	return d, nil
}

// OffloadError says why the device has no offloads: nil when it has
// them or they were turned off by SKYWIRE_VPN_OFFLOAD=off.
func (d *tunDevice) OffloadError() error { return d.offloadErr }

func (d *tunDevice) Name() string   { return d.name }
func (d *tunDevice) Offloads() bool { return d.offloads }

// USO reports whether UDP segmentation offload is on too.
func (d *tunDevice) USO() bool { return d.uso }

// Reads and writes go through rw: raw system calls on the non-blocking
// descriptor (package rawio), since a write forwards the packet through
// the kernel's stack inside the call.
func (d *tunDevice) ReadVnet(b []byte) (int, error)  { return d.rw.Read(b) }
func (d *tunDevice) WriteVnet(b []byte) (int, error) { return d.rw.Write(b) }

// Read returns one plain IP packet with complete checksums; with
// offloads on, a super-packet the kernel hands over is returned segment
// by segment in successive calls.
func (d *tunDevice) Read(b []byte) (int, error) {
	if !d.offloads {
		return d.rw.Read(b)
	}
	d.rmu.Lock()
	defer d.rmu.Unlock()
	for len(d.pending) == 0 {
		n, err := d.rw.Read(d.rbuf)
		if err != nil {
			return 0, err
		}
		pkt, mss, p, err := splitVnet(d.rbuf[:n])
		if err != nil {
			continue
		}
		if mss == 0 {
			return copy(b, pkt), nil
		}
		var segs [][]byte
		_, err = segmentPlain(nil, 0, pkt, p, mss, func(s []byte) error {
			segs = append(segs, append([]byte(nil), s...))
			return nil
		})
		if err == nil {
			d.pending = segs
		}
	}
	n := copy(b, d.pending[0])
	d.pending = d.pending[1:]
	return n, nil
}

// Write writes one plain IP packet.
func (d *tunDevice) Write(b []byte) (int, error) {
	if !d.offloads {
		return d.rw.Write(b)
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.wbuf = append(append(d.wbuf[:0], make([]byte, virtioHdrLen)...), b...)
	if _, err := d.rw.Write(d.wbuf); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Close removes the device; closing again returns the first result.
func (d *tunDevice) Close() error {
	d.once.Do(func() { d.closed = d.f.Close() })
	return d.closed
}

// offloadsAllowed is false when SKYWIRE_VPN_OFFLOAD=off (tests compare
// both modes; an operator can rule offloads out when debugging).
func offloadsAllowed() bool { return os.Getenv(offloadEnv) != "off" }
