package appserver

import (
	"net"

	"github.com/skywire-mesh/skywire/internal/localsock"
)

// ErrSocketInUse is returned (wrapped) by ListenUnix when another process
// serves the socket path.
var ErrSocketInUse = localsock.ErrInUse

// ListenUnix creates the node's app socket at path with mode 0600, so that
// only the node's user can connect: see localsock.Listen, which replaces
// a stale socket file left by a crashed node but not a socket that
// another process still serves (ErrSocketInUse). The socket file is
// removed when the listener closes.
func ListenUnix(path string) (net.Listener, error) { return localsock.Listen(path) }
