package wire

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// SetSendBuffer raises a unix connection's send buffer to SendBuffer, or
// to what net.core.wmem_max allows (Linux reports twice what was set).
func TestSetSendBuffer(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/core/wmem_max")
	if err != nil {
		t.Skipf("no net.core.wmem_max: %v", err)
	}
	wmemMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sndbuf := func() int {
		raw, err := c.(*net.UnixConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var gerr error
		raw.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF) })
		if gerr != nil {
			t.Fatal(gerr)
		}
		return v
	}
	before := sndbuf()
	SetSendBuffer(c)
	want := max(before, 2*min(SendBuffer, wmemMax))
	if got := sndbuf(); got != want {
		t.Fatalf("SO_SNDBUF %d after SetSendBuffer (was %d, wmem_max %d), want %d", got, before, wmemMax, want)
	}
	SetSendBuffer(nil) // not a unix connection: nothing to do
}
