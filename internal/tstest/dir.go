package tstest

import (
	"os"
	"testing"
)

// SocketDir returns a new temporary directory, removed when the test ends,
// whose path is short enough for unix sockets in it: a socket path is
// limited to 108 bytes, which t.TempDir's paths (named after the test)
// can exceed.
func SocketDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "skywire")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
