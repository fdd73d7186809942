//go:build !linux

package viscript

import "errors"

// setLimits: resource limits are applied on Linux only.
func setLimits(nofile, as uint64) error {
	if nofile == 0 && as == 0 {
		return nil
	}
	return errors.New("viscript exec-shim: limits are supported on Linux only")
}
