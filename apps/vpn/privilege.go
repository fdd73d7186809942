package vpn

import (
	"errors"
	"fmt"
	"io/fs"
)

// ErrNeedRoot: the process may not create TUN devices or change routes:
// it runs without root (CAP_NET_ADMIN). NewClient and NewServer check this
// when they would use the real device (not WithTUN), before anything
// else happens (the command layer's state files included), and Run maps
// a permission error from creating the device to it.
var ErrNeedRoot = errors.New("needs root (CAP_NET_ADMIN) for the TUN device")

// asNeedRoot returns err wrapped in ErrNeedRoot if it is a permission error
// (EPERM or EACCES, e.g. from TUNSETIFF or opening /dev/net/tun).
func asNeedRoot(err error) error {
	if err != nil && errors.Is(err, fs.ErrPermission) && !errors.Is(err, ErrNeedRoot) {
		return fmt.Errorf("%w: %w", ErrNeedRoot, err)
	}
	return err
}

// checkPrivilege fails with ErrNeedRoot when the role would create a real
// TUN device and the process lacks CAP_NET_ADMIN: at construction, rather
// than after registering with the node, reading state or reaching the
// server.
func (o options) checkPrivilege() error {
	if !o.systemTUN {
		return nil
	}
	ok, err := hasNetAdmin()
	if err != nil {
		return fmt.Errorf("check capabilities: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: this process does not have CAP_NET_ADMIN (run it as root, or give the binary the capability: setcap cap_net_admin+ep)", ErrNeedRoot)
	}
	return nil
}
