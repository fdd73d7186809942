package cli

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/promtest"
)

// metricValue scrapes http://addr/metrics, parses it with Prometheus's
// text parser and returns the value of the series name{labels}, labels
// given as name, value pairs (false when it is not there or the scrape
// failed).
func metricValue(addr, name string, labels ...string) (float64, bool) {
	fams, err := promtest.Scrape(addr)
	if err != nil {
		return 0, false
	}
	return promtest.Value(fams, name, labels...)
}

// An interactive viscript that runs the launcher itself (no viscript
// --serve for its state directory) serves [viscript] metrics while it
// lives: the same metrics, of its own supervisor; an address it cannot
// listen on is refused with the key named.
func TestShellServesViscriptMetrics(t *testing.T) {
	dir := t.TempDir()
	state := tstest.SocketDir(t)
	cfg := filepath.Join(dir, "skywire.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`[viscript]
state_dir = %q
metrics = "127.0.0.1:0"

[apps.sleeper]
path = "/bin/sleep"
default_args = ["600"]
`, state)), 0o600); err != nil {
		t.Fatal(err)
	}
	embedded, err := os.ReadFile("../../skywire.toml")
	if err != nil {
		t.Fatal(err)
	}
	stdin, commands := io.Pipe()
	var out, errb tstest.SyncBuffer
	code := make(chan int, 1)
	go func() {
		code <- Main([]string{"skywire", "--config", cfg, "viscript"}, embedded, stdin, &out, &errb)
	}()
	defer func() {
		commands.Close()
		if c := <-code; c != 0 {
			t.Errorf("viscript exited %d: %s", c, errb.String())
		}
	}()
	// Port 0: the address is the one the log names.
	served := regexp.MustCompile(`msg="metrics served" .*addr=http://([0-9.]+:[0-9]+)/metrics`)
	var addr string
	tstest.WaitFor(t, "the shell's metrics address in viscript.log", func() bool {
		b, _ := os.ReadFile(filepath.Join(state, "viscript.log"))
		if m := served.FindSubmatch(b); m != nil {
			addr = string(m[1])
		}
		return addr != ""
	})
	if v, ok := metricValue(addr, "skywire_viscript_apps", "state", "running"); !ok || v != 0 {
		t.Fatalf("skywire_viscript_apps{state=running} = %v (%v) before any start, want 0", v, ok)
	}
	fmt.Fprintln(commands, "start sleeper")
	tstest.WaitFor(t, "the started app up in the shell's metrics", func() bool {
		v, ok := metricValue(addr, "skywire_viscript_app_up", "id", "1", "name", "sleeper")
		return ok && v == 1
	})
	if v, _ := metricValue(addr, "skywire_viscript_launches_total"); v != 1 {
		t.Errorf("launches_total %v, want 1", v)
	}
	fmt.Fprintln(commands, "sd 1")
	tstest.WaitFor(t, "the stop in the shell's metrics", func() bool {
		v, ok := metricValue(addr, "skywire_viscript_exits_total", "status", "stopped")
		return ok && v == 1
	})
	commands.Close()
	if c := <-code; c != 0 {
		t.Fatalf("viscript exited %d: %s", c, errb.String())
	}
	code <- 0
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		t.Error("the metrics are still served after the shell quit")
	}

	// An address in use: a clear refusal naming the key.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "127.0.0.1:0", busy.Addr().String(), 1)), 0o600)
	var sout, serr bytes.Buffer
	c := Main([]string{"skywire", "--config", cfg, "viscript"}, embedded, strings.NewReader("la\n"), &sout, &serr)
	if c == 0 || !strings.Contains(serr.String(), "viscript.metrics") || !strings.Contains(serr.String(), busy.Addr().String()) {
		t.Errorf("a shell whose metrics address is taken: exit %d %q, want a refusal naming viscript.metrics and the address", c, serr.String())
	}
	// A one-shot -c serves none (nobody could scrape them): the taken
	// address does not stop it.
	if c, _, stderr := run(t, "skywire", "--config", cfg, "viscript", "-c", "la"); c != 0 {
		t.Errorf("viscript -c la with the metrics address taken: exit %d %q", c, stderr)
	}
}
