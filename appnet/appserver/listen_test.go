package appserver_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

func TestListenUnix(t *testing.T) {
	dir := tstest.SocketDir(t)
	path := filepath.Join(dir, "node.sock")

	ln, err := appserver.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Errorf("socket mode %#o, want 0600", mode)
	}
	if _, err := appserver.ListenUnix(path); !errors.Is(err, appserver.ErrSocketInUse) {
		t.Errorf("second ListenUnix: %v, want ErrSocketInUse", err)
	}
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left after Close: %v", err)
	}

	// A stale socket (its listener gone without unlinking) is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	ln, err = appserver.ListenUnix(path)
	if err != nil {
		t.Fatalf("ListenUnix over a stale socket: %v", err)
	}
	ln.Close()

	// A regular file is never removed.
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := appserver.ListenUnix(path); err == nil {
		t.Error("ListenUnix replaced a regular file")
	}
}
