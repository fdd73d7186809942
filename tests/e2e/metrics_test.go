package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/skywire-mesh/skywire/internal/cli/config"
)

// A real node with metrics = "…" serves Prometheus text there: its link to
// its peer, its registration with the manager, and the process's own
// metrics. (The metric set itself is tested in internal/metrics.)
func TestNodeMetricsEndpoint(t *testing.T) {
	m := newMesh(t)
	m.waitNode("a")
	maddr := freePort(t)
	cfg := filepath.Join(m.dir, "metrics-node.toml")
	doc := fmt.Sprintf("[viscript]\nstate_dir = %q\n\n[node]\nidentity = \"demo:e2e-m\"\nlisten_addr = \"\"\nmetrics = %q\n"+
		"managers = [{ public_key = %q, addr = %q }]\npeers = [{ public_key = %q, addr = %q }]\n",
		filepath.Join(m.dir, "metrics-state"), maddr, m.keys["manager"], m.addrs["manager"], m.keys["a"], m.addrs["a"])
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(skywireBin, "--config", cfg, "node")
	cmd.Env = append(os.Environ(), "SKYWIRE_SIGNAL_ADDR=", "SKYWIRE_STATE_DIR=")
	startLogged(t, cmd, filepath.Join(m.dir, "metrics-node.log"))
	m.procs["metrics-node"] = cmd

	self := config.DemoKeyPair("e2e-m").Public.String()
	var text string
	var err error
	waitLong(t, "the node's metrics to show its link to a and its registration", func() bool {
		text, err = scrapeText(maddr)
		return err == nil &&
			strings.Contains(text, "skywire_node_links 1\n") &&
			strings.Contains(text, fmt.Sprintf("skywire_node_manager_registered{manager=%q} 1\n", m.keys["manager"]))
	})
	for _, want := range []string{
		fmt.Sprintf("skywire_node_info{key=%q} 1\n", self),
		fmt.Sprintf("skywire_node_link_connections{peer=%q} 1\n", m.keys["a"]),
		"# TYPE skywire_node_link_bytes_total counter\n",
		"process_resident_memory_bytes ",
		"go_goroutines ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
}

// scrapeText gets http://addr/metrics.
func scrapeText(addr string) (string, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return string(b), err
}

// A real `viscript --serve` with [viscript] metrics serves its apps: an
// app that keeps failing under restart = "on-failure" shows its restarts
// and failed exits, a running one is up, and `sd` counts a stopped exit;
// the figures agree with `la`. A metrics address without a host is a
// config error naming the key.
func TestViscriptMetricsEndpoint(t *testing.T) {
	v := newViscript(t, `
[apps.flaky]
path = "/bin/sh"
default_args = ["-c", "sleep 0.5; exit 3"]
daemon = true
restart = "on-failure"
start_secs = "100ms"
`)
	maddr := freePort(t)
	data, err := os.ReadFile(v.config)
	if err != nil {
		t.Fatal(err)
	}
	withMetrics := strings.Replace(string(data), "[viscript]\n", fmt.Sprintf("[viscript]\nmetrics = %q\n", maddr), 1)
	if err := os.WriteFile(v.config, []byte(withMetrics), 0o600); err != nil {
		t.Fatal(err)
	}
	v.startServe()
	rs := v.must("start sleeper; start flaky")
	sleeper, flaky := uint64(rs[0].num("id")), uint64(rs[1].num("id"))

	var text string
	waitLong(t, "flaky's restarts in the metrics", func() bool {
		text, err = scrapeText(maddr)
		return err == nil &&
			sample(text, fmt.Sprintf("skywire_viscript_app_restarts_total{id=\"%d\",name=\"flaky\"}", flaky)) >= 2 &&
			sample(text, "skywire_viscript_exits_total{status=\"failed\"}") >= 2 &&
			sample(text, "skywire_viscript_restarts_total{kind=\"policy\"}") >= 2
	})
	for _, want := range []string{
		fmt.Sprintf("skywire_viscript_app_up{id=\"%d\",name=\"sleeper\"} 1\n", sleeper),
		"# TYPE skywire_viscript_restarts_total counter\n",
		"skywire_viscript_launch_failures_total 0\n",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	if r := v.list()[flaky].Restarts; r < 2 {
		t.Errorf("la shows flaky with %d restarts, the metrics at least 2", r)
	}

	v.must(fmt.Sprintf("sd %d", sleeper))
	waitLong(t, "sleeper's stop in the metrics", func() bool {
		text, err = scrapeText(maddr)
		return err == nil && strings.Contains(text, "skywire_viscript_exits_total{status=\"stopped\"} 1\n") &&
			strings.Contains(text, fmt.Sprintf("skywire_viscript_app_up{id=\"%d\",name=\"sleeper\"} 0\n", sleeper))
	})
	v.must(fmt.Sprintf("sd %d", flaky))

	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("[viscript]\nmetrics = \":9109\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(skywireBin, "config", "check", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "bad.toml:2: viscript.metrics: \":9109\" has no host") {
		t.Errorf("config check of metrics = \":9109\": %v\n%s", err, out)
	}
}

// sample returns the value of the sample named (with its labels) series
// in Prometheus text, or -1 if there is none.
func sample(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				return f
			}
		}
	}
	return -1
}
