package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNodeNames: real processes, nodes a..e of the e2e mesh where a claims
// "alpha", e "echo", c and d both claim "twin" (in different case) and b no
// name. The names reach the manager's directory; ping, route, nc and the
// messenger take a name where they take a key; the name two nodes claim is
// refused everywhere with both keys listed, and is marked in listings.
func TestNodeNames(t *testing.T) {
	m := newMeshNamed(t, map[string]string{"a": "alpha", "c": "twin", "d": "Twin", "e": "echo"}, nil)
	m.waitRoute("a", "e", 4)
	run := func(args ...string) (string, error) {
		out, err := m.cmd(args...).CombinedOutput()
		return string(out), err
	}
	for _, n := range meshNodes {
		m.waitNode(n)
	}
	// manager nodes: a NAME column, the twin marked, b with none.
	var out string
	var err error
	waitLong(t, "manager nodes to list every node with its name", func() bool {
		out, err = run("manager", "nodes")
		return err == nil && strings.Count(out, "(claimed by 2 nodes)") == 2 && strings.Contains(out, "echo") && strings.Count(out, "\n") == 6
	})
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, m.keys["a"]) && !strings.Contains(l, "  alpha  ") {
			t.Errorf("manager nodes: a's row lacks its name: %q", l)
		}
	}
	if strings.ContainsAny(out, "{}") {
		t.Errorf("manager nodes prints raw structs:\n%s", out)
	}

	// ping and route by name.
	out, err = run("ping", "--profile", "a", "-c", "1", "echo")
	if err != nil || !strings.Contains(out, "PING "+m.keys["e"]+" (echo)") || !strings.Contains(out, "1 received") {
		t.Errorf("ping echo: %v\n%s", err, out)
	}
	out, err = run("route", "--profile", "a", "ECHO")
	if err != nil || !strings.Contains(out, "4 links") || !strings.Contains(out, m.keys["c"]+"  twin (claimed by 2 nodes)") {
		t.Errorf("route ECHO: %v\n%s", err, out)
	}
	out, err = run("route", "--profile", "a", "twin")
	if err == nil || !strings.Contains(out, m.keys["c"]+"  twin") || !strings.Contains(out, m.keys["d"]+"  Twin") {
		t.Errorf("route to a name two nodes claim: %v, want an error listing both keys:\n%s", err, out)
	}
	out, err = run("node", "status", "--profile", "a")
	if err != nil || !strings.Contains(out, "name      alpha") || strings.ContainsAny(out, "{}") {
		t.Errorf("node status: %v\n%s", err, out)
	}

	// nc by name: e listens, a sends to "echo".
	recv := m.cmd("nc", "--profile", "e", "-d", "-l", "9100")
	var got strings.Builder
	recv.Stdout = &got
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	send := m.cmd("nc", "--profile", "a", "echo", "9100")
	send.Stdin = strings.NewReader("hello by name\n")
	if out, err := send.CombinedOutput(); err != nil {
		recv.Process.Kill()
		recv.Wait()
		t.Fatalf("nc echo 9100: %v\n%s", err, out)
	}
	waitExit(t, recv, "receiver nc", nil)
	if got.String() != "hello by name\n" {
		t.Errorf("nc by name delivered %q", got.String())
	}
	out, err = run("nc", "--profile", "a", "--retry", "0", "Twin", "9100")
	if err == nil || !strings.Contains(out, m.keys["d"]) {
		t.Errorf("nc to a name two nodes claim: %v\n%s", err, out)
	}

	// The messenger on a: peers shows names, send takes one.
	base, err := os.ReadFile(m.config)
	if err != nil {
		t.Fatal(err)
	}
	mcfg := filepath.Join(m.dir, "messenger-a.toml")
	extra := fmt.Sprintf("\n[messenger]\nnode = \"a\"\nstate_dir = %q\nweb = \"\"\n", filepath.Join(m.dir, "messenger-a"))
	if err := os.WriteFile(mcfg, append(base, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	msgr := exec.Command(skywireBin, "--config", mcfg, "messenger", "serve")
	msgr.Env = append(os.Environ(), "SKYWIRE_SIGNAL_ADDR=", "SKYWIRE_STATE_DIR=")
	startLogged(t, msgr, filepath.Join(m.dir, "messenger-a.log"))
	m.procs["messenger-a"] = msgr
	messenger := func(args ...string) (string, error) {
		cmd := exec.Command(skywireBin, append([]string{"--config", mcfg, "messenger"}, args...)...)
		cmd.Env = append(os.Environ(), "SKYWIRE_SIGNAL_ADDR=", "SKYWIRE_STATE_DIR=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	waitLong(t, "messenger peers to show the names", func() bool {
		out, err = messenger("peers")
		return err == nil && strings.Contains(out, m.keys["e"]+"  echo") && strings.Contains(out, "twin (claimed by 2 nodes)")
	})
	if out, err = messenger("send", "echo", "hi echo"); err != nil {
		t.Fatalf("messenger send echo: %v\n%s", err, out)
	}
	out, err = messenger("read", "--json", "echo")
	var ms []struct {
		Peer, Text string
	}
	if err != nil || json.Unmarshal([]byte(out), &ms) != nil || len(ms) != 1 || ms[0].Peer != m.keys["e"] || ms[0].Text != "hi echo" {
		t.Errorf("messenger read echo: %v\n%s", err, out)
	}
	out, err = messenger("conversations")
	if err != nil || !strings.Contains(out, m.keys["e"]) || !strings.Contains(out, "me: hi echo") || strings.ContainsAny(out, "{}") {
		t.Errorf("messenger conversations: %v\n%s", err, out)
	}
	// A nickname the user gave wins over a name a node claims: b nicknamed
	// "echo" is who "echo" means now (no messages with b yet).
	if out, err = messenger("nick", m.keys["b"], "echo"); err != nil {
		t.Fatalf("messenger nick: %v\n%s", err, out)
	}
	out, err = messenger("read", "--json", "echo")
	if err != nil || json.Unmarshal([]byte(out), &ms) != nil || len(ms) != 0 {
		t.Errorf("after nicknaming b echo, read echo shows e's messages: %v\n%s", err, out)
	}
	if out, err = messenger("send", "twin", "to whom?"); err == nil || !strings.Contains(out, m.keys["c"]) || !strings.Contains(out, m.keys["d"]) {
		t.Errorf("messenger send to a name two nodes claim: %v\n%s", err, out)
	}
}
