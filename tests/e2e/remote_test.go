package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// remoteViscript is a viscript of the mesh test's config run with its own
// [viscript] table (node, admins) and state directory.
type remoteViscript struct {
	m      *mesh
	name   string
	config string
	state  string
}

// viscriptOn writes a config for a viscript on node n: the mesh's config
// with [viscript] node = n plus extra keys, and the test apps.
func (m *mesh) viscriptOn(n, extra string) *remoteViscript {
	m.t.Helper()
	v := &remoteViscript{m: m, name: n, config: filepath.Join(m.dir, "viscript-"+n+".toml"), state: filepath.Join(m.dir, "viscript-"+n)}
	v.write(extra)
	return v
}

// serveAdmin starts `viscript --serve` on node n with the key of node
// admin in its admins.
func (m *mesh) serveAdmin(n, admin string) *remoteViscript {
	m.t.Helper()
	v := m.viscriptOn(n, fmt.Sprintf("admins = [%q]", m.keys[admin]))
	v.serve()
	return v
}

// write (re)writes the viscript's config with extra in its [viscript] table.
func (v *remoteViscript) write(extra string) {
	v.m.t.Helper()
	base, err := os.ReadFile(v.m.config)
	if err != nil {
		v.m.t.Fatal(err)
	}
	head := fmt.Sprintf("[viscript]\nstate_dir = %q\n", v.m.state)
	if !bytes.HasPrefix(base, []byte(head)) {
		v.m.t.Fatalf("mesh config does not start with %q", head)
	}
	cfg := head + fmt.Sprintf("node = %q\n", v.name) + extra + "\n" + string(base[len(head):]) + fmt.Sprintf(`
[apps.sig]
path = %q
default_args = ["-every", "100ms"]
daemon = true
stop_timeout = "3s"
`, sigappBin)
	if err := os.WriteFile(v.config, []byte(cfg), 0o600); err != nil {
		v.m.t.Fatal(err)
	}
}

func (v *remoteViscript) cmd(args ...string) *exec.Cmd {
	return viscriptCmd(v.config, v.state, args...)
}

// serve starts `viscript --serve` for this node.
func (v *remoteViscript) serve() {
	v.m.t.Helper()
	cmd := v.cmd("--serve", "--log-level", "debug")
	startLogged(v.m.t, cmd, filepath.Join(v.m.dir, "viscript-"+v.name+".log"))
	v.m.procs["viscript-"+v.name] = cmd
	v.m.t.Cleanup(func() { killApps(v.state) })
}

// json runs `viscript --json [--node KEY] -c cmds` and returns its results
// and exit error.
func (v *remoteViscript) json(node, cmds string) ([]result, string, error) {
	v.m.t.Helper()
	args := []string{"--json"}
	if node != "" {
		args = append(args, "--node", node)
	}
	return runJSON(v.m.t, v.cmd(append(args, "-c", cmds)...), 90*time.Second, fmt.Sprintf("viscript --node %s -c %q", node, cmds))
}

// must runs cmds on node and fails the test unless every one succeeded.
func (v *remoteViscript) must(node, cmds string) []result {
	v.m.t.Helper()
	rs, stderr, err := v.json(node, cmds)
	if err != nil || len(rs) != len(strings.Split(cmds, ";")) {
		v.m.t.Fatalf("viscript --node %s -c %q: %v; results %v; stderr %s", node, cmds, err, rs, stderr)
	}
	for _, r := range rs {
		if !r.ok() {
			v.m.t.Fatalf("viscript --node %s -c %q: %v", node, cmds, r)
		}
	}
	return rs
}

// waitOK runs cmds on node until every one succeeds (the remote port may
// not be open yet, an app not connected yet) and returns the results.
func (v *remoteViscript) waitOK(what, node, cmds string) []result {
	v.m.t.Helper()
	var rs []result
	waitLong(v.m.t, what, func() bool {
		var err error
		rs, _, err = v.json(node, cmds)
		return err == nil && len(rs) == len(strings.Split(cmds, ";")) && !slices.ContainsFunc(rs, func(r result) bool { return !r.ok() })
	})
	return rs
}

var tickRE = regexp.MustCompile(`sigapp tick (\d+) pid`)

// lastTick is the highest tick number in s (-1 for none).
func lastTick(s string) int {
	last := -1
	for _, m := range tickRE.FindAllStringSubmatch(s, -1) {
		var n int
		fmt.Sscan(m[1], &n)
		last = max(last, n)
	}
	return last
}

// TestViscriptRemoteControl: nodes a — b — c (and d, e) as processes, a
// viscript --serve on c that lists a's key as its admin. From a, through
// relay b: la, start, ping, ru, logs -f, sd on c; the follow survives a
// kill -9 of the relay (the shell connects again when b is back and goes
// on from the same offset); e, not an admin, is refused with its key
// named; after c's admins are edited and reloaded, a is refused too.
func TestViscriptRemoteControl(t *testing.T) {
	m := newMeshNamed(t, map[string]string{"c": "kitchen-pi"}, nil)
	for _, n := range []string{"a", "c", "e"} {
		m.waitNode(n)
	}
	vc := m.serveAdmin("c", "a")
	va := m.viscriptOn("a", "")
	ve := m.viscriptOn("e", "")
	c := m.keys["c"]
	m.waitRoute("a", "c", 2)

	// The port opens once c's viscript has registered on node c.
	va.waitOK("la on c from a", c, "la")

	start := time.Now()
	rs := va.must(c, "start sig")
	id := uint64(rs[0].num("id"))
	pid := int(rs[0].num("pid"))
	if id == 0 || !alive(pid) {
		t.Fatalf("start sig on c: %v (pid %d alive %v)", rs[0], pid, alive(pid))
	}
	t.Logf("remote start through one relay: %v (one process, dial and all)", time.Since(start))
	// The app runs on c's viscript: its own table has it.
	local, _, err := vc.json("", "la")
	if err != nil || len(local) != 1 || !strings.Contains(fmt.Sprint(local[0]["apps"]), "sig") {
		t.Fatalf("c's own la: %v %v", local, err)
	}
	va.waitOK("sig to connect as a signal client on c", c, fmt.Sprintf("ping %d", id))
	rs = va.must(c, fmt.Sprintf("la; ping %d; ru %d", id, id))
	if rs[2].num("pid") != float64(pid) || rs[2].num("rss_bytes") <= 0 {
		t.Errorf("ru over the mesh: %v", rs[2])
	}
	// Text output too, as locally; and c by the name it claims.
	out, err := va.cmd("--node", "kitchen-pi", "-c", fmt.Sprintf("la; ru %d", id)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sig") || !strings.Contains(string(out), "rss:") {
		t.Errorf("text la/ru over the mesh: %v\n%s", err, out)
	}

	// la --all from a: c's apps with a NODE column; the nodes without a
	// remote viscript are listed as such, not fatal.
	out, err = va.cmd("-c", "la --all").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "NODE") || !strings.Contains(string(out), c[:11]) ||
		!strings.Contains(string(out), m.keys["e"]+": unreachable") {
		t.Errorf("la --all: %v\n%s", err, out)
	}

	// logs -f over the mesh, and the relay killed under it.
	follow := va.cmd("--node", c, "-c", fmt.Sprintf("logs %d -f", id))
	var fout, ferr tstest.SyncBuffer
	follow.Stdout, follow.Stderr = &fout, &ferr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer follow.Process.Kill()
	waitLong(t, "logs -f to show ticks", func() bool { return lastTick(fout.String()) >= 0 })
	m.kill("b", syscall.SIGKILL)
	waitLong(t, "logs -f to notice the relay is gone", func() bool { return strings.Contains(ferr.String(), "lost the connection to "+c) })
	before := lastTick(fout.String())
	m.start("b", "node", "--profile", "b")
	waitLong(t, "logs -f to connect again and follow on", func() bool {
		return strings.Contains(ferr.String(), "connected to "+c+" again") && lastTick(fout.String()) > before+5
	})
	// From the same offset: every tick once, none missing.
	// (One snapshot: the follow goes on printing.)
	got := fout.String()
	seen := map[int]int{}
	for _, mm := range tickRE.FindAllStringSubmatch(got, -1) {
		var n int
		fmt.Sscan(mm[1], &n)
		seen[n]++
	}
	first := -1
	for n := range seen {
		if first < 0 || n < first {
			first = n
		}
	}
	for n := first; n <= lastTick(got); n++ {
		if seen[n] != 1 {
			t.Errorf("tick %d shown %d times by logs -f across the relay's restart; output:\n%s\nstderr:\n%s", n, seen[n], got, ferr.String())
			break
		}
	}
	follow.Process.Signal(syscall.SIGINT)
	waitExit(t, follow, "logs -f", &ferr)

	// sd over the mesh stops the process on c.
	rs = va.must(c, fmt.Sprintf("sd %d", id))
	if rs[0].str("step") != "signal" {
		t.Errorf("sd: %v, want the signal step", rs[0])
	}
	waitLong(t, "sig to exit on c", func() bool { return !alive(pid) })

	// e is no admin of c: refused, its key named.
	rs, stderr, err := ve.json(c, "la")
	if err == nil || len(rs) != 1 || rs[0].ok() || rs[0].str("code") != "unauthorized" || !strings.Contains(rs[0].str("error"), m.keys["e"]) {
		t.Errorf("e's la on c: %v %v %s; want unauthorized naming %s", rs, err, stderr, m.keys["e"])
	}

	// c's admins emptied and reloaded (on c): a is refused from then on.
	vc.write("admins = []")
	rs = vc.must("", "reload")
	if !strings.Contains(fmt.Sprint(rs[0]["admins_removed"]), m.keys["a"]) {
		t.Errorf("reload: %v, want a's key removed", rs[0])
	}
	waitLong(t, "a to be refused after the reload", func() bool {
		rs, _, err := va.json(c, "la")
		return err != nil && len(rs) == 1 && !rs[0].ok() &&
			(rs[0].str("code") == "unauthorized" || strings.Contains(rs[0].str("error"), "no viscript serves remote control"))
	})
}

// TestViscriptRemoteRoundTrip measures la, ping and ru on c from a through
// relay b over one interactive connection (the figure of docs/viscript.md).
func TestViscriptRemoteRoundTrip(t *testing.T) {
	m := newMesh(t)
	m.serveAdmin("c", "a")
	va := m.viscriptOn("a", "")
	c := m.keys["c"]
	m.waitRoute("a", "c", 2)
	rs := va.waitOK("start sig on c from a", c, "start sig")
	id := uint64(rs[0].num("id"))
	va.waitOK("sig to answer pings", c, fmt.Sprintf("ping %d", id))
	// One shell, commands on stdin: each answer is one mesh round trip
	// (ru also samples CPU for usage_window, 200 ms, on c).
	sh := va.cmd("--json", "--node", c)
	in, out := tstest.StdioPipes(t, sh)
	var stderr tstest.SyncBuffer
	sh.Stderr = &stderr
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer sh.Process.Kill()
	lines := bufio.NewReader(out)
	for _, cmd := range []string{"la", fmt.Sprintf("ping %d", id), fmt.Sprintf("ru %d", id)} {
		const n = 20
		var times []time.Duration
		for range n {
			t0 := time.Now()
			if _, err := io.WriteString(in, cmd+"\n"); err != nil {
				t.Fatalf("%s: %v; stderr %s", cmd, err, stderr.String())
			}
			line, err := lines.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v; stderr %s", cmd, err, stderr.String())
			}
			times = append(times, time.Since(t0))
			var r result
			if err := json.Unmarshal([]byte(line), &r); err != nil || !r.ok() {
				t.Fatalf("%s: %q %v", cmd, line, err)
			}
		}
		slices.Sort(times)
		t.Logf("remote %-6s through one relay: median %v, min %v, max %v (%d runs)", strings.Fields(cmd)[0], times[n/2], times[0], times[n-1], n)
	}
	in.Close()
	waitExit(t, sh, "the shell", &stderr)
}

// The dashboard of a's viscript starts and stops an app on node c over
// the mesh (c's admins list a); e's dashboard, not an admin there, is
// refused by c.
func TestDashboardDrivesRemoteNode(t *testing.T) {
	m := newMesh(t)
	for _, n := range []string{"a", "c", "e"} {
		m.waitNode(n)
	}
	vc := m.serveAdmin("c", "a")
	webA, webE := freePort(t), freePort(t)
	m.viscriptOn("a", fmt.Sprintf("web = %q", webA)).serve()
	m.viscriptOn("e", fmt.Sprintf("web = %q", webE)).serve()
	c := m.keys["c"]
	post := func(web, path string, body map[string]any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		resp, err := http.Post("http://"+web+path, "application/json", bytes.NewReader(b))
		if err != nil {
			return 0, map[string]any{"error": err.Error()}
		}
		defer resp.Body.Close()
		var v map[string]any
		json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}

	var started map[string]any
	waitLong(t, "a's dashboard to start sig on c", func() bool {
		code, v := post(webA, "/api/start", map[string]any{"node": c, "name": "sig"})
		started = v
		return code == http.StatusOK
	})
	id, _ := started["id"].(float64)
	local, _, err := vc.json("", "la")
	if err != nil || len(local) != 1 || !strings.Contains(fmt.Sprint(local[0]["apps"]), "sig") {
		t.Fatalf("c's own la after the dashboard's start (%v): %v %v", started, local, err)
	}
	if code, v := post(webA, "/api/stop", map[string]any{"node": c, "id": id}); code != http.StatusOK {
		t.Errorf("a's dashboard stop of app %v on c: %d %v", id, code, v)
	}

	// a's dashboard charts its node's links from the node's metrics
	// (the node role's control socket answers /metrics).
	waitLong(t, "a's dashboard to show its node's link counters", func() bool {
		var st struct {
			MeshError  string `json:"mesh_error"`
			LocalLinks []struct {
				Peer     string `json:"peer"`
				BytesIn  uint64 `json:"bytes_in"`
				BytesOut uint64 `json:"bytes_out"`
			} `json:"local_links"`
		}
		resp, err := http.Get("http://" + webA + "/api/state")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if json.NewDecoder(resp.Body).Decode(&st) != nil || st.MeshError != "" || len(st.LocalLinks) == 0 {
			return false
		}
		for _, l := range st.LocalLinks {
			if l.BytesIn == 0 || l.BytesOut == 0 {
				return false
			}
		}
		return true
	})

	var refusal map[string]any
	waitLong(t, "c to refuse e's dashboard", func() bool {
		code, v := post(webE, "/api/start", map[string]any{"node": c, "name": "sig"})
		refusal = v
		return code != http.StatusOK && strings.Contains(fmt.Sprint(v["error"]), "unauthorized")
	})
	if !strings.Contains(fmt.Sprint(refusal["error"]), m.keys["e"]) {
		t.Errorf("refusal %v does not name e's key", refusal)
	}
}
