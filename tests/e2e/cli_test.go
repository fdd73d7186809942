package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoSuchRole: a link to the binary under a name that is no role says
// so, lists the roles and exits 1, as busybox does (it used to run as the
// multi-call binary and print its help with status 0).
func TestNoSuchRole(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "skywire")
	if err := os.Symlink(skywireBin, bin); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("skywire", filepath.Join(dir, "nosuchrole")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("./nosuchrole")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("./nosuchrole: %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{"nosuchrole: no such role", "viscript", "node", "manager", "socks-client", "vpn-server", "messenger"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A link named after a role is that role.
	if err := os.Symlink("skywire", filepath.Join(dir, "skywire-node")); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command("./skywire-node", "--help")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "skywire node") {
		t.Errorf("./skywire-node --help: %v\n%s", err, out)
	}
}
