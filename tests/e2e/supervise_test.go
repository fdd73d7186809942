package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// cfgCheckApp is a catalog entry that runs `skywire config check`: its
// output names the config file a role started by viscript really reads.
const cfgCheckApp = `
[apps.cfg]
default_args = ["config", "check"]
desc = "prints which config a role launched by viscript reads"
`

// decoyDir makes a directory whose ./skywire.toml is not even TOML: a role
// that searches for its config from there, instead of using the one
// viscript runs with, fails.
func decoyDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "skywire.toml"), []byte("this is [not toml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

// appLog waits until app id's log file holds want and returns it.
func (v *viscriptEnv) appLog(id int, name, want string) string {
	v.t.Helper()
	var b []byte
	waitLong(v.t, fmt.Sprintf("app %d's log to say %q", id, want), func() bool {
		b, _ = os.ReadFile(filepath.Join(v.state, "logs", fmt.Sprintf("%d-%s.log", id, name)))
		return bytes.Contains(b, []byte(want))
	})
	return string(b)
}

// TestViscriptConfigInherited: `skywire --config X viscript` then `start
// APP`: the role started reads X, not the ./skywire.toml of the directory
// it runs in, whether the command came from -c, from the shell's input or
// through a --serve server.
func TestViscriptConfigInherited(t *testing.T) {
	run := func(t *testing.T, v *viscriptEnv, dir string, args ...string) *exec.Cmd {
		cmd := v.cmd(args...)
		cmd.Dir = dir
		cmd.Env = append(cmd.Env, "SKYWIRE_CONFIG=")
		return cmd
	}
	want := func(v *viscriptEnv) string { return v.config + ": ok" }

	t.Run("c", func(t *testing.T) {
		v := newViscript(t, cfgCheckApp)
		dir := decoyDir(t)
		if out, err := run(t, v, dir, "-c", "start cfg").CombinedOutput(); err != nil {
			t.Fatalf("start cfg: %v\n%s", err, out)
		}
		v.appLog(1, "cfg", want(v))
	})
	t.Run("shell", func(t *testing.T) {
		v := newViscript(t, cfgCheckApp)
		dir := decoyDir(t)
		cmd := run(t, v, dir)
		cmd.Stdin = strings.NewReader("start cfg\nquit\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("shell: %v\n%s", err, out)
		}
		v.appLog(1, "cfg", want(v))
	})
	t.Run("serve", func(t *testing.T) {
		v := newViscript(t, cfgCheckApp)
		dir := decoyDir(t)
		// startServe, from the decoy directory.
		cmd := run(t, v, dir, "--serve")
		startLogged(t, cmd, filepath.Join(v.dir, "serve.log"))
		v.serve, v.waited = cmd, make(chan struct{})
		go func() { cmd.Wait(); close(v.waited) }()
		waitLong(t, "control socket", func() bool {
			_, err := os.Stat(filepath.Join(v.state, "control.sock"))
			return err == nil
		})
		other := decoyDir(t)
		if out, err := run(t, v, other, "-c", "start cfg").CombinedOutput(); err != nil {
			t.Fatalf("start cfg through the server: %v\n%s", err, out)
		}
		v.appLog(1, "cfg", want(v))
	})
}

// TestViscriptStartFailsFast: an app that dies in its first second makes
// `-c 'start X'` fail with its exit status and last output, printed once;
// the seed's `start meshnet-socks-server sockssrv0 127.0.0.1:9000 8001`
// fails with a message that says what to do.
func TestViscriptStartFailsFast(t *testing.T) {
	v := newViscript(t, fmt.Sprintf(`
[apps.failer]
path = %q
default_args = ["-every", "5ms", "-exit-after", "20ms"]
start_secs = "30s"  # so a slow machine cannot make the exit come "late"

[apps.socks-server]
default_args = ["socks-server"]

[apps.nobin]
path = "/nonexistent/program"
`, sigappBin))
	v.startServe()
	cmd := v.cmd("-c", "start failer")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("start failer: %v, want exit status 1\nstdout %s\nstderr %s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"start failer: app 1 exited within 30s of starting (exit status 3)", "sigapp tick 0"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if n := strings.Count(stderr.String(), "exited within"); n != 1 {
		t.Errorf("the error is printed %d times:\n%s", n, stderr.String())
	}
	if strings.Contains(stdout.String(), "started") {
		t.Errorf("a failed start printed success: %s", stdout.String())
	}

	// A program that cannot be executed: the same code over the socket.
	rs, err := v.json("start nobin")
	if err == nil || len(rs) != 1 || rs[0].str("code") != "start_failed" || !strings.Contains(rs[0].str("error"), "/nonexistent/program") {
		t.Errorf("start nobin: %v %v", err, rs)
	}

	// Any failing -c command: its error once, exit status 1.
	cmd = v.cmd("-c", "ping 99; la")
	stdout.Reset()
	stderr.Reset()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || strings.Count(stderr.String(), "no app with that ID") != 1 {
		t.Errorf("-c 'ping 99; la': %v, stderr %q (want the error once, exit status 1)", err, stderr.String())
	}

	// The seed's usage: the app is called socks-server here, and the role
	// takes its settings from [socks_server], not from arguments.
	out, err := v.cmd("-c", "start meshnet-socks-server sockssrv0 127.0.0.1:9000 8001").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "did you mean socks-server?") {
		t.Errorf("seed app name: %v\n%s", err, out)
	}
	out, err = v.cmd("-c", "start socks-server sockssrv0 127.0.0.1:9000 8001").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "exit status 2") || !strings.Contains(string(out), `unknown socks-server command "sockssrv0"`) {
		t.Errorf("seed arguments: %v\n%s", err, out)
	}
	if strings.Count(string(out), "exit status 2") != 1 {
		t.Errorf("printed more than once:\n%s", out)
	}
}

// TestViscriptSupervisor: autostart in after order under --serve, a second
// copy refused, names for IDs, status, stop all, rm, reload, limits and
// user applied to the real process.
func TestViscriptSupervisor(t *testing.T) {
	v := newViscript(t, fmt.Sprintf(`
[apps.base]
path = %[1]q
default_args = ["-every", "1s"]
daemon = true
autostart = true
stop_timeout = "3s"

[apps.upper]
path = %[1]q
default_args = ["-every", "1s"]
daemon = true
autostart = true
after = ["base"]
stop_timeout = "3s"

[apps.limited]
path = "/bin/sleep"
default_args = ["300"]
daemon = true
limits = { nofile = 77, memory = "512M" }

[apps.asnobody]
path = "/bin/sleep"
default_args = ["300"]
daemon = true
user = "nobody"
`, sigappBin))
	v.startServe()
	var apps map[uint64]app
	waitLong(t, "autostart apps running and connected", func() bool {
		apps = v.list()
		return len(apps) == 2 && apps[1].Connected && apps[2].Connected
	})
	if apps[1].Name != "base" || apps[2].Name != "upper" {
		t.Fatalf("autostart order: %+v; want base then upper", apps)
	}

	rs, err := v.json("start base")
	if err == nil || len(rs) != 1 || rs[0].str("code") != "already_running" || !strings.Contains(rs[0].str("error"), "as ID 1") {
		t.Errorf("second copy: %v %v", err, rs)
	}
	v.must("ping base; ru upper; status base; logs upper")
	out, err := v.cmd("-c", "status base").Output()
	if err != nil || !strings.Contains(string(out), "1 base: running, pid ") {
		t.Errorf("status base: %v %q", err, out)
	}

	r := v.must("start limited")[0]
	pid := int(r.num("pid"))
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Max open files            77                   77", "Max address space         536870912            536870912"} {
		if !strings.Contains(string(limits), want) {
			t.Errorf("/proc/%d/limits lacks %q:\n%s", pid, want, limits)
		}
	}

	rs, err = v.json("start asnobody")
	if os.Geteuid() == 0 {
		if err != nil {
			t.Fatalf("start asnobody as root: %v %v", err, rs)
		}
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", int(rs[0].num("pid"))))
		if !strings.Contains(string(st), "\nUid:\t65534\t65534\t65534\t65534\n") {
			t.Errorf("asnobody does not run as nobody:\n%s", st)
		}
	} else if err == nil || !strings.Contains(rs[0].str("error"), "needs viscript to run as root") {
		t.Errorf("user without root: %v %v", err, rs)
	}

	// reload: a new entry appears without a restart of viscript.
	cfg, err := os.ReadFile(v.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, []byte("\n[apps.fresh]\npath = \"/bin/sleep\"\ndefault_args = [\"300\"]\n")...)
	if err := os.WriteFile(v.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = v.cmd("-c", "reload").Output()
	if err != nil || !strings.Contains(string(out), "added fresh") {
		t.Fatalf("reload: %v %q", err, out)
	}
	v.must("start fresh")
	// fresh is not a daemon: it stops with the -c client that started it.
	// Wait until viscript has seen it exit, so that stop all finds it gone.
	waitLong(t, "fresh to stop with the -c client that started it", func() bool {
		for _, a := range v.list() {
			if a.Name == "fresh" && a.State == "running" {
				return false
			}
		}
		return true
	})

	rs = v.must("stop all")
	if n := len(rs[0]["stopped"].([]any)); n != 4 { // fresh, not a daemon, stopped with the -c client that started it
		t.Errorf("stop all stopped %d apps: %v", n, rs)
	}
	for id, a := range v.list() {
		if a.State == "running" || alive(a.Pid) {
			t.Errorf("app %d runs after stop all: %+v", id, a)
		}
	}
	v.must("rm all")
	if apps := v.list(); len(apps) != 0 {
		t.Errorf("after rm all: %+v", apps)
	}

	// A restart of the server autostarts them again (they were stopped).
	v.stopServe(syscall.SIGTERM)
	v.startServe()
	tstest.WaitFor(t, "autostart after a restart", func() bool {
		n := 0
		for _, a := range v.list() {
			if a.State == "running" && (a.Name == "base" || a.Name == "upper") {
				n++
			}
		}
		return n == 2
	})
}
