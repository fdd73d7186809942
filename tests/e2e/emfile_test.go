package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/cli/config"
	"github.com/skywire-mesh/skywire/internal/cli/rolectl"
	"github.com/skywire-mesh/skywire/node"
)

// rssKiB is the resident set of process pid, from /proc.
func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.Atoi(string(f[0]))
				return n
			}
		}
	}
	return -1
}

// A node that runs out of file descriptors under a flood of idle
// connections accepts links again once the flood is gone: the accept loop
// backs off instead of giving up on the first EMFILE.
func TestNodeRecoversFromEMFILE(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	addrA, addrB := freePort(t), freePort(t)
	keyA := config.DemoKeyPair("emfile-a").Public
	cfg := fmt.Sprintf(`[viscript]
state_dir = %q

[node]
identity = "demo:emfile-a"
listen_addr = %q
max_link_handshakes = 100000   # let the flood reach the fd limit, not the cap
max_link_handshakes_per_source = 100000
accept_peers = "any"           # no manager here to say who is a member

[nodes.b]
identity = "demo:emfile-b"
listen_addr = %q
peers = [{ public_key = %q, addr = %q }]
`, state, addrA, addrB, keyA.String(), addrA)
	cfgPath := filepath.Join(dir, "skywire.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func(name, shell string, args ...string) *exec.Cmd {
		t.Helper()
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		all := append([]string{"--config", cfgPath, "--log-level", "debug"}, args...)
		var cmd *exec.Cmd
		if shell != "" {
			// sh sets both the soft and the hard limit, so the Go runtime
			// in the child cannot raise it again.
			cmd = exec.Command("/bin/sh", append([]string{"-c", shell + ` && exec "$0" "$@"`, skywireBin}, all...)...)
		} else {
			cmd = exec.Command(skywireBin, all...)
		}
		cmd.Env = append(os.Environ(), "SKYWIRE_SIGNAL_ADDR=", "SKYWIRE_STATE_DIR=")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
				t.Logf("%s.log:\n%s", name, tail(b, 3000))
			}
		})
		return cmd
	}
	status := func(ctl string) (node.Status, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var st node.Status
		err := rolectl.Get(ctx, ctl, "/status", &st)
		return st, err
	}
	ctlA := filepath.Join(state, "node.ctl")

	a := start("a", "ulimit -n 64", "node")
	var st node.Status
	waitLong(t, "node a's control socket", func() bool {
		var err error
		st, err = status(ctlA)
		return err == nil
	})
	t.Logf("before the flood: node a RSS %d KiB", rssKiB(a.Process.Pid))

	// Flood: far more idle connections than a has descriptors. The
	// kernel completes them into the listen backlog; a accepts until
	// EMFILE, and its link handshakes time out and free descriptors.
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 300 {
		c, err := net.DialTimeout("tcp", addrA, 10*time.Second)
		if err != nil {
			break // the backlog is full: enough
		}
		idle = append(idle, c)
	}
	t.Logf("flood: %d idle connections", len(idle))
	waitLong(t, "node a to hit the descriptor limit", func() bool {
		st, err := status(ctlA)
		return err == nil && st.Counters.AcceptErrors > 0
	})
	t.Logf("during the flood: node a RSS %d KiB", rssKiB(a.Process.Pid))
	for _, c := range idle {
		c.Close()
	}
	idle = nil

	// A real peer links once the flood is gone.
	start("b", "", "node", "--profile", "b")
	waitLong(t, "node b to link to a", func() bool {
		var err error
		st, err = status(ctlA)
		return err == nil && st.Links == 1
	})
	t.Logf("after the flood: node a RSS %d KiB, accept errors %d", rssKiB(a.Process.Pid), st.Counters.AcceptErrors)
}
