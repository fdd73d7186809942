//go:build !linux

package localsock

import "syscall"

// restrictBeforeBind does nothing here: the socket file gets the umask's
// mode until Listen's chmod, so put it in a 0700 directory.
func restrictBeforeBind(_, _ string, _ syscall.RawConn) error { return nil }
