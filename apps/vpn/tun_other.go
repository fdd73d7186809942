//go:build !linux

package vpn

const supported = false

// OpenTUN returns ErrUnsupported: the VPN needs Linux.
func OpenTUN(name string) (Device, error) { return nil, ErrUnsupported }
