// Package localsock listens on the unix sockets a process serves to its
// own user: the node's app socket, viscript's control and signal sockets,
// the roles' control sockets. Every such socket has mode 0600 from the
// moment it is bound, and a socket file is only replaced when nothing
// answers on it.
package localsock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"
)

// ErrInUse is returned (wrapped) by Listen when another process serves
// the socket. Every error of Listen says "localsock: listen PATH" first.
var ErrInUse = errors.New("socket is in use by another process")

// probeTimeout bounds the dial that asks whether a process serves an
// existing socket. A live listener answers at once, a stale socket
// refuses at once; the bound only matters for a listener whose backlog
// is full, which is busy, not stale.
const probeTimeout = time.Second

// Listen listens on a unix socket at path with mode 0600, so that only the
// process's user (and root) can connect. An existing socket file is
// removed only if nothing answers on it (left by a process that died);
// one that a process serves is ErrInUse, and a file that is not a socket
// is never removed. The socket file is removed when the listener closes.
func Listen(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("localsock: listen %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.DialTimeout("unix", path, probeTimeout); err == nil {
			c.Close()
			return nil, fmt.Errorf("localsock: listen %s: %w", path, ErrInUse)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("localsock: listen %s: remove stale socket: %w", path, err)
		}
	}
	lc := net.ListenConfig{Control: restrictBeforeBind}
	ln, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		return nil, fmt.Errorf("localsock: %w", err) // net.OpError: "listen unix PATH: …"
	}
	// Where the socket could not be restricted before bind (not Linux),
	// its mode followed the umask until here.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("localsock: listen %s: restrict socket: %w", path, err)
	}
	return ln, nil
}
