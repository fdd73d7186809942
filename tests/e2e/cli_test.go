package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skywire-mesh/skywire/node"
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

// TestMakeInstall: `make install DESTDIR=… PREFIX=…` installs the binary,
// a skywire-ROLE link per role (relative, so the tree can move), the
// systemd unit pointing at the installed binary, and the completions; the
// unit has its hardening and passes systemd-analyze verify.
func TestMakeInstall(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed")
	}
	dest := t.TempDir()
	cmd := exec.Command(mk, "-s", "-C", "../..", "install", "DESTDIR="+dest, "PREFIX=/opt/sw", "INSTALL_DEPS=", "BIN="+skywireBin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	root := filepath.Join(dest, "opt", "sw")
	bin := filepath.Join(root, "bin", "skywire")
	if st, err := os.Stat(bin); err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("installed binary: %v %v", st, err)
	}
	for _, role := range []string{"viscript", "node", "manager", "socks-client", "socks-server", "vpn-client", "vpn-server", "messenger"} {
		link := filepath.Join(root, "bin", "skywire-"+role)
		if target, err := os.Readlink(link); err != nil || target != "skywire" {
			t.Errorf("%s: %q %v, want a link to skywire", link, target, err)
		}
	}
	if out, err := exec.Command(filepath.Join(root, "bin", "skywire-node"), "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "skywire node") {
		t.Errorf("installed skywire-node --help: %v\n%s", err, out)
	}
	for _, f := range []string{"share/bash-completion/completions/skywire", "share/zsh/site-functions/_skywire", "share/fish/vendor_completions.d/skywire.fish"} {
		if st, err := os.Stat(filepath.Join(root, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	unitPath := filepath.Join(root, "lib", "systemd", "system", "skywire-viscript.service")
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=/opt/sw/bin/skywire viscript --serve\n", "NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=skywire",
		"ProtectHome=yes", "PrivateTmp=yes", "AmbientCapabilities=CAP_NET_ADMIN", "Restart=on-failure", "WantedBy=multi-user.target"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the installed unit lacks %q", want)
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the unit is not verified")
		return
	}
	// Verify a copy whose ExecStart is the binary as installed here.
	v := filepath.Join(t.TempDir(), "skywire-viscript.service")
	os.WriteFile(v, []byte(strings.ReplaceAll(string(unit), "/opt/sw/bin/skywire", bin)), 0o644)
	out, err := exec.Command(sa, "verify", v).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestConfigInitMeshStarts: what a newcomer does on two machines, as two
// state directories here. config init --manager, start the manager, invite,
// config init --node with the manager's key, address and the invitation,
// start the node: it registers and is a member.
func TestConfigInitMeshStarts(t *testing.T) {
	dir := t.TempDir()
	mgrAddr, nodeAddr := freePort(t), freePort(t)
	mgrCfg, nodeCfg := filepath.Join(dir, "manager.toml"), filepath.Join(dir, "node.toml")
	t.Cleanup(func() { // after the processes are killed (cleanups run last-first)
		if t.Failed() {
			for _, f := range []string{"manager.log", "node.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				t.Logf("%s:\n%s", f, tail(b, 3000))
			}
		}
	})
	run := func(state string, args ...string) *exec.Cmd {
		cmd := exec.Command(skywireBin, args...)
		cmd.Env = append(os.Environ(), "SKYWIRE_STATE_DIR="+filepath.Join(dir, state), "SKYWIRE_CONFIG=", "SKYWIRE_SIGNAL_ADDR=")
		return cmd
	}
	out, err := run("m", "config", "init", "--manager", "--listen", mgrAddr, mgrCfg).CombinedOutput()
	if err != nil {
		t.Fatalf("init --manager: %v\n%s", err, out)
	}
	var mgrKey string
	for _, l := range strings.Split(string(out), "\n") {
		if k, ok := strings.CutPrefix(l, "public key: "); ok {
			mgrKey = k
		}
	}
	if mgrKey == "" {
		t.Fatalf("init --manager printed no public key:\n%s", out)
	}
	mgr := run("m", "--config", mgrCfg, "manager")
	startLogged(t, mgr, filepath.Join(dir, "manager.log"))
	t.Cleanup(func() { mgr.Process.Kill(); mgr.Wait() })
	var token string
	waitLong(t, "the manager to hand out an invitation", func() bool {
		out, err := run("m", "--config", mgrCfg, "manager", "invite").Output()
		token = strings.TrimSpace(string(out))
		return err == nil && strings.HasPrefix(token, "swinv1-")
	})
	if out, err := run("n", "config", "init", "--node", "--listen", nodeAddr, "--manager-key", mgrKey, "--manager-addr", mgrAddr, "--join", token, nodeCfg).CombinedOutput(); err != nil {
		t.Fatalf("init --node: %v\n%s", err, out)
	}
	for _, p := range []string{mgrCfg, nodeCfg} {
		if out, err := run("n", "config", "check", p).CombinedOutput(); err != nil {
			t.Fatalf("config check %s: %v\n%s", p, err, out)
		}
	}
	nd := run("n", "--config", nodeCfg, "node")
	startLogged(t, nd, filepath.Join(dir, "node.log"))
	t.Cleanup(func() { nd.Process.Kill(); nd.Wait() })
	waitLong(t, "the node from config init --node to register with the manager", func() bool {
		out, err := run("n", "--config", nodeCfg, "node", "status", "--json").Output()
		var st node.Status
		return err == nil && json.Unmarshal(out, &st) == nil && len(st.Managers) == 1 && st.Managers[0].Registered
	})
	out, err = run("m", "--config", mgrCfg, "manager", "members").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "joined") {
		t.Errorf("manager members: %v\n%s", err, out)
	}
}

// TestMakeRunPrintsHint: `make run` prints one line that, pasted into
// another shell, points it at the demo (PATH, SKYWIRE_STATE_DIR,
// SKYWIRE_CONFIG).
func TestMakeRunPrintsHint(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed")
	}
	dir := t.TempDir()
	bin, state := filepath.Join(dir, "bin", "skywire"), filepath.Join(dir, "state")
	cmd := exec.Command(mk, "-s", "-C", "../..", "run", "BIN="+bin, "RUN_STATE="+state)
	cmd.Env = append(os.Environ(), "SKYWIRE_STATE_DIR=", "SKYWIRE_SIGNAL_ADDR=")
	out, err := cmd.CombinedOutput() // viscript reads end-of-input and exits
	if err != nil {
		t.Fatalf("make run: %v\n%s", err, out)
	}
	var line string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "export ") {
			line = strings.TrimSpace(l)
		}
	}
	if line == "" {
		t.Fatalf("make run printed no line to paste:\n%s", out)
	}
	sh := exec.Command("/bin/sh", "-c", line+"\ncommand -v skywire; echo \"$SKYWIRE_STATE_DIR\"; echo \"$SKYWIRE_CONFIG\"")
	got, err := sh.Output()
	want := []string{filepath.Join(filepath.Dir(bin), "skywire"), state, "skywire.toml"}
	for _, w := range want {
		if err != nil || !strings.Contains(string(got), w) {
			t.Errorf("pasting %q: %v, got %q, want %q in it", line, err, got, w)
		}
	}
}
