package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/viscript/control"
	"github.com/skywire-mesh/skywire/viscript/control/controltest"
	"github.com/skywire-mesh/skywire/viscript/web"
)

func do(t *testing.T, hc *http.Client, method, url, host, origin, ctype, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestGuard: the page and its API refuse a foreign Host (DNS rebinding),
// a cross-origin or non-JSON POST (CSRF), and bad requests, each with a
// clear error; same-origin JSON starts an app.
func TestGuard(t *testing.T) {
	tstest.CheckLeaks(t)
	fake := controltest.New(control.CatalogEntry{Name: "echo"})
	base := serve(t, web.Config{}, simRing(t, 3), web.LocalNodes{Ctrl: fake})
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	tstest.WaitFor(t, "the first sample", func() bool {
		code, _ := do(t, hc, "GET", base+"/api/state", "", "", "", "")
		return code == 200
	})
	tests := []struct {
		name                      string
		method, path              string
		host, origin, ctype, body string
		want                      int
		wantIn                    string
	}{
		{"page", "GET", "/", "", "", "", "", 200, "skywire dashboard"},
		{"script", "GET", "/app.js", "", "", "", "", 200, "EventSource"},
		{"state", "GET", "/api/state", "", "", "", "", 200, `"nodes":[`},
		{"rebinding host", "GET", "/api/state", "evil.example:8000", "", "", "", 403, "host is not this machine"},
		{"rebinding page", "GET", "/", "evil.example", "", "", "", 403, "host is not this machine"},
		{"cross-origin post", "POST", "/api/start", "", "http://evil.example", "application/json", `{"name":"echo"}`, 403, "cross-origin"},
		{"form post", "POST", "/api/start", "", "", "text/plain", `{"name":"echo"}`, 415, "application/json"},
		{"unknown field", "POST", "/api/start", "", "", "application/json", `{"nme":"echo"}`, 400, "unknown field"},
		{"no name", "POST", "/api/start", "", "", "application/json", `{}`, 400, "name the catalog app"},
		{"unknown app", "POST", "/api/start", "", "", "application/json", `{"name":"nope"}`, 404, "catalog"},
		{"bad node", "POST", "/api/stop", "", "", "application/json", `{"node":"pk:zz","id":1}`, 400, "node"},
		{"remote node", "POST", "/api/stop", "", "", "application/json", `{"node":"pk:` + strings.Repeat("ab", 32) + `","id":1}`, 403, "does not control"},
		{"no such app", "POST", "/api/stop", "", "", "application/json", `{"id":99}`, 404, "no app"},
		{"logs bad id", "GET", "/api/logs?id=x", "", "", "", "", 400, "not an app ID"},
		{"route bad key", "GET", "/api/route?to=x", "", "", "", "", 400, "to:"},
		{"same-origin start", "POST", "/api/start", "", base, "application/json", `{"name":"echo"}`, 200, `"name":"echo"`},
		{"not found", "GET", "/nope", "", "", "", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, hc, tt.method, base+tt.path, tt.host, tt.origin, tt.ctype, tt.body)
			if code != tt.want || !strings.Contains(body, tt.wantIn) {
				t.Errorf("%d %q, want %d containing %q", code, body, tt.want, tt.wantIn)
			}
		})
	}
	if ls, _ := fake.List(context.Background()); len(ls) != 1 || ls[0].Name != "echo" {
		t.Errorf("after the requests, apps = %+v; want the one started same-origin", ls)
	}
}

// TestLogin: with a token, the API answers 401 until a login with the
// right token sets the session cookie; a wrong token is refused, and
// repeated attempts are rate limited. Off loopback any Host is accepted
// (the login is the protection there).
func TestLogin(t *testing.T) {
	tstest.CheckLeaks(t)
	const token = "correct horse battery staple"
	base := serve(t, web.Config{Token: token}, simRing(t, 2), web.LocalNodes{Ctrl: controltest.New()})
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	defer hc.CloseIdleConnections()
	js := "application/json"
	if code, body := do(t, hc, "GET", base+"/api/session", "", "", "", ""); code != 200 || body != `{"logged_in":false,"login_required":true}`+"\n" {
		t.Errorf("session before login: %d %s", code, body)
	}
	if code, body := do(t, hc, "GET", base+"/api/state", "", "", "", ""); code != 401 || !strings.Contains(body, "login required") {
		t.Errorf("state before login: %d %s", code, body)
	}
	if code, _ := do(t, hc, "GET", base+"/", "", "", "", ""); code != 200 {
		t.Errorf("the page itself (the login form) answers %d", code)
	}
	if code, body := do(t, hc, "POST", base+"/api/login", "", "", js, `{"token":"wrong token, long enough"}`); code != 401 || !strings.Contains(body, "wrong token") {
		t.Errorf("wrong token: %d %s", code, body)
	}
	if code, body := do(t, hc, "POST", base+"/api/login", "", "", js, `{"token":"`+token+`"}`); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	tstest.WaitFor(t, "state after login", func() bool {
		code, body := do(t, hc, "GET", base+"/api/state", "", "", "", "")
		if code != 200 && code != 503 {
			t.Fatalf("state after login: %d %s", code, body)
		}
		return code == 200
	})
	// Served beyond loopback, any Host name is fine with the login.
	u, _ := url.Parse(base)
	req, _ := http.NewRequest("GET", base+"/api/state", nil)
	req.Host = "dashboard.example:8000"
	for _, c := range jar.Cookies(u) {
		req.AddCookie(c)
	}
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("state with another Host name: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	http.DefaultClient.CloseIdleConnections()
	// Another client without the cookie: refused; and guessing is limited.
	other := &http.Client{}
	defer other.CloseIdleConnections()
	if code, _ := do(t, other, "GET", base+"/api/state", "", "", "", ""); code != 401 {
		t.Errorf("state without the cookie: %d", code)
	}
	limited := false
	for i := 0; i < 20 && !limited; i++ {
		code, _ := do(t, other, "POST", base+"/api/login", "", "", js, `{"token":"guess guess guess guess"}`)
		limited = code == http.StatusTooManyRequests
	}
	if !limited {
		t.Error("20 wrong tokens in a row were never rate limited")
	}
}

// TestLogout: each login gets its own random session; Log out ends it on
// the server, so a copy of its cookie stops working and its open event
// stream ends, while another login's session goes on.
func TestLogout(t *testing.T) {
	tstest.CheckLeaks(t)
	const token = "correct horse battery staple"
	base := serve(t, web.Config{Token: token}, simRing(t, 2), web.LocalNodes{Ctrl: controltest.New()})
	u, _ := url.Parse(base)
	js := "application/json"
	login := func() (*http.Client, *http.Cookie) {
		t.Helper()
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Jar: jar}
		t.Cleanup(hc.CloseIdleConnections)
		if code, body := do(t, hc, "POST", base+"/api/login", "", "", js, `{"token":"`+token+`"}`); code != 200 {
			t.Fatalf("login: %d %s", code, body)
		}
		cs := jar.Cookies(u)
		if len(cs) != 1 {
			t.Fatalf("login set cookies %v, want one", cs)
		}
		return hc, cs[0]
	}
	withCookie := func(c *http.Cookie) *http.Client {
		jar, _ := cookiejar.New(nil)
		jar.SetCookies(u, []*http.Cookie{{Name: c.Name, Value: c.Value}})
		hc := &http.Client{Jar: jar}
		t.Cleanup(hc.CloseIdleConnections)
		return hc
	}
	a, ac := login()
	b, bc := login()
	if ac.Value == bc.Value {
		t.Fatal("two logins got the same session cookie")
	}
	stolen := withCookie(ac)
	tstest.WaitFor(t, "state with the copied cookie", func() bool {
		code, _ := do(t, stolen, "GET", base+"/api/state", "", "", "", "")
		return code == 200
	})
	// An event stream of session a, open across the logout.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/events", nil)
	resp, err := stolen.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events: %v %v", resp, err)
	}
	streamEnded := make(chan struct{})
	go func() {
		defer close(streamEnded)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}()

	if code, body := do(t, a, "POST", base+"/api/logout", "", "", js, `{}`); code != 200 {
		t.Fatalf("logout: %d %s", code, body)
	}
	if cs := a.Jar.Cookies(u); len(cs) != 0 {
		t.Errorf("after logout the browser still has %v", cs)
	}
	for name, hc := range map[string]*http.Client{"the logged-out client": a, "a copy of its cookie": stolen} {
		if code, body := do(t, hc, "GET", base+"/api/state", "", "", "", ""); code != 401 {
			t.Errorf("%s after logout: %d %s, want 401", name, code, body)
		}
		if code, body := do(t, hc, "GET", base+"/api/session", "", "", "", ""); body != `{"logged_in":false,"login_required":true}`+"\n" {
			t.Errorf("%s: session after logout: %d %s", name, code, body)
		}
	}
	select {
	case <-streamEnded:
	case <-time.After(tstest.Scaled(tstest.WaitTimeout)):
		t.Error("the logged-out session's event stream is still open")
	}
	if code, body := do(t, b, "GET", base+"/api/state", "", "", "", ""); code != 200 {
		t.Errorf("the other login after a's logout: %d %s", code, body)
	}
	// Logging out twice, or without a session, is harmless.
	if code, _ := do(t, a, "POST", base+"/api/logout", "", "", js, `{}`); code != 200 {
		t.Errorf("second logout: %d", code)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  web.Config
		want string
	}{
		{web.Config{Addr: "127.0.0.1:8000"}, ""},
		{web.Config{Addr: "[::1]:8000"}, ""},
		{web.Config{Addr: "localhost:8000"}, ""},
		{web.Config{Addr: "0.0.0.0:8000"}, "web_token: required"},
		{web.Config{Addr: ":8000"}, "web_token: required"},
		{web.Config{Addr: "192.0.2.1:8000", Token: "0123456789abcdef"}, ""},
		{web.Config{Addr: "192.0.2.1:8000", Token: "short"}, "at least 16"},
		{web.Config{Addr: "nonsense"}, "not HOST:PORT"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

// TestStream: the event stream's first event has the whole history of
// every chart; the next ones the newest point; a sampler error shows as
// the mesh error while the apps still list.
func TestStream(t *testing.T) {
	tstest.CheckLeaks(t)
	sim := simRing(t, 4)
	fake := controltest.New(control.CatalogEntry{Name: "a"})
	fake.AddApp(control.AppInfo{Name: "a", State: control.StateRunning, Pid: 4242}, "")
	base := serve(t, web.Config{History: 5}, sim, web.LocalNodes{Ctrl: fake})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	defer http.DefaultClient.CloseIdleConnections()
	events := make(chan map[string]json.RawMessage, 100)
	go func() {
		defer close(events)
		dec := newSSE(resp.Body)
		for {
			data, err := dec()
			if err != nil {
				return
			}
			var m map[string]json.RawMessage
			if json.Unmarshal(data, &m) == nil {
				events <- m
			}
		}
	}()
	var n int
	var bytesIn uint64
	deadline := time.After(tstest.Scaled(time.Minute))
	for n < 12 {
		sim.update(func(v *web.MeshView) { bytesIn += 1000; v.Links[0].BytesIn = bytesIn })
		select {
		case m, ok := <-events:
			if !ok {
				t.Fatal("stream ended")
			}
			n++
			if n == 1 && m["nodes"] == nil {
				t.Errorf("first event without nodes: %s", m)
			}
			if pts := m["points"]; n > 3 && len(pts) > 0 && !strings.Contains(string(pts), "link:") {
				t.Errorf("points without the link's chart: %s", pts)
			}
			if n == 8 {
				sim.update(func(v *web.MeshView) {}) // the ring (5) is full by now
				sim.mu.Lock()
				sim.err = errors.New("node: not running")
				sim.mu.Unlock()
			}
			if n == 12 {
				if !strings.Contains(string(m["mesh_error"]), "not running") || !strings.Contains(string(m["apps"]), `"name":"a"`) {
					t.Errorf("with the node down: mesh_error %s, apps %s", m["mesh_error"], m["apps"])
				}
			}
		case <-deadline:
			t.Fatalf("only %d events", n)
		}
	}
	// A new stream starts with the history: at most 5 points per chart.
	code, body := do(t, http.DefaultClient, "GET", base+"/api/state", "", "", "", "")
	var st struct {
		Series map[string][]json.RawMessage `json:"series"`
	}
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("state: %d %v", code, err)
	}
	if len(st.Series) == 0 {
		t.Fatal("no series in the state")
	}
	for name, pts := range st.Series {
		if len(pts) > 5 {
			t.Errorf("series %s keeps %d points, want at most 5", name, len(pts))
		}
	}
	cancel()
}

// newSSE returns a reader of the data lines of server-sent events.
func newSSE(r io.Reader) func() ([]byte, error) {
	buf := make([]byte, 0, 1<<16)
	chunk := make([]byte, 1<<16)
	return func() ([]byte, error) {
		for {
			if i := strings.Index(string(buf), "\n\n"); i >= 0 {
				ev := string(buf[:i])
				buf = append(buf[:0], buf[i+2:]...)
				for _, line := range strings.Split(ev, "\n") {
					if d, ok := strings.CutPrefix(line, "data: "); ok {
						return []byte(d), nil
					}
				}
				continue
			}
			n, err := r.Read(chunk)
			buf = append(buf, chunk[:n]...)
			if err != nil {
				return nil, err
			}
		}
	}
}
