package localsock

import (
	"fmt"
	"syscall"
)

// restrictBeforeBind sets the socket's mode to 0600 before it is bound.
// Linux gives the socket file the mode of the socket's inode (less the
// umask), so the socket is never connectable by others, not even between
// bind and Listen's chmod. Unlike setting the umask, this changes nothing
// for the rest of the process.
func restrictBeforeBind(_, _ string, c syscall.RawConn) error {
	var err error
	if cerr := c.Control(func(fd uintptr) { err = syscall.Fchmod(int(fd), 0o600) }); cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("restrict socket: %w", err)
	}
	return nil
}
