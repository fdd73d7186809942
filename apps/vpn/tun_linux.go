//go:build linux

package vpn

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

const supported = true

// tunDevice is a Linux TUN device (IFF_TUN|IFF_NO_PI: each read and write
// is one bare IP packet). The file descriptor is non-blocking, so Go's
// poller serves Read and Close unblocks it.
type tunDevice struct {
	f      *os.File
	name   string
	once   sync.Once
	closed error
}

// OpenTUN creates the TUN device name (IFF_TUN|IFF_NO_PI, not
// persistent: it disappears, with its addresses and routes, when closed
// or when the process dies). It needs CAP_NET_ADMIN.
func OpenTUN(name string) (Device, error) {
	if len(name) == 0 || len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("open tun %q: name must be 1 to %d bytes", name, unix.IFNAMSIZ-1)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open tun %s: /dev/net/tun: %w", name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open tun %s: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open tun %s: TUNSETIFF (needs CAP_NET_ADMIN; EBUSY: the name is taken): %w", name, err)
	}
	return &tunDevice{f: os.NewFile(uintptr(fd), "/dev/net/tun"), name: ifr.Name()}, nil
}

func (d *tunDevice) Name() string                { return d.name }
func (d *tunDevice) Read(b []byte) (int, error)  { return d.f.Read(b) }
func (d *tunDevice) Write(b []byte) (int, error) { return d.f.Write(b) }

// Close removes the device; closing again returns the first result.
func (d *tunDevice) Close() error {
	d.once.Do(func() { d.closed = d.f.Close() })
	return d.closed
}
