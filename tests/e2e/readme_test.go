package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readmeBlocks returns the fenced code blocks of the README section that
// starts with heading, in order.
func readmeBlocks(t *testing.T, heading string) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no %q section", heading)
	}
	sec := doc[i+1:]
	if j := strings.Index(sec[len(heading):], "\n## "); j >= 0 {
		sec = sec[:len(heading)+j]
	}
	var blocks []string
	for {
		k := strings.Index(sec, "\n```")
		if k < 0 {
			return blocks
		}
		sec = sec[k+4:]
		sec = sec[strings.Index(sec, "\n")+1:] // the fence's info string
		end := strings.Index(sec, "\n```")
		if end < 0 {
			t.Fatalf("README.md %q: unterminated code block", heading)
		}
		blocks = append(blocks, sec[:end+1])
		sec = sec[end+4:]
	}
}

// TestReadmeMeshOnOneMachine runs the README's "A mesh on one machine"
// as written: the viscript commands (through `skywire viscript -c`), then
// every line of the shell block, with the binary on PATH and the state
// directory `make run` exports, and checks that the nc line delivered the
// file. The demo mesh uses fixed loopback ports (7900-7903), so the test
// runs in its own network and PID namespaces (root), where nothing else
// binds them and every process it starts dies with it.
func TestReadmeMeshOnOneMachine(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs the README's demo (fixed ports 7900-7903) in its own network namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux) for the namespaces")
	}
	blocks := readmeBlocks(t, "## A mesh on one machine")
	if len(blocks) < 2 {
		t.Fatalf("README's demo section has %d code blocks, want the viscript block and the shell block", len(blocks))
	}
	var vcmds []string
	for _, line := range strings.Split(blocks[0], "\n") {
		line, ok := strings.CutPrefix(strings.TrimSpace(line), "viscript> ")
		if !ok {
			continue
		}
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		vcmds = append(vcmds, strings.TrimSpace(line))
	}
	if len(vcmds) == 0 {
		t.Fatal("README's first demo block has no viscript> commands")
	}
	shell := blocks[1]
	if !strings.Contains(shell, "skywire nc") {
		t.Fatalf("README's shell block lost its nc line:\n%s", shell)
	}

	dir := t.TempDir()
	file := make([]byte, 1<<20)
	rand.Read(file)
	if err := os.WriteFile(filepath.Join(dir, "file"), file, 0o600); err != nil {
		t.Fatal(err)
	}
	// The README's lines, as a user pastes them; then wait for the nc
	// listener it put in the background.
	script := "set -e\nip link set lo up\n" +
		"skywire viscript -c " + shellQuote(strings.Join(vcmds, "; ")) + "\n" +
		shell + "wait\n"
	cmd := exec.Command("unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(skywireBin)+":"+os.Getenv("PATH"),
		"SKYWIRE_STATE_DIR="+filepath.Join(dir, "state"),
		"HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_STATE_HOME="+filepath.Join(dir, "xstate"),
		"SKYWIRE_CONFIG=", "SKYWIRE_SIGNAL_ADDR=")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute): // ends a hang; not the check
		cmd.Process.Kill()
		<-done
		t.Fatalf("the README's demo did not finish in 5 minutes:\n%s", out)
	}
	if err != nil {
		t.Fatalf("the README's demo failed: %v\n%s", err, out)
	}
	got, rerr := os.ReadFile(filepath.Join(dir, "received"))
	if rerr != nil || !bytes.Equal(got, file) {
		t.Fatalf("nc delivered %d of %d bytes (%v):\n%s", len(got), len(file), rerr, out)
	}
	for _, want := range []string{"started", "time="} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
}

// shellQuote quotes s for bash.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
