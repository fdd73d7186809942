package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/cli/config"
	"github.com/skywire-mesh/skywire/internal/cli/rolectl"
	"github.com/skywire-mesh/skywire/manager"
	"github.com/skywire-mesh/skywire/node"
)

// TestMembershipSurvivesManagerRestart runs a members-only manager and
// nodes a (a config member), b and c (which join with an invitation) as
// separate processes. c is refused until it has a token; after c is removed
// and the manager is killed and restarted, b is still a member and c is
// still out.
func TestMembershipManagerRestart(t *testing.T) {
	dir := t.TempDir()
	m := &mesh{t: t, dir: dir, config: filepath.Join(dir, "skywire.toml"), state: filepath.Join(dir, "state"),
		procs: map[string]*exec.Cmd{}, keys: map[string]string{}}
	t.Cleanup(m.cleanup)
	addr := map[string]string{}
	for _, n := range []string{"manager", "a", "b", "c"} {
		m.keys[n] = config.DemoKeyPair("e2e-" + n).Public.String()
		addr[n] = freePort(t)
	}
	join := map[string]string{}
	writeConfig := func() {
		var b strings.Builder
		fmt.Fprintf(&b, "[viscript]\nstate_dir = %q\n\n[manager]\nidentity = \"demo:e2e-manager\"\nlisten_addr = %q\nadmit = \"members\"\nmembers = [%q]\n\n",
			m.state, addr["manager"], m.keys["a"])
		peers := map[string]string{"a": "b", "b": "c"}
		for _, n := range []string{"a", "b", "c"} {
			fmt.Fprintf(&b, "[nodes.%s]\nidentity = \"demo:e2e-%s\"\nlisten_addr = %q\nmanagers = [{ public_key = %q, addr = %q }]\n",
				n, n, addr[n], m.keys["manager"], addr["manager"])
			if p, ok := peers[n]; ok {
				fmt.Fprintf(&b, "peers = [{ public_key = %q, addr = %q }]\n", m.keys[p], addr[p])
			}
			if tok := join[n]; tok != "" {
				fmt.Fprintf(&b, "join = %q\n", tok)
			}
			b.WriteString("\n")
		}
		if err := os.WriteFile(m.config, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (string, error) {
		cmd := m.cmd(args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out), fmt.Errorf("skywire %s: %w: %s", strings.Join(args, " "), err, stderr.String())
		}
		return string(out), nil
	}
	status := func(n string) node.Status {
		var st node.Status
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rolectl.Get(ctx, m.ctl(n), "/status", &st)
		return st
	}
	members := func() []manager.MemberInfo {
		out, err := run("manager", "members", "--json")
		if err != nil {
			return nil
		}
		var ms []manager.MemberInfo
		if json.Unmarshal([]byte(out), &ms) != nil {
			return nil
		}
		return ms
	}
	isMember := func(ms []manager.MemberInfo, n, how string) bool {
		return slices.ContainsFunc(ms, func(mi manager.MemberInfo) bool { return mi.Key.String() == m.keys[n] && mi.How == how })
	}
	registered := func(n string) bool {
		st := status(n)
		return len(st.Managers) == 1 && st.Managers[0].Registered
	}
	refusedFor := func(n, why string) bool {
		st := status(n)
		return len(st.Managers) == 1 && strings.Contains(st.Managers[0].Refused, why)
	}

	writeConfig()
	m.start("manager", "manager")
	m.start("a", "node", "--profile", "a")
	m.start("c", "node", "--profile", "c")
	waitLong(t, "a registered", func() bool { return registered("a") })

	// c is not a member: refused, with the reason on both sides.
	waitLong(t, "c refused", func() bool {
		return refusedFor("c", "not a member of this mesh (ask the manager's operator for an invitation: skywire manager invite)")
	})
	waitLong(t, "the manager logs the refused key", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "manager.log"))
		return strings.Contains(string(b), "node refused: not a member") && strings.Contains(string(b), m.keys["c"])
	})

	// Invitations for b and c.
	tok, err := run("manager", "invite", "--uses", "2", "--expires", "1h")
	if err != nil {
		t.Fatal(err)
	}
	tok = strings.TrimSpace(tok)
	if !strings.HasPrefix(tok, "swinv1-") {
		t.Fatalf("invite printed %q", tok)
	}
	join["b"], join["c"] = tok, tok
	writeConfig()
	m.kill("c", syscall.SIGTERM)
	m.start("b", "node", "--profile", "b")
	m.start("c", "node", "--profile", "c")
	waitLong(t, "b and c joined", func() bool {
		ms := members()
		return isMember(ms, "a", "config") && isMember(ms, "b", "joined") && isMember(ms, "c", "joined")
	})
	waitLong(t, "b and c registered", func() bool { return registered("b") && registered("c") })
	m.waitRoute("a", "c", 2)

	// Config members are removed by editing the config; c is evicted.
	out, err := run("manager", "remove", m.keys["a"])
	if err == nil || !strings.Contains(err.Error(), "edit") {
		t.Fatalf("removing a config member: %s %v", out, err)
	}
	if _, err := run("manager", "remove", m.keys["c"]); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "c refused after removal", func() bool { return refusedFor("c", "removed") })
	waitLong(t, "b drops its link to c", func() bool {
		var ls []node.LinkInfo
		if rolectl.Get(context.Background(), m.ctl("b"), "/links", &ls) != nil {
			return false
		}
		return !slices.ContainsFunc(ls, func(l node.LinkInfo) bool { return l.Peer.String() == m.keys["c"] })
	})

	// The manager is killed and restarted: b is still a member, c still out.
	m.kill("manager", syscall.SIGKILL)
	if fi, err := os.Stat(filepath.Join(m.state, config.MembersFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("members file: %v %v", fi, err)
	}
	m.start("manager", "manager")
	waitLong(t, "b joined after the restart", func() bool {
		ms := members()
		return isMember(ms, "b", "joined") && !slices.ContainsFunc(ms, func(mi manager.MemberInfo) bool { return mi.Key.String() == m.keys["c"] })
	})
	waitLong(t, "a and b registered again", func() bool { return registered("a") && registered("b") })
	m.waitRoute("a", "b", 1)
	waitLong(t, "c refused by the restarted manager", func() bool { return refusedFor("c", "removed") })
	var st manager.Stats
	waitLong(t, "the restarted manager counts c's refusals", func() bool {
		out, err := run("manager", "status", "--json")
		return err == nil && json.Unmarshal([]byte(out), &st) == nil && st.Membership.Refused > 0
	})
}
