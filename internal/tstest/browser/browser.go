// Package browser drives a real headless Chromium through chromedriver
// (W3C WebDriver: plain JSON over HTTP) for the tests of skywire's web
// pages: open a page, wait for a condition in it, click, type, resize,
// take screenshots (saved under the test's temp dir and copied to
// $SKYWIRE_TEST_ARTIFACTS and $DASHBOARD_SHOTS when set) and read the
// browser console.
//
// Start is a browser test's first call: it skips the test, saying why,
// in -short mode and when Debian's chromium and chromium-driver packages
// are not installed, and checks it for leaked goroutines.
package browser

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// Paths of Debian's chromium and chromium-driver packages.
const (
	ChromiumPath     = "/usr/bin/chromium"
	ChromedriverPath = "/usr/bin/chromedriver"
)

// ArtifactsEnv names a directory screenshots are copied to (CI keeps it).
const ArtifactsEnv = "SKYWIRE_TEST_ARTIFACTS"

// ReviewEnv names a directory screenshots are also copied to, all in one
// folder as TEST-NAME.png, for a person to look through.
const ReviewEnv = "DASHBOARD_SHOTS"

const elementKey = "element-6066-11e4-a52e-4f735466cecf"

// waitLimit bounds one wait in the browser: generous (and stretched by
// MESHTEST_TIME_SCALE), the machine may be loaded; the verdict never
// depends on it.
var waitLimit = tstest.Scaled(2 * time.Minute)

// Driver is one browser session.
type Driver struct {
	tb      testing.TB
	hc      *http.Client
	base    string // http://127.0.0.1:PORT
	session string
	shots   string // where screenshots go
}

func freePort(tb testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start starts chromedriver and a headless Chromium session of width x
// height CSS pixels; both stop when the test ends. Call it first in the
// test: it skips the test in -short mode or without chromium, and checks
// it for leaked goroutines (tstest.CheckLeaks) after all its cleanups.
func Start(t *testing.T, width, height int) *Driver {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	tstest.CheckLeaks(t)
	for _, p := range []string{ChromiumPath, ChromedriverPath} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("browser test skipped: %s not found (install the Debian packages chromium and chromium-driver)", p)
		}
	}
	dir := t.TempDir()
	port := freePort(t)
	cmd := exec.Command(ChromedriverPath, "--port="+strconv.Itoa(port))
	var logs tstest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromedriver: %v", err)
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-waited
		if t.Failed() {
			t.Logf("chromedriver output:\n%s", logs.String())
		}
	})
	d := &Driver{tb: t, hc: &http.Client{Timeout: 2 * waitLimit}, base: "http://127.0.0.1:" + strconv.Itoa(port), shots: filepath.Join(dir, "screenshots")}
	t.Cleanup(d.hc.CloseIdleConnections)
	deadline := time.Now().Add(waitLimit)
	for {
		v, err := d.call("GET", "/status", nil)
		if err == nil && strings.Contains(string(v), `"ready":true`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver not ready: %v %s", err, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"goog:loggingPrefs": map[string]string{"browser": "ALL"},
		"goog:chromeOptions": map[string]any{
			"binary": ChromiumPath,
			"args": []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
				"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
				"--hide-scrollbars", "--force-device-scale-factor=1",
				fmt.Sprintf("--window-size=%d,%d", width, height),
				"--user-data-dir=" + filepath.Join(dir, "profile")},
		},
	}}}
	v := d.Must("POST", "/session", caps)
	var s struct {
		SessionID string `json:"sessionId"`
	}
	json.Unmarshal(v, &s)
	if s.SessionID == "" {
		t.Fatalf("no session: %s", v)
	}
	d.session = s.SessionID
	t.Cleanup(func() { d.call("DELETE", "/session/"+d.session, nil) })
	return d
}

func (d *Driver) call(method, path string, body any) (json.RawMessage, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, d.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("%s %s: %s: %w", method, path, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, out.Value)
	}
	return out.Value, nil
}

// Must sends a WebDriver command (path relative to the server, e.g.
// "/session") and fails the test on an error.
func (d *Driver) Must(method, path string, body any) json.RawMessage {
	d.tb.Helper()
	v, err := d.call(method, path, body)
	if err != nil {
		d.tb.Fatal(err)
	}
	return v
}

// Session sends a command of this session ("/url", "/element", …).
func (d *Driver) Session(method, path string, body any) json.RawMessage {
	d.tb.Helper()
	return d.Must(method, "/session/"+d.session+path, body)
}

// Open navigates to url.
func (d *Driver) Open(url string) {
	d.tb.Helper()
	d.Session("POST", "/url", map[string]string{"url": url})
}

// Element finds the first element matching css.
func (d *Driver) Element(css string) string {
	d.tb.Helper()
	v := d.Session("POST", "/element", map[string]string{"using": "css selector", "value": css})
	var el map[string]string
	json.Unmarshal(v, &el)
	return el[elementKey]
}

// Click clicks the first element matching css.
func (d *Driver) Click(css string) {
	d.tb.Helper()
	d.Session("POST", "/element/"+d.Element(css)+"/click", map[string]any{})
}

// Type types text into the first element matching css.
func (d *Driver) Type(css, text string) {
	d.tb.Helper()
	d.Session("POST", "/element/"+d.Element(css)+"/value", map[string]string{"text": text})
}

// Script runs js (a function body; use return) in the page.
func (d *Driver) Script(js string, args ...any) json.RawMessage {
	d.tb.Helper()
	if args == nil {
		args = []any{}
	}
	return d.Session("POST", "/execute/sync", map[string]any{"script": js, "args": args})
}

// Wait polls js (returning a boolean) in the page until it is true; the
// browser is another process with nothing to wait on but its answers.
func (d *Driver) Wait(what, js string, args ...any) {
	d.tb.Helper()
	deadline := time.Now().Add(waitLimit)
	for string(d.Script(js, args...)) != "true" {
		if time.Now().After(deadline) {
			d.tb.Fatalf("timed out waiting in the browser for %s; page text:\n%s", what, d.Script("return document.body.innerText"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Resize sets the window to width x height CSS pixels and waits until
// the page's viewport has that width.
func (d *Driver) Resize(width, height int) {
	d.tb.Helper()
	d.Session("POST", "/window/rect", map[string]int{"width": width, "height": height})
	// The window includes no chrome in headless mode, but ask the page.
	d.Wait(fmt.Sprintf("the viewport to be %d px wide", width), `return window.innerWidth === arguments[0]`, width)
}

// NoSidewaysScroll fails the test if the page is wider than its viewport.
func (d *Driver) NoSidewaysScroll(what string) {
	d.tb.Helper()
	v := d.Script(`return [document.documentElement.scrollWidth, document.documentElement.clientWidth]`)
	var w [2]int
	json.Unmarshal(v, &w)
	if w[0] > w[1] {
		d.tb.Errorf("%s: the page scrolls sideways: %d px of content in a %d px viewport", what, w[0], w[1])
	}
}

// Screenshot saves the page as NAME.png under the test's temp dir, and
// copies it to $SKYWIRE_TEST_ARTIFACTS/TEST/ and as TEST-NAME.png to
// $DASHBOARD_SHOTS when those are set; it returns the path.
func (d *Driver) Screenshot(name string) string {
	d.tb.Helper()
	v := d.Session("GET", "/screenshot", nil)
	var b64 string
	if err := json.Unmarshal(v, &b64); err != nil {
		d.tb.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		d.tb.Fatal(err)
	}
	if err := os.MkdirAll(d.shots, 0o755); err != nil {
		d.tb.Fatal(err)
	}
	path := filepath.Join(d.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		d.tb.Fatal(err)
	}
	if dir := os.Getenv(ArtifactsEnv); dir != "" {
		dst := filepath.Join(dir, strings.ReplaceAll(d.tb.Name(), "/", "_"))
		if err := os.MkdirAll(dst, 0o755); err != nil {
			d.tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name+".png"), png, 0o644); err != nil {
			d.tb.Fatal(err)
		}
	}
	if dir := os.Getenv(ReviewEnv); dir != "" {
		os.WriteFile(filepath.Join(dir, d.tb.Name()+"-"+name+".png"), png, 0o644) // best effort, as a copy for review
	}
	d.tb.Logf("screenshot %s", path)
	return path
}

// LogEntry is one message of the browser console.
type LogEntry struct {
	Level   string `json:"level"`
	Message string `json:"message"`
}

// Console returns the console messages since the last call.
func (d *Driver) Console() []LogEntry {
	d.tb.Helper()
	v := d.Session("POST", "/se/log", map[string]string{"type": "browser"})
	var out []LogEntry
	json.Unmarshal(v, &out)
	return out
}

// NoConsoleErrors fails the test for every error (SEVERE) in the console
// since the last call: a script exception, a failed resource load.
func (d *Driver) NoConsoleErrors(what string) {
	d.tb.Helper()
	for _, e := range d.Console() {
		if e.Level == "SEVERE" {
			d.tb.Errorf("%s: browser console error: %s", what, e.Message)
		}
	}
}
