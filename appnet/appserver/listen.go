package appserver

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"
)

// ErrSocketInUse is returned by ListenUnix when another process serves
// the socket path.
var ErrSocketInUse = errors.New("app socket in use by another process")

// ListenUnix creates the node's app socket at path with mode 0600, so that
// only the node's user can connect. A stale socket file left by a crashed
// node is removed; a socket that another process still serves is not
// (ErrSocketInUse). The socket file is removed when the listener closes.
func ListenUnix(path string) (net.Listener, error) {
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("listen on app socket %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on app socket %s: %w", path, ErrSocketInUse)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale app socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on app socket: %w", err)
	}
	// Between bind and chmod the mode follows the umask; connecting needs
	// write permission, which a usual umask (022, 077) does not give
	// others.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restrict app socket: %w", err)
	}
	return ln, nil
}
