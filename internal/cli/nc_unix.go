//go:build unix

package cli

import (
	"os"

	"golang.org/x/sys/unix"
)

// backgroundTerminal reports whether f is a terminal whose foreground
// process group is not ours: reading it would stop us with SIGTTIN.
func backgroundTerminal(f *os.File) bool {
	fg, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	if err != nil {
		return false // not a terminal (or no controlling one): reading is safe
	}
	return fg != unix.Getpgrp()
}
