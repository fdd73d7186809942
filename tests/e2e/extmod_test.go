package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExternalModule builds a program in a module of its own
// (testdata/extapp, which requires this module through a replace) that
// imports appnet and keys, and runs it against the real mesh: it registers
// on node e, dials itself from node a across three relays and checks the
// echo. A public API that leaked an internal type would not compile there.
func TestExternalModule(t *testing.T) {
	m := newMesh(t)
	m.waitRoute("a", "e", 4)

	bin := filepath.Join(t.TempDir(), "extapp")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "testdata/extapp"
	// -mod=readonly: the test never edits the module's files; a stale
	// go.sum is an error to fix, not something to rewrite here.
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the external module failed (if go.sum is stale: cd tests/e2e/testdata/extapp && go mod tidy): %v\n%s", err, out)
	}

	sock := func(n string) string { return filepath.Join(m.state, "node-"+n+".sock") }
	out, err := exec.Command(bin, sock("e"), sock("a"), "9100").CombinedOutput()
	if err != nil {
		t.Fatalf("extapp: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "echoed 30000 bytes") {
		t.Fatalf("extapp output: %s", out)
	}
}
