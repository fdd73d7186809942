package messenger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// Paths of Debian's chromium and chromium-driver packages.
const (
	chromiumPath     = "/usr/bin/chromium"
	chromedriverPath = "/usr/bin/chromedriver"
)

// webdriver is a minimal W3C WebDriver client for chromedriver: plain
// JSON over HTTP.
type webdriver struct {
	tb      testing.TB
	hc      *http.Client
	base    string // http://127.0.0.1:PORT
	session string
}

const elementKey = "element-6066-11e4-a52e-4f735466cecf"

func (w *webdriver) call(method, path string, body any) (json.RawMessage, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, w.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.hc.Do(req)
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

func (w *webdriver) must(method, path string, body any) json.RawMessage {
	w.tb.Helper()
	v, err := w.call(method, path, body)
	if err != nil {
		w.tb.Fatal(err)
	}
	return v
}

func (w *webdriver) element(css string) string {
	w.tb.Helper()
	v := w.must("POST", "/session/"+w.session+"/element", map[string]string{"using": "css selector", "value": css})
	var el map[string]string
	json.Unmarshal(v, &el)
	return el[elementKey]
}

func (w *webdriver) script(js string) json.RawMessage {
	w.tb.Helper()
	return w.must("POST", "/session/"+w.session+"/execute/sync", map[string]any{"script": js, "args": []any{}})
}

// waitScript polls js (returning a boolean) in the page; the browser is
// another process with nothing to wait on but its answers.
func (w *webdriver) waitScript(what, js string) {
	w.tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for string(w.script(js)) != "true" {
		if time.Now().After(deadline) {
			w.tb.Fatalf("timed out waiting in the browser for %s; page text:\n%s", what, w.script("return document.body.innerText"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(tb testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startBrowser starts chromedriver and a headless Chromium session.
func startBrowser(t *testing.T) *webdriver {
	for _, p := range []string{chromiumPath, chromedriverPath} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("browser test skipped: %s not found (install the Debian packages chromium and chromium-driver)", p)
		}
	}
	port := freePort(t)
	cmd := exec.Command(chromedriverPath, "--port="+strconv.Itoa(port))
	var logs syncBuffer
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
	w := &webdriver{tb: t, hc: &http.Client{Timeout: 60 * time.Second}, base: "http://127.0.0.1:" + strconv.Itoa(port)}
	t.Cleanup(w.hc.CloseIdleConnections)
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := w.call("GET", "/status", nil)
		if err == nil && strings.Contains(string(v), `"ready":true`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver not ready: %v %s", err, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"goog:chromeOptions": map[string]any{
			"binary": chromiumPath,
			"args": []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
				"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
				"--user-data-dir=" + tstest.SocketDir(t)},
		},
	}}}
	v := w.must("POST", "/session", caps)
	var s struct {
		SessionID string `json:"sessionId"`
	}
	json.Unmarshal(v, &s)
	if s.SessionID == "" {
		t.Fatalf("no session: %s", v)
	}
	w.session = s.SessionID
	t.Cleanup(func() { w.call("DELETE", "/session/"+w.session, nil) })
	return w
}

// TestBrowser sends a message from the chat page in headless Chromium and
// sees the reply arrive live, with the delivery tick of the sent message.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	tstest.CheckLeaks(t)
	w := startBrowser(t)
	n := fakemesh.New()
	na, nb := newNode(t, n, "a"), newNode(t, n, "b")
	acfg := testConfig(t, na)
	base := withWeb(t, &acfg)
	startDaemon(t, "a", acfg)
	b := startDaemon(t, "b", testConfig(t, nb))
	wb := watch(t, b.cfg)
	ctx := ctxT(t)

	w.must("POST", "/session/"+w.session+"/url", map[string]string{"url": base + "/"})
	w.waitScript("the live event stream", `return document.body.dataset.live === "1"`)
	w.must("POST", "/session/"+w.session+"/element/"+w.element("#to")+"/value", map[string]string{"text": nb.key().String()})
	w.must("POST", "/session/"+w.session+"/element/"+w.element("#open")+"/click", map[string]any{})
	w.waitScript("the conversation to open", `return !document.getElementById("text").disabled`)
	w.must("POST", "/session/"+w.session+"/element/"+w.element("#text")+"/value", map[string]string{"text": "hello from the browser"})
	w.must("POST", "/session/"+w.session+"/element/"+w.element("#send")+"/click", map[string]any{})

	wb.waitMessages(t, na.key().String(), "b receives the page's message", func(ms []Message) bool {
		return count(ms, "in", "hello from the browser", "") == 1
	})
	w.waitScript("the delivery tick", `const t = document.querySelector('.msg.out .tick'); return t !== null && t.textContent === "✓✓"`)
	if _, err := Send(ctx, b.cfg, na.key().String(), "reply from b <b>not bold</b>"); err != nil {
		t.Fatal(err)
	}
	w.waitScript("the reply", `return [...document.querySelectorAll('.msg.in .text')].some(e => e.textContent === "reply from b <b>not bold</b>")`)
	if got := string(w.script(`return document.querySelectorAll('#messages b').length`)); got != "0" {
		t.Errorf("message text was rendered as HTML (%s <b> elements)", got)
	}
	if got := string(w.script(`return document.querySelectorAll('#convs li').length`)); got != "1" {
		t.Errorf("%s conversations listed, want 1", got)
	}
}
