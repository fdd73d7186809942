package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/cli/config"
	"github.com/skywire-mesh/skywire/internal/cli/rolectl"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/node"
)

// demoMesh is the shipped demo (manager, [node] a, [nodes.b], [nodes.c],
// in a line, with the demo keys the README prints) on free loopback ports,
// reached through $SKYWIRE_CONFIG and $SKYWIRE_STATE_DIR as a user's shell
// would, with the binary on $PATH.
type demoMesh struct {
	t     *testing.T
	dir   string
	env   []string
	procs []*exec.Cmd
}

func newDemoMesh(t *testing.T) *demoMesh {
	t.Helper()
	dir := t.TempDir()
	d := &demoMesh{t: t, dir: dir}
	key := func(n string) string { return config.DemoKeyPair(n).Public.String() }
	addr := map[string]string{}
	for _, n := range []string{"manager", "a", "b", "c"} {
		addr[n] = freePort(t)
	}
	mgr := fmt.Sprintf("managers = [{ public_key = %q, addr = %q }]\n", key("manager"), addr["manager"])
	cfg := fmt.Sprintf("[manager]\nidentity = \"demo:manager\"\nlisten_addr = %q\n\n", addr["manager"]) +
		fmt.Sprintf("[node]\nidentity = \"demo:a\"\nlisten_addr = %q\n%speers = [{ public_key = %q, addr = %q }]\n\n", addr["a"], mgr, key("b"), addr["b"]) +
		fmt.Sprintf("[nodes.b]\nidentity = \"demo:b\"\nlisten_addr = %q\n%speers = [{ public_key = %q, addr = %q }]\n\n", addr["b"], mgr, key("c"), addr["c"]) +
		fmt.Sprintf("[nodes.c]\nidentity = \"demo:c\"\nlisten_addr = %q\n%s", addr["c"], mgr)
	cfgPath := filepath.Join(dir, "skywire.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d.env = append(os.Environ(), "SKYWIRE_CONFIG="+cfgPath, "SKYWIRE_STATE_DIR="+filepath.Join(dir, "state"),
		"SKYWIRE_SIGNAL_ADDR=", "PATH="+filepath.Dir(skywireBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Cleanup(func() {
		for _, p := range d.procs {
			p.Process.Kill()
			p.Wait()
		}
		if t.Failed() {
			for _, n := range []string{"manager", "a", "b", "c"} {
				if b, err := os.ReadFile(filepath.Join(dir, n+".log")); err == nil {
					t.Logf("%s.log:\n%s", n, tail(b, 3000))
				}
			}
		}
	})
	for _, p := range [][]string{{"manager", "manager"}, {"a", "node"}, {"b", "node", "--profile", "b"}, {"c", "node", "--profile", "c"}} {
		cmd := d.cmd(append([]string{"--log-level", "debug"}, p[1:]...)...)
		startLogged(t, cmd, filepath.Join(dir, p[0]+".log"))
		d.procs = append(d.procs, cmd)
	}
	// a reaches c over two links.
	waitLong(t, "a route a→b→c", func() bool {
		var p node.PathInfo
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return rolectl.Get(ctx, filepath.Join(dir, "state", "node.ctl"), "/route?to="+key("c"), &p) == nil && len(p.Per) == 2
	})
	return d
}

func (d *demoMesh) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(skywireBin, args...)
	cmd.Env = d.env
	cmd.Dir = d.dir
	return cmd
}

// readmeLine returns the README line that starts with prefix.
func readmeLine(t *testing.T, prefix string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return strings.TrimSpace(l)
		}
	}
	t.Fatalf("README.md has no line starting with %q", prefix)
	return ""
}

// TestNcReadmeLine runs the README's nc line as written, in a shell: the
// listener is started in the background and the sender at once after it
// (they race; the sender waits for the listener), and when the line returns
// `received` holds the whole file. Who wins the race here depends on the
// machine; TestNcSenderFirst forces the order the old sender lost (it
// found no listener and exited 0 having sent nothing).
func TestNcReadmeLine(t *testing.T) {
	d := newDemoMesh(t)
	line := readmeLine(t, "skywire nc --profile c -l 9000")
	data := make([]byte, 4<<20)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(filepath.Join(d.dir, "file"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	// What the line leaves in `received` is checked before the shell waits
	// for its background job: the sender's success must mean it arrived.
	sh := d.cmd()
	sh.Path, sh.Args = "/bin/sh", []string{"sh", "-c", line + "\nst=$?\ncp received received.at-exit\nwait\nexit $st"}
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("the README line %q failed: %v\n%s", line, err, out)
	}
	got, err := os.ReadFile(filepath.Join(d.dir, "received.at-exit"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("when the sender returned, received held %d bytes (%v); want the %d of file\n%s", len(got), err, len(data), out)
	}
}

// TestNcRefused: a sender to a port nobody listens on fails, naming the
// node and the port, after --retry (it used to exit 0 silently).
func TestNcRefused(t *testing.T) {
	d := newDemoMesh(t)
	c := config.DemoKeyPair("c").Public.String()
	cmd := d.cmd("nc", "--retry", "500ms", c, "9001")
	cmd.Stdin = strings.NewReader("hello")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("nc to a port nobody listens on exited 0:\n%s", out)
	}
	for _, want := range []string{c + ":9001", "refused", "nothing listens on port 9001"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("nc's error lacks %q:\n%s", want, out)
		}
	}
}

// TestNcListenerKilled: the listener dies mid-transfer; the sender exits
// non-zero saying the rest was not delivered (it used to say only
// "broken pipe").
func TestNcListenerKilled(t *testing.T) {
	d := newDemoMesh(t)
	recv := d.cmd("nc", "--profile", "c", "-l", "9002")
	out, _ := startPiped(t, recv, recv.StdoutPipe)
	d.procs = append(d.procs, recv)
	send := d.cmd("nc", config.DemoKeyPair("c").Public.String(), "9002")
	in, sendErr := startPiped(t, send, send.StdinPipe)
	d.procs = append(d.procs, send)
	// Feed the sender until it stops taking input.
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		buf := make([]byte, 64<<10)
		for {
			if _, err := in.Write(buf); err != nil {
				return
			}
		}
	}()
	if _, err := io.ReadFull(out, make([]byte, 1<<20)); err != nil {
		t.Fatalf("the listener received less than 1 MiB: %v", err)
	}
	recv.Process.Kill()
	if err := waitCmd(t, send, 120*time.Second, "the sender (its listener killed)"); err == nil {
		t.Fatal("the sender exited 0 though its listener was killed mid-transfer")
	}
	in.Close()
	<-fed
	if !strings.Contains(sendErr.String(), "not delivered") {
		t.Errorf("sender's error does not say the rest was not delivered:\n%s", sendErr.String())
	}
}

// TestNcSenderFirst: the sender starts before anything listens (the race
// the README's line can lose); it is refused, retries, and once the
// listener is there the data arrives and both exit 0. The old sender
// exited 0 at once with nothing delivered.
func TestNcSenderFirst(t *testing.T) {
	d := newDemoMesh(t)
	data := bytes.Repeat([]byte("skywire "), 1<<16)
	send := d.cmd("nc", "--retry", "60s", config.DemoKeyPair("c").Public.String(), "9003")
	send.Stdin = bytes.NewReader(data)
	var sendOut bytes.Buffer
	send.Stdout, send.Stderr = &sendOut, &sendOut
	if err := send.Start(); err != nil {
		t.Fatal(err)
	}
	d.procs = append(d.procs, send)
	waitLong(t, "node c to refuse the sender's stream (nothing listens yet)", func() bool {
		b, _ := os.ReadFile(filepath.Join(d.dir, "c.log"))
		return bytes.Contains(b, []byte("stream to a closed port"))
	})
	recv := d.cmd("nc", "--profile", "c", "-l", "9003")
	var got, recvErr bytes.Buffer
	recv.Stdout, recv.Stderr = &got, &recvErr
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	d.procs = append(d.procs, recv)
	waitExit(t, send, "the sender", &sendOut)
	waitExit(t, recv, "the listener", &recvErr)
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("the listener got %d bytes, want %d; sender said %s; listener said %s", got.Len(), len(data), sendOut.String(), recvErr.String())
	}
}

// TestNcReadmeLineInATerminal runs the README's line in a shell with job
// control on a terminal, as a person types it: the backgrounded listener
// shares the terminal, and reading it would stop the listener with
// SIGTTIN (as it did), so the sender would never be answered.
func TestNcReadmeLineInATerminal(t *testing.T) {
	d := newDemoMesh(t)
	master, slave := tstest.OpenPTY(t)
	go io.Copy(io.Discard, master) // whatever the shell writes to the terminal
	line := readmeLine(t, "skywire nc --profile c -l 9000")
	data := bytes.Repeat([]byte("terminal "), 1<<15)
	if err := os.WriteFile(filepath.Join(d.dir, "file"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	sh := d.cmd()
	var out bytes.Buffer
	sh.Path, sh.Args = "/bin/sh", []string{"sh", "-m", "-c", line + "\nst=$?\ncp received received.at-exit\nwait\nexit $st"}
	sh.Stdin, sh.Stdout, sh.Stderr = slave, &out, &out
	sh.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	d.procs = append(d.procs, sh)
	if err := waitCmd(t, sh, 120*time.Second, "the README line in a terminal", " (listener stopped by SIGTTIN?)\n", &out); err != nil {
		t.Fatalf("the README line in a terminal: %v\n%s", err, out.String())
	}
	got, err := os.ReadFile(filepath.Join(d.dir, "received.at-exit"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("received holds %d bytes (%v), want %d\n%s", len(got), err, len(data), out.String())
	}
}
