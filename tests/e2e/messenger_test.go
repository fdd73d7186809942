package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chatMesh is the five-node mesh with a messenger on a (config m.config)
// and one on c (config cConfig): c is two links from a, through relay b.
type chatMesh struct {
	*mesh
	configs map[string]string // messenger name -> config file
}

func newChatMesh(t *testing.T) *chatMesh {
	m := newMesh(t)
	base, err := os.ReadFile(m.config)
	if err != nil {
		t.Fatal(err)
	}
	cm := &chatMesh{mesh: m, configs: map[string]string{}}
	for _, n := range []string{"a", "c"} {
		cfg := filepath.Join(m.dir, "messenger-"+n+".toml")
		extra := fmt.Sprintf("\n[messenger]\nnode = %q\nstate_dir = %q\nweb = \"\"\nretry_min = \"100ms\"\nretry_max = \"1s\"\n",
			n, filepath.Join(m.dir, "messenger-"+n))
		if err := os.WriteFile(cfg, append(append([]byte{}, base...), extra...), 0o600); err != nil {
			t.Fatal(err)
		}
		cm.configs[n] = cfg
		m.waitNode(n)
	}
	cm.startMessenger("a")
	cm.startMessenger("c")
	return cm
}

func (cm *chatMesh) startMessenger(n string) {
	cm.t.Helper()
	cmd := exec.Command(skywireBin, "--config", cm.configs[n], "--log-level", "debug", "messenger", "serve")
	cmd.Env = append(os.Environ(), "SKYWIRE_SIGNAL_ADDR=", "SKYWIRE_STATE_DIR=")
	startLogged(cm.t, cmd, filepath.Join(cm.dir, "messenger-"+n+".log"))
	cm.procs["messenger-"+n] = cmd
}

// run runs `skywire messenger ARGS` against messenger n.
func (cm *chatMesh) run(n string, args ...string) (string, error) {
	cmd := exec.Command(skywireBin, append([]string{"--config", cm.configs[n], "messenger"}, args...)...)
	cmd.Env = append(os.Environ(), "SKYWIRE_SIGNAL_ADDR=", "SKYWIRE_STATE_DIR=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type chatMsg struct {
	ID, Dir, Text, State string
}

// messages returns what messenger n has, waiting (up to 20 s) for its
// daemon to answer: it may just have been started.
func (cm *chatMesh) messages(n string) []chatMsg {
	cm.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := cm.run(n, "read", "--json")
		if err == nil {
			var ms []chatMsg
			if err := json.Unmarshal([]byte(out), &ms); err != nil {
				cm.t.Fatalf("messenger read --json on %s printed %q: %v", n, out, err)
			}
			return ms
		}
		if time.Now().After(deadline) {
			cm.t.Fatalf("messenger read on %s: %v: %s", n, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (cm *chatMesh) send(from, to, text string) {
	cm.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for { // until the daemon answers on its control socket
		out, err := cm.run(from, "send", cm.keys[to], text)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			cm.t.Fatalf("messenger send from %s: %v: %s", from, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitText waits until messenger n has received text exactly once.
func (cm *chatMesh) waitText(n, text string) {
	cm.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		count := 0
		for _, m := range cm.messages(n) {
			if m.Dir == "in" && m.Text == text {
				count++
			}
		}
		if count > 1 {
			cm.t.Fatalf("%s received %q %d times", n, text, count)
		}
		if count == 1 {
			return
		}
		if time.Now().After(deadline) {
			cm.t.Fatalf("%s never received %q; it has %+v", n, text, cm.messages(n))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestMessengerThroughRelay(t *testing.T) {
	cm := newChatMesh(t)
	cm.send("a", "c", "hello c")
	cm.send("c", "a", "hello a")
	cm.waitText("c", "hello c")
	cm.waitText("a", "hello a")

	// The recipient goes away; what is sent meanwhile arrives once when it
	// is back.
	cm.kill("messenger-c", syscall.SIGTERM)
	cm.send("a", "c", "while you were out")
	time.Sleep(500 * time.Millisecond)
	cm.startMessenger("c")
	cm.waitText("c", "while you were out")

	// The sender is killed with a message in its outbox (c is away, so it
	// cannot be delivered); restarted, it delivers it, once.
	cm.kill("messenger-c", syscall.SIGTERM)
	cm.send("a", "c", "from the outbox")
	cm.kill("messenger-a", syscall.SIGKILL)
	cm.startMessenger("c")
	cm.startMessenger("a")
	cm.waitText("c", "from the outbox")
	time.Sleep(time.Second) // a duplicate would arrive within a retry
	cm.waitText("c", "from the outbox")
	for _, m := range cm.messages("a") {
		if m.Dir == "out" && m.State != "delivered" {
			t.Errorf("a's message %q is %s, want delivered", m.Text, m.State)
		}
	}

	// Bad input gets a clear error.
	if out, err := cm.run("a", "send", cm.keys["c"], strings.Repeat("x", 70000)); err == nil || !strings.Contains(out, "too large") {
		t.Errorf("oversized message: %v %q", err, out)
	}
	if out, err := cm.run("a", "send", "pk:nope", "hi"); err == nil {
		t.Errorf("bad recipient accepted: %q", out)
	}
	// peers lists c, and the apps by name once the nodes have reported
	// them (the messengers re-registered just now).
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := cm.run("a", "peers")
		if err == nil && strings.Contains(out, cm.keys["c"][:11]) && strings.Count(out, "messenger:7") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("peers should list c and both messengers: %v %q", err, out)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, err := cm.run("a", "whois", cm.keys["c"]); err != nil || !strings.Contains(out, cm.keys["b"][:11]) {
		t.Errorf("whois c should show the route through b: %v %q", err, out)
	}
}
