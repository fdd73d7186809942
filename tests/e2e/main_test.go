// Package e2e starts the real skywire binary as separate processes and
// drives it the way a user or a script does.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

var (
	skywireBin string // the binary under test
	sigappBin  string // a signal-client test program
)

func TestMain(m *testing.M) {
	tstest.MainWithBuilds(m,
		tstest.Build{Name: "skywire", Pkg: "../..", Path: &skywireBin},
		tstest.Build{Name: "sigapp", Pkg: "./testdata/sigapp", Path: &sigappBin})
}

// viscriptEnv is one state directory and config, and the processes a test
// started in it.
type viscriptEnv struct {
	t      *testing.T
	dir    string
	config string
	state  string
	serve  *exec.Cmd
	waited chan struct{}
}

// newViscript writes a config with the test apps and returns an env.
// extra is appended to the config.
func newViscript(t *testing.T, extra string) *viscriptEnv {
	t.Helper()
	dir := t.TempDir()
	v := &viscriptEnv{t: t, dir: dir, config: filepath.Join(dir, "skywire.toml"), state: filepath.Join(dir, "state")}
	cfg := fmt.Sprintf(`
[viscript]
log_max_bytes = 8192
log_keep = 2

[apps.sig]
path = %[1]q
default_args = ["-every", "50ms"]
daemon = true
desc = "a signal client"
stop_timeout = "3s"

[apps.sigtmp]
path = %[1]q
default_args = ["-every", "1s"]
desc = "a non-daemon signal client"

[apps.crashy]
path = %[1]q
default_args = ["-every", "1s"]
daemon = true
restart = "always"

[apps.sleeper]
path = "/bin/sleep"
default_args = ["300"]
daemon = true
stop_timeout = "3s"

[apps.stubborn]
path = %[1]q
default_args = ["-ignore-term"]
daemon = true
stop_timeout = "300ms"
`, sigappBin) + extra
	if err := os.WriteFile(v.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.cleanup)
	return v
}

func (v *viscriptEnv) cmd(args ...string) *exec.Cmd { return viscriptCmd(v.config, v.state, args...) }

// viscriptCmd is `skywire --config config viscript --state-dir state args...`,
// with the environment's state directory and signal address cleared.
func viscriptCmd(config, state string, args ...string) *exec.Cmd {
	all := append([]string{"--config", config, "viscript", "--state-dir", state}, args...)
	cmd := exec.Command(skywireBin, all...)
	cmd.Env = append(os.Environ(), "SKYWIRE_STATE_DIR=", "SKYWIRE_SIGNAL_ADDR=")
	return cmd
}

// startServe starts `skywire viscript --serve` and waits for its control socket.
func (v *viscriptEnv) startServe() {
	v.t.Helper()
	cmd := v.cmd("--serve", "--log-level", "debug")
	startLogged(v.t, cmd, filepath.Join(v.dir, "serve.log"))
	v.serve = cmd
	v.waited = make(chan struct{})
	go func() { cmd.Wait(); close(v.waited) }()
	// A socket file may be left over from a killed server: wait until this
	// server accepts connections (and fail at once if it exited).
	tstest.WaitFor(v.t, "control socket", func() bool {
		select {
		case <-v.waited:
			v.t.Fatalf("viscript --serve exited: %v", cmd.ProcessState)
		default:
		}
		c, err := net.Dial("unix", filepath.Join(v.state, "control.sock"))
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// stopServe ends the server: with SIGTERM (graceful) or SIGKILL.
func (v *viscriptEnv) stopServe(sig syscall.Signal) {
	v.t.Helper()
	if v.serve == nil {
		return
	}
	v.serve.Process.Signal(sig)
	select {
	case <-v.waited:
	case <-time.After(15 * time.Second):
		v.serve.Process.Kill()
		<-v.waited
		v.t.Errorf("viscript --serve did not stop on %v", sig)
	}
	v.serve = nil
}

// cleanup stops the server and kills every process the apps table names.
func (v *viscriptEnv) cleanup() {
	v.stopServe(syscall.SIGKILL)
	killApps(v.state)
	if v.t.Failed() {
		if b, err := os.ReadFile(filepath.Join(v.dir, "serve.log")); err == nil {
			v.t.Logf("serve.log:\n%s", tail(b, 4000))
		}
	}
}

// killApps kills every process the apps table of state names (its
// process group and itself).
func killApps(state string) {
	data, err := os.ReadFile(filepath.Join(state, "apps.json"))
	if err != nil {
		return
	}
	var st struct {
		Apps []struct{ Pid int } `json:"apps"`
	}
	json.Unmarshal(data, &st)
	for _, a := range st.Apps {
		if a.Pid > 0 {
			syscall.Kill(-a.Pid, syscall.SIGKILL)
			syscall.Kill(a.Pid, syscall.SIGKILL)
		}
	}
}

// startLogged starts cmd with its stdout and stderr appended to the file
// at path.
func startLogged(t testing.TB, cmd *exec.Cmd, path string) {
	t.Helper()
	logf, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

// startPiped starts cmd after pipe (its StdoutPipe or StdinPipe) and
// returns the pipe and what cmd writes to stderr (read it once cmd has
// exited or been killed).
func startPiped[P any](t testing.TB, cmd *exec.Cmd, pipe func() (P, error)) (P, *strings.Builder) {
	t.Helper()
	p, err := pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return p, stderr
}

// waitLong is tstest.WaitFor for what a real process has to do (start,
// link, register, refuse): up to 60s.
func waitLong(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tstest.WaitForWithin(t, 60*time.Second, what, cond)
}

// waitCmd waits for the started cmd to exit and returns cmd.Wait's
// error. If it has not exited within d (stretched by
// MESHTEST_TIME_SCALE), it kills cmd and fails the test, naming what and
// adding detail (such as the output so far).
func waitCmd(t testing.TB, cmd *exec.Cmd, d time.Duration, what string, detail ...any) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	d = tstest.Scaled(d)
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not exit within %v%s", what, d, fmt.Sprint(detail...))
		return nil
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// result is one JSON line the shell printed.
type result map[string]any

func (r result) ok() bool { b, _ := r["ok"].(bool); return b }
func (r result) num(k string) float64 {
	f, _ := r[k].(float64)
	return f
}
func (r result) str(k string) string { s, _ := r[k].(string); return s }

// json runs `viscript --json -c cmds` and returns its results and exit error.
func (v *viscriptEnv) json(cmds string) ([]result, error) {
	v.t.Helper()
	rs, _, err := runJSON(v.t, v.cmd("--json", "-c", cmds), 30*time.Second, fmt.Sprintf("viscript -c %q", cmds))
	return rs, err
}

// runJSON runs a `viscript --json` cmd (what names it) for up to d and
// returns the results it printed, its stderr and its exit error.
func runJSON(t testing.TB, cmd *exec.Cmd, d time.Duration, what string) ([]result, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err := waitCmd(t, cmd, d, what, " (hung); stdout ", &out, " stderr ", &errb)
	var rs []result
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var r result
		if jerr := json.Unmarshal([]byte(line), &r); jerr != nil {
			t.Fatalf("%s printed a line that is not JSON: %q (stderr %q)", what, line, errb.String())
		}
		rs = append(rs, r)
	}
	return rs, errb.String(), err
}

// must runs commands that must all succeed and returns one result each.
func (v *viscriptEnv) must(cmds string) []result {
	v.t.Helper()
	rs, err := v.json(cmds)
	if err != nil {
		v.t.Fatalf("viscript -c %q: %v; results %v", cmds, err, rs)
	}
	if n := len(strings.Split(cmds, ";")); len(rs) != n {
		v.t.Fatalf("viscript -c %q printed %d results, want %d: %v", cmds, len(rs), n, rs)
	}
	for _, r := range rs {
		if !r.ok() {
			v.t.Fatalf("viscript -c %q: %v", cmds, r)
		}
	}
	return rs
}

// app is one row of `la`.
type app struct {
	ID        uint64 `json:"id"`
	Name      string `json:"name"`
	Pid       int    `json:"pid"`
	State     string `json:"state"`
	Connected bool   `json:"connected"`
	Restarts  int    `json:"restarts"`
}

func (v *viscriptEnv) list() map[uint64]app {
	v.t.Helper()
	cmd := v.cmd("--json", "-c", "la")
	out, err := cmd.Output()
	if err != nil {
		v.t.Fatalf("la: %v", err)
	}
	var r struct {
		OK   bool  `json:"ok"`
		Apps []app `json:"apps"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil || !r.OK {
		v.t.Fatalf("la printed %q: %v", out, err)
	}
	m := map[uint64]app{}
	for _, a := range r.Apps {
		m[a.ID] = a
	}
	return m
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil && !zombie(pid) }

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || s[i+2] == 'Z'
}
