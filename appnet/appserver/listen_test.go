package appserver_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// ListenUnix is localsock.Listen under the appserver name; its mode, stale
// socket and regular-file cases are localsock's TestListen. This checks
// only the forwarding and that ErrSocketInUse is the error it returns.
func TestListenUnix(t *testing.T) {
	path := filepath.Join(tstest.SocketDir(t), "node.sock")
	ln, err := appserver.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := appserver.ListenUnix(path); !errors.Is(err, appserver.ErrSocketInUse) {
		t.Errorf("second ListenUnix: %v, want ErrSocketInUse", err)
	}
}
