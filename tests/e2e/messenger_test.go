package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
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

// runRetry runs the messenger subcommand on n until it succeeds, waiting
// (up to 20 s) for its daemon to answer: it may just have been started.
// what is the wait's name; the last failure is logged if it never does.
func (cm *chatMesh) runRetry(what, n string, args ...string) string {
	cm.t.Helper()
	var out string
	var err error
	defer func() {
		if err != nil {
			cm.t.Logf("last messenger %s on %s: %v: %s", args[0], n, err, out)
		}
	}()
	waitLong(cm.t, "messenger "+n+" to "+what, func() bool {
		out, err = cm.run(n, args...)
		return err == nil
	})
	return out
}

// messages returns what messenger n has, waiting (up to 20 s) for its
// daemon to answer: it may just have been started.
func (cm *chatMesh) messages(n string) []chatMsg {
	cm.t.Helper()
	out := cm.runRetry("answer read", n, "read", "--json")
	var ms []chatMsg
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		cm.t.Fatalf("messenger read --json on %s printed %q: %v", n, out, err)
	}
	return ms
}

func (cm *chatMesh) send(from, to, text string) {
	cm.t.Helper()
	cm.runRetry("take a message to send", from, "send", cm.keys[to], text)
}

func (cm *chatMesh) logCount(name, s string) int {
	b, _ := os.ReadFile(filepath.Join(cm.dir, name+".log"))
	return strings.Count(string(b), s)
}

// outState returns the delivery state of n's outgoing message text ("" if
// there is none).
func (cm *chatMesh) outState(n, text string) string {
	for _, m := range cm.messages(n) {
		if m.Dir == "out" && m.Text == text {
			return m.State
		}
	}
	return ""
}

// waitText waits until messenger n has received text exactly once.
func (cm *chatMesh) waitText(n, text string) {
	cm.t.Helper()
	waitLong(cm.t, n+" to receive "+strconv.Quote(text), func() bool {
		count := 0
		for _, m := range cm.messages(n) {
			if m.Dir == "in" && m.Text == text {
				count++
			}
		}
		if count > 1 {
			cm.t.Fatalf("%s received %q %d times", n, text, count)
		}
		return count == 1
	})
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
	failed := cm.logCount("messenger-a", "delivery failed; will retry")
	cm.send("a", "c", "while you were out")
	waitLong(t, "a to try to deliver to c while c is away, and fail", func() bool {
		return cm.logCount("messenger-a", "delivery failed; will retry") > failed
	})
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
	// Once a has it as delivered it sends it no more: any duplicate would
	// have arrived by then.
	waitLong(t, "a to mark the outbox message delivered", func() bool { return cm.outState("a", "from the outbox") == "delivered" })
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
	waitLong(t, "peers to list c and both messengers", func() bool {
		out, err := cm.run("a", "peers")
		return err == nil && strings.Contains(out, cm.keys["c"][:11]) && strings.Count(out, "messenger:7") == 2
	})
	if out, err := cm.run("a", "whois", cm.keys["c"]); err != nil || !strings.Contains(out, cm.keys["b"][:11]) {
		t.Errorf("whois c should show the route through b: %v %q", err, out)
	}
}
