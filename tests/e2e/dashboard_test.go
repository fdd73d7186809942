package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestDashboardServe runs `viscript --serve` with [viscript] web: the
// dashboard answers on loopback, starting an app from its API runs a real
// process and stopping it ends the process; served off loopback without
// web_token, viscript refuses to start and names the key.
func TestDashboardServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	v := newViscript(t, "")
	setWeb := func(line string) {
		b, err := os.ReadFile(v.config)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte("[viscript]\n"), []byte("[viscript]\n"+line+"\n"), 1)
		if err := os.WriteFile(v.config, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	off := v.config + ".off"
	b, _ := os.ReadFile(v.config)
	os.WriteFile(off, bytes.Replace(b, []byte("[viscript]\n"), []byte("[viscript]\nweb = \"0.0.0.0:1\"\n"), 1), 0o600)
	setWeb(fmt.Sprintf("web = %q", addr))
	v.startServe()
	base := "http://" + addr
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	waitLong(t, "the dashboard's first sample", func() bool {
		code, body := call("GET", "/api/state", "")
		return code == 200 && strings.Contains(body, `"local"`)
	})
	if code, body := call("GET", "/", ""); code != 200 || !strings.Contains(body, "skywire dashboard") {
		t.Fatalf("page: %d %.200s", code, body)
	}
	code, body := call("POST", "/api/start", `{"name":"sleeper"}`)
	var info struct {
		ID  uint64 `json:"id"`
		Pid int    `json:"pid"`
	}
	if err := json.Unmarshal([]byte(body), &info); code != 200 || err != nil || info.Pid == 0 {
		t.Fatalf("start from the dashboard: %d %s", code, body)
	}
	if !alive(info.Pid) {
		t.Fatalf("the started process %d is not running", info.Pid)
	}
	if code, body := call("POST", "/api/stop", fmt.Sprintf(`{"id":%d}`, info.ID)); code != 200 {
		t.Fatalf("stop from the dashboard: %d %s", code, body)
	}
	waitLong(t, "the stopped process to be gone", func() bool { return !alive(info.Pid) })
	v.stopServe(syscall.SIGTERM)

	cmd := v.cmd("--serve")
	cmd.Args[2] = off // --config
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "viscript.web_token") {
		t.Errorf("served off loopback without a token: %v\n%s", err, out)
	}
}
