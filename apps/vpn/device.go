package vpn

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
)

// MTU arithmetic (see the package doc): an IP packet travels as one
// session datagram, so it must fit in one session packet of the node.
const (
	nodeSessionMTU   = 16384 // internal/session DefaultConfig().MTU, the node's session packet size
	sessionCipherLen = 24    // secure.ExplicitOverhead: 8-byte counter + 16-byte Poly1305 tag
	sessionFrameLen  = 14    // session datagram frame header, worst case (Session.MaxDatagramSize)
	nodeDgramHdrLen  = 4     // node datagram header: destination port, source port
	vpnHdrLen        = 0     // the VPN adds nothing: a datagram is one raw IP packet

	// DefaultMTU is the TUN MTU that fills a session packet exactly:
	// 16384 - 24 - 14 - 4 - 0 = 16342 bytes.
	DefaultMTU = nodeSessionMTU - sessionCipherLen - sessionFrameLen - nodeDgramHdrLen - vpnHdrLen
	// MaxMTU is the largest MTU a config may ask for (= DefaultMTU: larger
	// packets would be dropped by the node's session).
	MaxMTU = DefaultMTU
	minMTU = 576 // IPv4 minimum reassembly size: every host must take it
)

// ErrUnsupported is returned on systems without TUN support (the VPN
// needs Linux).
var ErrUnsupported = errors.New("needs Linux (TUN devices and iproute2); this system is not supported")

// Device is a TUN device: Read returns one IP packet, Write sends one to
// the kernel, Close removes the device and unblocks Read (a second Close
// is harmless). It is what
// wireguard-go calls tun.Device; a device with offloads also implements
// VnetDevice.
type Device interface {
	io.ReadWriteCloser
	Name() string
}

// VnetDevice is a Device whose reads and writes may carry a
// virtio_net_hdr (Linux IFF_VNET_HDR): with TCP segmentation offload on,
// one read returns a TCP super-packet of up to 64 KiB and one write takes
// one for the kernel to segment (see the package doc, "Offloads").
type VnetDevice interface {
	Device
	// Offloads reports whether ReadVnet and WriteVnet are in use; false
	// when the kernel refused them (or they were turned off), and the
	// device then moves plain packets with Read and Write.
	Offloads() bool
	// ReadVnet reads a 10-byte virtio_net_hdr and one packet into b.
	ReadVnet(b []byte) (int, error)
	// WriteVnet writes b: a virtio_net_hdr and one packet.
	WriteVnet(b []byte) (int, error)
}

// OpenFunc opens (creates) the TUN device called name.
type OpenFunc func(name string) (Device, error)

// Route is a routing-table entry: packets to Dst go out of Dev, through
// the gateway Via if it is valid.
type Route struct {
	Dst netip.Prefix
	Via netip.Addr // invalid: directly on Dev
	Dev string
}

func (r Route) String() string {
	s := r.Dst.String()
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	return s
}

// NetConfig changes the host's network configuration. The default is
// IPCommand (iproute2 and nftables); tests inject a fake.
type NetConfig interface {
	// SetLink gives dev the address addr (replacing every other address),
	// sets its MTU and brings it up.
	SetLink(ctx context.Context, dev string, mtu int, addr netip.Prefix) error
	// AddRoute adds r; DelRoute removes it.
	AddRoute(ctx context.Context, r Route) error
	DelRoute(ctx context.Context, r Route) error
	// RouteTo returns the route the kernel uses now for dst (as a host
	// route for dst).
	RouteTo(ctx context.Context, dst netip.Addr) (Route, error)
	// SetForwarding sets net.ipv4.ip_forward and returns the old value.
	SetForwarding(ctx context.Context, on bool) (old bool, err error)
	// Masquerade source-NATs packets from pool that leave through any
	// device but tun; the returned func undoes it.
	Masquerade(ctx context.Context, pool netip.Prefix, tun string) (undo func(context.Context) error, err error)
}

// offloadEnv is the environment variable that turns TUN offloads off
// when set to "off".
const offloadEnv = "SKYWIRE_VPN_OFFLOAD"

// offloadState is what a role logs about its device's offloads.
func offloadState(dev Device) string {
	v, ok := dev.(VnetDevice)
	switch {
	case ok && v.Offloads():
		if u, ok := dev.(interface{ USO() bool }); ok && u.USO() {
			return "on (TSO, USO, checksum)"
		}
		return "on (TSO, checksum)"
	case !ok:
		return "none (device without offloads)"
	}
	if e, ok := dev.(interface{ OffloadError() error }); ok && e.OffloadError() != nil {
		return "off: " + e.OffloadError().Error()
	}
	if os.Getenv(offloadEnv) == "off" {
		return "off (" + offloadEnv + "=off)"
	}
	return "off (device without offloads)"
}
