package e2e

import (
	"errors"
	"fmt"
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

// TestBashCompletion sources `skywire completion bash` in bash and asks
// it to complete, as bash does at a Tab: the words come from the binary.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	script, err := exec.Command(skywireBin, "completion", "bash").Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "skywire.bash")
	os.WriteFile(p, script, 0o600)
	for _, name := range []string{"skywire", "skywire-node"} {
		if err := os.Symlink(skywireBin, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct{ line, want string }{
		{"skywire no", "node"},
		{"skywire node st", "status"},
		{"skywire completion ", ""}, // no words: no error either
		{"skywire-node --pro", "--profile"},
	} {
		words := strings.Fields(tt.line)
		if strings.HasSuffix(tt.line, " ") {
			words = append(words, "")
		}
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := fmt.Sprintf("source %q\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_skywire\necho \"${COMPREPLY[*]}\"\n", p, strings.Join(quoted, " "), len(words)-1)
		cmd := exec.Command(bash, "-c", prog)
		cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), tt.want) {
			t.Errorf("completing %q: %v, got %q, want %q among the words", tt.line, err, out, tt.want)
		}
	}
}
