package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
