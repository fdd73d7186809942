package localsock

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestListen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.sock")
	ln, err := Listen(path)
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
	if _, err := Listen(path); !errors.Is(err, ErrInUse) {
		t.Errorf("second Listen: %v, want ErrInUse", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("a live socket was removed: %v", err)
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
	ln, err = Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln.Close()

	// A file that is not a socket is never removed.
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); err == nil {
		t.Error("Listen replaced a regular file")
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "data" {
		t.Errorf("regular file changed: %q, %v", b, err)
	}
}

// The socket is 0600 from bind on, before Listen's chmod: bind alone,
// under the test's umask, already gives 0600.
func TestRestrictedAtBind(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the mode is set before bind only on Linux")
	}
	path := filepath.Join(t.TempDir(), "x.sock")
	lc := net.ListenConfig{Control: restrictBeforeBind}
	ln, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Errorf("socket mode after bind %#o, want 0600", mode)
	}
}
