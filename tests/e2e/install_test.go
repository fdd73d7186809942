package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestInstallScript runs install.sh against a release served by a local
// HTTP server: it must install the binary and the role links when the
// checksum matches, and install nothing when it does not.
func TestInstallScript(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("the test serves the binary it built, which is for %s/%s; install.sh would ask for its own platform", runtime.GOOS, runtime.GOARCH)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		if _, err := exec.LookPath("wget"); err != nil {
			t.Skip("install.sh needs curl or wget; scripts/deps.sh installs curl")
		}
	}
	bin, err := os.ReadFile(skywireBin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	for _, tt := range []struct {
		name    string
		sums    string
		wantErr string
	}{
		{"good checksum", hex.EncodeToString(sum[:]), ""},
		{"bad checksum", strings.Repeat("0", 64), "checksum mismatch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("/rel/skywire-linux-amd64", func(w http.ResponseWriter, r *http.Request) { w.Write(bin) })
			mux.HandleFunc("/rel/SHA256SUMS", func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "%s  skywire-linux-amd64\n%s  skywire-linux-arm64\n", tt.sums, strings.Repeat("1", 64))
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			dir := t.TempDir()
			cmd := exec.Command("sh", "../../install.sh")
			cmd.Env = append(os.Environ(), "SKYWIRE_BASE_URL="+srv.URL+"/rel", "SKYWIRE_BIN_DIR="+dir)
			out, err := cmd.CombinedOutput()
			installed := filepath.Join(dir, "skywire")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(string(out), tt.wantErr) {
					t.Fatalf("install.sh: err %v, output %s; want failure with %q", err, out, tt.wantErr)
				}
				if _, err := os.Stat(installed); err == nil {
					t.Fatal("a binary with a bad checksum was installed")
				}
				return
			}
			if err != nil {
				t.Fatalf("install.sh: %v\n%s", err, out)
			}
			v, err := exec.Command(installed, "version").Output()
			if err != nil || !strings.HasPrefix(string(v), "skywire ") {
				t.Fatalf("installed binary: %v %q", err, v)
			}
			for _, role := range []string{"viscript", "node", "manager"} {
				link := filepath.Join(dir, "skywire-"+role)
				if target, err := os.Readlink(link); err != nil || target != installed {
					t.Errorf("link %s -> %q (%v), want -> %s", link, target, err, installed)
				}
			}
			// A role link runs the role.
			if out, err := exec.Command(filepath.Join(dir, "skywire-node"), "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "mesh node") {
				t.Errorf("skywire-node --help: %v\n%s", err, out)
			}
		})
	}
}
