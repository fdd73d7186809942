package control

import (
	"net"

	"github.com/skywire-mesh/skywire/internal/localsock"
)

// ErrSocketInUse is returned (wrapped) by ListenUnix when another process
// is serving on the socket path.
var ErrSocketInUse = localsock.ErrInUse

// ListenUnix listens on a unix socket at path with mode 0600 (see
// localsock.Listen). A stale socket file left by a process that died is
// removed; a live one is ErrSocketInUse.
func ListenUnix(path string) (net.Listener, error) { return localsock.Listen(path) }
