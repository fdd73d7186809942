package cli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"

	"github.com/skywire-mesh/skywire/internal/cli/config"
	"github.com/skywire-mesh/skywire/keys"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, shippedTOML(t), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// shippedTOML is the skywire.toml the binary embeds.
func shippedTOML(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../skywire.toml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// shippedConfig writes the shipped skywire.toml into a test directory,
// points $SKYWIRE_STATE_DIR at state and returns the config's path.
func shippedConfig(t *testing.T, state string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "skywire.toml")
	if err := os.WriteFile(cfg, shippedTOML(t), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SKYWIRE_STATE_DIR", state)
	return cfg
}

func TestRoleFromArgv0(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "skywire")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	vs := link("viscript", bin)
	link("skywire-viscript", bin)
	chain := link("vs", "skywire-viscript") // vs -> skywire-viscript -> skywire
	other := link("nothing", bin)
	tests := []struct {
		argv0     string
		role      string
		multiCall bool
	}{
		{bin, "", true},
		{vs, "viscript", false},
		{filepath.Join(dir, "skywire-viscript"), "viscript", false},
		{chain, "viscript", false},
		{other, "", false}, // a link to the binary under a name that is no role is no role (busybox)
		{"/nonexistent/frobnicate", "", false},
		{"/opt/skywire-linux-amd64", "", true},
	}
	for _, tt := range tests {
		role, multi := roleFromArgv0(tt.argv0)
		if role != tt.role || multi != tt.multiCall {
			t.Errorf("roleFromArgv0(%q) = %q, %v; want %q, %v", tt.argv0, role, multi, tt.role, tt.multiCall)
		}
	}
}

func TestUnknownNameAndCommand(t *testing.T) {
	code, _, stderr := run(t, "/usr/bin/frobnicate")
	if code != 1 || !strings.Contains(stderr, "frobnicate: no such role") || !strings.Contains(stderr, strings.Join(roleNames(), ", ")) {
		t.Errorf("unknown argv0: code %d, stderr %q", code, stderr)
	}
	code, _, stderr = run(t, "skywire", "frobnicate")
	if code != 1 || !strings.Contains(stderr, `unknown command "frobnicate"`) || !strings.Contains(stderr, "viscript") {
		t.Errorf("unknown command: code %d, stderr %q", code, stderr)
	}
}

// An unknown subcommand of a role is answered with every subcommand the
// role defines (the list is not typed by hand).
func TestUnknownSubcommand(t *testing.T) {
	e := &env{}
	for _, cmd := range []*ucli.Command{nodeCommand(e), managerCommand(e), messengerCommand(e), socksClientCommand(e)} {
		var want []string
		for _, sub := range cmd.Subcommands {
			want = append(want, sub.Name)
		}
		code, _, stderr := run(t, "skywire", cmd.Name, "frobnicate")
		msg := fmt.Sprintf("unknown %s command %q (%s)", cmd.Name, "frobnicate", strings.Join(want, ", "))
		if code != 2 || !strings.Contains(stderr, msg) {
			t.Errorf("%s frobnicate: code %d, stderr %q; want 2 and %q", cmd.Name, code, stderr, msg)
		}
	}
}

func TestVersionAndKeygen(t *testing.T) {
	code, out, _ := run(t, "skywire", "version")
	if code != 0 || !strings.Contains(out, "skywire dev") || !strings.Contains(out, "go1.") || !strings.Contains(out, "commit ") {
		t.Errorf("version: %d %q", code, out)
	}
	code, out, _ = run(t, "skywire", "keygen")
	if code != 0 {
		t.Fatalf("keygen exit %d", code)
	}
	f, err := config.Parse([]byte("[identity]\n"+out), "keygen")
	if err != nil {
		t.Fatalf("keygen output is not a valid [identity] table: %v\n%s", err, out)
	}
	if f.Identity.SecretKey.Public() != f.Identity.PublicKey {
		t.Error("keygen printed a mismatched pair")
	}
	p := filepath.Join(t.TempDir(), "node.key")
	if code, _, stderr := run(t, "skywire", "keygen", "--out", p); code != 0 {
		t.Fatalf("keygen --out: %s", stderr)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", st.Mode().Perm())
	}
	if _, err := keys.LoadSecretKeyFile(p); err != nil {
		t.Error(err)
	}
}

func TestConfigInitCheck(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "skywire.toml")
	code, out, stderr := run(t, "skywire", "config", "init", "--manager", p)
	if code != 0 || !strings.Contains(out, "public key: pk:") {
		t.Fatalf("init: %d %q %q", code, out, stderr)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v, want 0600", st.Mode().Perm())
	}
	before, _ := os.ReadFile(p)
	if code, _, stderr = run(t, "skywire", "config", "init", "--manager", p); code == 0 || !strings.Contains(stderr, "--force") {
		t.Errorf("init over an existing file must refuse: %d %q", code, stderr)
	}
	if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
		t.Error("refused init still changed the file")
	}
	if code, _, _ = run(t, "skywire", "config", "init", "--manager", "--force", p); code != 0 {
		t.Error("init --force failed")
	}
	if after, _ := os.ReadFile(p); bytes.Equal(before, after) {
		t.Error("init --force did not write a new key")
	}
	if code, out, stderr = run(t, "skywire", "config", "check", p); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("check of a fresh config: %d %q %q", code, out, stderr)
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[viscript]\n\nlog_kepp = 2\n"), 0o600)
	code, _, stderr = run(t, "skywire", "config", "check", bad)
	if code == 0 || !strings.Contains(stderr, "bad.toml:3: viscript.log_kepp: unknown key") {
		t.Errorf("check of a bad config: %d %q", code, stderr)
	}
	// A demo identity linking to a manager on a public address fails at
	// start, so check says so too.
	demo := filepath.Join(dir, "demo.toml")
	os.WriteFile(demo, []byte("[node]\nidentity = \"demo:a\"\nlisten_addr = \"127.0.0.1:7901\"\nmanagers = [{ public_key = \""+config.DemoKeyPair("m").Public.String()+"\", addr = \"198.51.100.7:7900\" }]\n"), 0o600)
	if code, _, stderr = run(t, "skywire", "config", "check", demo); code == 0 || !strings.Contains(stderr, "only on loopback") || !strings.Contains(stderr, "198.51.100.7:7900") {
		t.Errorf("check of a demo node with a public manager: %d %q", code, stderr)
	}
	os.Chmod(p, 0o644)
	if code, _, stderr = run(t, "skywire", "config", "check", p); code == 0 || !strings.Contains(stderr, "chmod 600") {
		t.Errorf("check of a world-readable config with a secret: %d %q", code, stderr)
	}
	if code, _, stderr = run(t, "skywire", "--config", bad, "viscript", "-c", "la"); code == 0 || !strings.Contains(stderr, "log_kepp") {
		t.Errorf("a role started with a bad config must refuse to start: %d %q", code, stderr)
	}
}

func TestLinks(t *testing.T) {
	dir := t.TempDir()
	code, out, stderr := run(t, "skywire", "links", dir)
	if code != 0 {
		t.Fatalf("links: %d %s", code, stderr)
	}
	for _, r := range roleNames() {
		p := filepath.Join(dir, "skywire-"+r)
		if _, err := os.Readlink(p); err != nil {
			t.Errorf("missing link %s: %v (%s)", p, err, out)
		}
		if _, err := os.Lstat(filepath.Join(dir, r)); err == nil {
			t.Errorf("short link %s made without --short", r)
		}
	}
	if code, _, _ = run(t, "skywire", "links", dir); code != 0 {
		t.Error("links is not idempotent")
	}
	os.WriteFile(filepath.Join(dir, "viscript"), []byte("x"), 0o644)
	if code, _, stderr = run(t, "skywire", "links", "--short", dir); code == 0 || !strings.Contains(stderr, "--force") {
		t.Errorf("links over a foreign file must refuse: %d %q", code, stderr)
	}
	if code, _, _ = run(t, "skywire", "links", "--short", "--force", dir); code != 0 {
		t.Error("links --force failed")
	}
	if code, _, _ = run(t, "skywire", "links"); code != 2 {
		t.Errorf("links without DIR: exit %d, want 2", code)
	}
}

// Each shell's completion script is non-empty, names every role and tool,
// and parses (bash -n; zsh -n and fish -n where installed).
func TestCompletion(t *testing.T) {
	e := &env{}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, stderr := run(t, "skywire", "completion", sh)
		if code != 0 || out == "" {
			t.Fatalf("completion %s: exit %d, %d bytes, %s", sh, code, len(out), stderr)
		}
		for _, name := range append(roleNames(), toolNames(e)...) {
			if !strings.Contains(out, name) {
				t.Errorf("completion %s does not name %s", sh, name)
			}
		}
		bin, err := exec.LookPath(sh)
		if err != nil {
			t.Logf("%s not installed: its script's syntax is not checked", sh)
			continue
		}
		p := filepath.Join(t.TempDir(), "completion."+sh)
		os.WriteFile(p, []byte(out), 0o600)
		if msg, err := exec.Command(bin, "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s -n rejects the script: %v\n%s", sh, err, msg)
		}
	}
	if code, _, stderr := run(t, "skywire", "completion", "tcsh"); code != 2 || !strings.Contains(stderr, `unknown shell "tcsh"`) {
		t.Errorf("completion tcsh: exit %d, %q", code, stderr)
	}
}

// links --target writes the given target (a relative one for DESTDIR
// installs) instead of this binary's path.
func TestLinksTarget(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := run(t, "skywire", "links", "--target", "skywire", dir); code != 0 {
		t.Fatalf("links --target: %s", stderr)
	}
	for _, r := range roleNames() {
		if got, err := os.Readlink(filepath.Join(dir, "skywire-"+r)); err != nil || got != "skywire" {
			t.Errorf("skywire-%s -> %q (%v), want skywire", r, got, err)
		}
	}
}

// config init --manager, --node and --demo each write a config that
// config check passes, with its own fresh identity used by its role; a
// --node without the manager's key leaves a placeholder check refuses.
func TestConfigInitModes(t *testing.T) {
	dir := t.TempDir()
	check := func(p string) (int, string) {
		code, _, stderr := run(t, "skywire", "config", "check", p)
		return code, stderr
	}
	// initChecked runs config init with args to dir/name, which config
	// check must accept, and returns the file and what init printed.
	initChecked := func(name string, args ...string) (*config.File, string) {
		t.Helper()
		p := filepath.Join(dir, name)
		code, out, stderr := run(t, append(append([]string{"skywire", "config", "init"}, args...), p)...)
		if code != 0 {
			t.Fatalf("init %s: %s", strings.Join(args, " "), stderr)
		}
		if code, stderr := check(p); code != 0 {
			t.Errorf("check of init %s: %s", strings.Join(args, " "), stderr)
		}
		f, err := config.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return f, out
	}
	mf, out := initChecked("manager.toml", "--manager")
	mcfg, _, err := mf.ManagerConfig()
	if err != nil || mcfg.Identity.Public != mf.Identity.PublicKey || !strings.Contains(out, mcfg.Identity.Public.String()) {
		t.Fatalf("the manager does not use (or init did not print) its generated identity: %v", err)
	}
	if _, ok := mf.Apps["manager"]; !ok {
		t.Error("init --manager has no [apps.manager] for viscript")
	}

	nf, _ := initChecked("node.toml", "--node", "--manager-key", mcfg.Identity.Public.String(), "--manager-addr", "192.0.2.1:7900")
	ncfg, _, err := nf.NodeProfile("")
	if err != nil || ncfg.Identity.Public != nf.Identity.PublicKey || ncfg.Identity.Public == mcfg.Identity.Public {
		t.Fatalf("the node does not use its own generated identity: %v", err)
	}
	if len(ncfg.Managers) != 1 || ncfg.Managers[0].PublicKey != mcfg.Identity.Public || ncfg.Managers[0].Addr != "192.0.2.1:7900" {
		t.Errorf("node managers %+v, want the one given", ncfg.Managers)
	}

	placeholder := filepath.Join(dir, "placeholder.toml")
	if code, out, _ := run(t, "skywire", "config", "init", "--node", placeholder); code != 0 || !strings.Contains(out, "placeholder") {
		t.Fatalf("init --node without a manager: %d %q", code, out)
	}
	if code, stderr := check(placeholder); code == 0 || !strings.Contains(stderr, "placeholder.toml:") || !strings.Contains(stderr, "node.managers") || !strings.Contains(stderr, "placeholder") {
		t.Errorf("check of a node config with the placeholder: %d %q, want a refusal naming the line", code, stderr)
	}

	if df, _ := initChecked("demo.toml", "--demo"); !df.Identity.SecretKey.IsZero() {
		t.Error("init --demo writes a secret key nothing uses")
	}

	for _, args := range [][]string{
		{"config", "init", filepath.Join(dir, "x.toml")},
		{"config", "init", "--node", "--manager", filepath.Join(dir, "x.toml")},
		{"config", "init", "--manager", "--manager-key", "pk:00", filepath.Join(dir, "x.toml")},
		{"config", "init", "--node", "--manager-key", "pk:zz", filepath.Join(dir, "x.toml")},
		{"config", "init", "--node", "--manager-addr", "192.0.2.1", filepath.Join(dir, "x.toml")},
		{"config", "init", "--manager", "--listen", "0.0.0.0:70000", filepath.Join(dir, "x.toml")},
	} {
		if code, _, stderr := run(t, append([]string{"skywire"}, args...)...); code != 2 || stderr == "" {
			t.Errorf("skywire %s: exit %d %q, want a usage error", strings.Join(args, " "), code, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.toml")); err == nil {
		t.Error("a refused init wrote a file")
	}
}

// A command that finds no process behind its socket names the socket and
// the variable that moves the state directory, and says whether it is set.
func TestNotRunningNamesSocketAndVariable(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	cfg := shippedConfig(t, state)
	for _, tt := range []struct {
		args   []string
		socket string
	}{
		{[]string{"node", "status"}, "node.ctl"},
		{[]string{"node", "links", "--profile", "c"}, "node-c.ctl"},
		{[]string{"manager", "nodes"}, "manager.ctl"},
		{[]string{"ping", "-c", "1", config.DemoKeyPair("c").Public.String()}, "node.ctl"},
		{[]string{"socks-client", "stats"}, "socks-client.ctl"},
		{[]string{"nc", "--retry", "0", config.DemoKeyPair("c").Public.String(), "9"}, "node.sock"},
	} {
		code, _, stderr := run(t, append([]string{"skywire", "--config", cfg}, tt.args...)...)
		want := filepath.Join(state, tt.socket)
		if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "$SKYWIRE_STATE_DIR (\""+state+"\" here)") {
			t.Errorf("skywire %s: exit %d, stderr does not name %s and $SKYWIRE_STATE_DIR:\n%s", strings.Join(tt.args, " "), code, want, stderr)
		}
	}
	os.Unsetenv("SKYWIRE_STATE_DIR") // t.Setenv restores it
	code, _, stderr := run(t, "skywire", "--config", cfg, "node", "status")
	if code != 1 || !strings.Contains(stderr, "$SKYWIRE_STATE_DIR (not set in this shell)") || !strings.Contains(stderr, "make run") {
		t.Errorf("with SKYWIRE_STATE_DIR unset: exit %d\n%s", code, stderr)
	}
}

// TestViscriptRemoteFlags: --node and --via are checked and their
// failures say what to fix.
func TestViscriptRemoteFlags(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	cfg := shippedConfig(t, state)
	c := config.DemoKeyPair("c").Public.String()
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"viscript", "--serve", "--node", c}, 2, "does not go with --serve"},
		// A name is resolved through the local node's directory.
		{[]string{"viscript", "--node", "kitchen", "-c", "la"}, 1, `connect "kitchen": resolve node name "kitchen": ` + filepath.Join(state, "node.ctl") + ": not running"},
		{[]string{"viscript", "--node", "no such!", "-c", "la"}, 1, "not a public key or a node name"},
		{[]string{"viscript", "--node", c, "-c", "la"}, 1, "needs the local node: register on " + filepath.Join(state, "node.sock")},
		{[]string{"viscript", "--node", c, "--via", "c", "-c", "la"}, 1, filepath.Join(state, "node-c.sock")},
		{[]string{"viscript", "--via", "nosuch", "-c", "la"}, 1, `--via "nosuch"`},
	} {
		code, _, stderr := run(t, append([]string{"skywire", "--config", cfg}, tt.args...)...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("skywire %s: exit %d, want %d and %q in:\n%s", strings.Join(tt.args, " "), code, tt.code, tt.want, stderr)
		}
	}
}

// config init --node --name writes [node] name, which the node then
// claims; a name config check would refuse is refused by init with the
// same words (and no file written), and --name goes with --node only.
func TestConfigInitName(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "named.toml")
	mkp, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "skywire", "config", "init", "--node", "--name", "kitchen-pi",
		"--manager-key", mkp.Public.String(), "--manager-addr", "192.0.2.1:7900", p)
	if code != 0 {
		t.Fatalf("init --node --name kitchen-pi: %d %s", code, stderr)
	}
	if code, _, stderr := run(t, "skywire", "config", "check", p); code != 0 {
		t.Fatalf("check of init --name: %s", stderr)
	}
	f, err := config.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, _, err := f.NodeProfile(""); err != nil || cfg.Name != "kitchen-pi" {
		t.Fatalf("node name %q (%v), want kitchen-pi", cfg.Name, err)
	}
	// Without --name the line stays a comment.
	unnamed := filepath.Join(dir, "unnamed.toml")
	if code, _, stderr := run(t, "skywire", "config", "init", "--node", unnamed); code != 0 {
		t.Fatal(stderr)
	}
	if b, _ := os.ReadFile(unnamed); !strings.Contains(string(b), "\n# name = \"kitchen-pi\"\n") {
		t.Error("init --node without --name does not show the name line as a comment")
	}

	for _, bad := range []string{"kitchen pi", "local", "-pi", strings.Repeat("x", 64), "küche"} {
		out := filepath.Join(dir, "bad.toml")
		code, _, initErr := run(t, "skywire", "config", "init", "--node", "--name", bad, out)
		if code != 2 {
			t.Errorf("init --name %q: exit %d %q, want 2", bad, code, initErr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("init --name %q wrote a file", bad)
		}
		// config check's words for the same name in the file.
		named := strings.Replace(string(mustRead(t, p)), "\nname = \"kitchen-pi\"", fmt.Sprintf("\nname = %q", bad), 1)
		cp := filepath.Join(dir, "check.toml")
		if err := os.WriteFile(cp, []byte(named), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, checkErr := run(t, "skywire", "config", "check", cp)
		_, msg, ok := strings.Cut(strings.TrimSpace(checkErr), "node.name: ")
		if !ok || !strings.Contains(initErr, "node.name: "+msg) || !strings.Contains(initErr, "--name") {
			t.Errorf("name %q: init says %q, config check %q: want check's words after --name", bad, initErr, checkErr)
		}
	}
	if code, _, stderr := run(t, "skywire", "config", "init", "--node", "--name", "", filepath.Join(dir, "e.toml")); code != 2 || !strings.Contains(stderr, "empty") {
		t.Errorf("init --name '': %d %q, want a refusal", code, stderr)
	}
	if code, _, stderr := run(t, "skywire", "config", "init", "--manager", "--name", "m", filepath.Join(dir, "m.toml")); code != 2 || !strings.Contains(stderr, "--name goes with --node") {
		t.Errorf("init --manager --name: %d %q", code, stderr)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
