package e2e

import (
	"encoding/binary"
	"encoding/json"
	"io"
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

// TestViscriptLifecycle: start, ping, ru, logs and the three ways sd ends an app.
func TestViscriptLifecycle(t *testing.T) {
	v := newViscript(t, "")
	v.startServe()

	rs := v.must("start sig; start sleeper; start stubborn")
	for i, r := range rs {
		if r.num("id") != float64(i+1) || r.num("pid") <= 0 {
			t.Fatalf("start #%d: %v, want id %d and a pid", i+1, r, i+1)
		}
	}
	sigPid := int(rs[0].num("pid"))
	tstest.WaitFor(v.t, "sig's signal client to connect", func() bool { return v.list()[1].Connected })

	r := v.must("ping 1")[0]
	if rtt := r.num("rtt_ms"); rtt <= 0 || rtt > 2000 {
		t.Errorf("ping rtt_ms = %v", rtt)
	}
	r = v.must("ru 1")[0]
	if int(r.num("pid")) != sigPid || r.num("rss_bytes") < 1<<20 || r.num("threads") < 1 || r.num("fds") < 3 || r.num("uptime_s") <= 0 {
		t.Errorf("ru 1 = %v", r)
	}
	for _, k := range []string{"cpu_percent", "read_bytes", "write_bytes"} {
		if _, ok := r[k]; !ok {
			t.Errorf("ru 1 has no %s: %v", k, r)
		}
	}

	// sleeper is not a signal client: ping must say so; ru still works.
	rs, err := v.json("ping 2")
	if err == nil || len(rs) != 1 || rs[0].ok() || rs[0].str("code") != "not_signal_client" {
		t.Errorf("ping of a non-signal app: err %v, %v", err, rs)
	}
	if r := v.must("ru 2")[0]; r.num("pid") <= 0 {
		t.Errorf("ru of a non-signal app: %v", r)
	}

	tstest.WaitFor(v.t, "log output", func() bool {
		b, _ := exec.Command(skywireBin, "--config", v.config, "viscript", "--state-dir", v.state, "-c", "logs 1").Output()
		return strings.Contains(string(b), "sigapp tick")
	})

	steps := map[string]string{"1": "signal", "2": "sigterm", "3": "sigkill"}
	for id, want := range steps {
		r := v.must("sd " + id)[0]
		if r.str("step") != want {
			t.Errorf("sd %s ended with %q, want %q", id, r.str("step"), want)
		}
	}
	for id, a := range v.list() {
		if a.State == "running" || alive(a.Pid) {
			t.Errorf("app %d still running after sd: %+v", id, a)
		}
	}
	// Bad input gives clear errors, not crashes.
	for cmd, code := range map[string]string{"ping 99": "no_such_app", "start nosuch": "unknown_app"} {
		rs, err := v.json(cmd)
		if err == nil || len(rs) != 1 || rs[0].str("code") != code {
			t.Errorf("%s: err %v results %v, want code %s", cmd, err, rs, code)
		}
	}
}

// TestKill9RestartPolicy: an app with restart = "always" that is killed comes
// back under the same ID with a new pid and a restart counted.
func TestKill9RestartPolicy(t *testing.T) {
	v := newViscript(t, "")
	v.startServe()
	r := v.must("start crashy")[0]
	pid := int(r.num("pid"))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var a app
	tstest.WaitFor(v.t, "crashy to be restarted", func() bool {
		a = v.list()[1]
		return a.State == "running" && a.Pid != pid && a.Restarts == 1
	})
	tstest.WaitFor(v.t, "the restarted app's signal client", func() bool { return v.list()[1].Connected })
	v.must("ping 1")
	// An explicit shutdown is not undone by the restart policy.
	v.must("sd 1")
	time.Sleep(500 * time.Millisecond)
	if a := v.list()[1]; a.State == "running" {
		t.Errorf("app restarted after an explicit sd: %+v", a)
	}
}

// TestViscriptRestartReadopts: daemons outlive a killed viscript and are
// adopted again under the same IDs; new apps get new IDs.
func TestViscriptRestartReadopts(t *testing.T) {
	v := newViscript(t, "")
	v.startServe()
	rs := v.must("start sig; start sleeper; start --force sig")
	v.must("sd 3") // an exited app stays exited
	tstest.WaitFor(v.t, "sig connected", func() bool { return v.list()[1].Connected })

	v.stopServe(syscall.SIGKILL)
	for _, r := range rs[:2] {
		if !alive(int(r.num("pid"))) {
			t.Fatalf("daemon %v died with viscript", r)
		}
	}
	v.startServe()
	apps := v.list()
	for i, r := range rs[:2] {
		a := apps[uint64(i+1)]
		if a.State != "running" || a.Pid != int(r.num("pid")) {
			t.Errorf("app %d after viscript restart: %+v, want running with pid %v", i+1, a, r.num("pid"))
		}
	}
	if a := apps[3]; a.State == "running" {
		t.Errorf("a stopped app came back: %+v", a)
	}
	// No waiting here: ping itself allows for the client's reconnect backoff.
	v.must("ping 1; ru 1")
	if r := v.must("start --force sleeper")[0]; r.num("id") != 4 {
		t.Errorf("new app after restart got id %v, want 4", r.num("id"))
	}
	if r := v.must("sd 1")[0]; r.str("step") != "signal" {
		t.Errorf("sd of an adopted daemon ended with %q, want signal", r.str("step"))
	}
	if r := v.must("sd 2")[0]; r.str("step") != "sigterm" {
		t.Errorf("sd of an adopted non-signal daemon ended with %q, want sigterm", r.str("step"))
	}
}

// TestStaleStateNotAdopted: a state file whose pid now belongs to another
// process must not be adopted (start times differ), and that process must
// be left alone.
func TestStaleStateNotAdopted(t *testing.T) {
	v := newViscript(t, "")
	v.startServe()
	v.must("start sleeper")
	v.stopServe(syscall.SIGKILL)
	// Kill the daemon, then point the table at an unrelated process.
	path := filepath.Join(v.state, "apps.json")
	var st map[string]any
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	app := st["apps"].([]any)[0].(map[string]any)
	syscall.Kill(int(app["pid"].(float64)), syscall.SIGKILL)
	// Process start times have clock-tick (10 ms) resolution. A real reused
	// pid comes back only after the kernel wrapped around the pid space, so
	// never within the tick of the original: model that.
	time.Sleep(50 * time.Millisecond)
	other := exec.Command("/bin/sleep", "300")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	t.Logf("recorded app %v; now pointing it at unrelated pid %d", app, other.Process.Pid)
	app["pid"] = other.Process.Pid
	data, _ = json.Marshal(st)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	v.startServe()
	a := v.list()[1]
	if a.State == "running" {
		t.Fatalf("adopted a process whose start time does not match: %+v", a)
	}
	rs, err := v.json("sd 1")
	if err == nil && len(rs) == 1 && rs[0].str("step") != "already-exited" {
		t.Errorf("sd of the stale app acted on it: %v", rs)
	}
	if !alive(other.Process.Pid) {
		t.Error("viscript killed an unrelated process that reused the pid")
	}
}

// TestBadFramesServerSurvives: garbage and a 4 GiB length on the signal and
// control sockets close only those connections.
func TestBadFramesServerSurvives(t *testing.T) {
	v := newViscript(t, "")
	v.startServe()
	v.must("start sig")
	tstest.WaitFor(v.t, "sig connected", func() bool { return v.list()[1].Connected })
	huge := binary.BigEndian.AppendUint32(nil, 0xFFFFFFFF)
	for _, sock := range []string{"signal.sock", "control.sock"} {
		for _, payload := range [][]byte{huge, []byte("GET / HTTP/1.0\r\n\r\n"), append(binary.BigEndian.AppendUint32(nil, 5), 0xc1, 0xc1, 0xc1, 0xc1, 0xc1)} {
			c, err := net.Dial("unix", filepath.Join(v.state, sock))
			if err != nil {
				t.Fatalf("dial %s: %v", sock, err)
			}
			c.Write(payload)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, c) // until the server closes it, as it must
			c.Close()
		}
	}
	if v.serve.ProcessState != nil {
		t.Fatal("viscript exited")
	}
	v.must("ping 1; la")
}

// TestShellExitStopsNonDaemons: a shell without a server runs the launcher
// itself; when it exits, non-daemon apps stop and daemons stay for the
// next viscript. A -c client of a running server does the same for what it
// started.
func TestShellExitStopsNonDaemons(t *testing.T) {
	v := newViscript(t, "")
	rs := v.must("start sig; start sigtmp")
	daemonPid, tmpPid := int(rs[0].num("pid")), int(rs[1].num("pid"))
	tstest.WaitFor(v.t, "the non-daemon to stop", func() bool { return !alive(tmpPid) })
	if !alive(daemonPid) {
		t.Fatal("the daemon died with the shell")
	}
	apps := v.list() // a second shell adopts the daemon
	if a := apps[1]; a.State != "running" || a.Pid != daemonPid {
		t.Errorf("daemon not re-adopted: %+v", a)
	}
	if a := apps[2]; a.State == "running" {
		t.Errorf("non-daemon shown running: %+v", a)
	}

	v.startServe()
	rs = v.must("start sigtmp")
	if rs[0].num("id") != 3 {
		t.Errorf("id %v, want 3", rs[0].num("id"))
	}
	pid := int(rs[0].num("pid"))
	tstest.WaitFor(v.t, "a non-daemon started by a -c client to stop when it left", func() bool { return !alive(pid) })
	if !alive(daemonPid) {
		t.Error("the daemon died")
	}
}

// TestShellStdin: commands piped on stdin, text output, and -c failing.
func TestShellStdin(t *testing.T) {
	v := newViscript(t, "")
	cmd := v.cmd()
	cmd.Stdin = strings.NewReader("apps\nhelp sig\nstart sleeper\nla\nsd 1\nquit\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("piped shell: %v\n%s", err, out)
	}
	for _, want := range []string{"sleeper", "a signal client", "started sleeper: id 1", "sigterm"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	cmd = v.cmd("-c", "la; frobnicate")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unknown command") {
		t.Errorf("-c with a bad command: %v\n%s", err, out)
	}
}
