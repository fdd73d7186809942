package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/skywire-mesh/skywire/viscript/control"
	"github.com/skywire-mesh/skywire/viscript/control/controltest"
	"github.com/skywire-mesh/skywire/viscript/web"
)

// FuzzRequests sends any body to the JSON endpoints (start, stop,
// restart, login) of a dashboard without a login and of one with a login
// the request does not have: each is answered with a status, never a
// panic, and the second never runs an action.
func FuzzRequests(f *testing.F) {
	for _, s := range []string{`{"name":"a"}`, `{"id":1}`, `{"node":"local","id":1}`, `{"token":"x"}`, `{"name":1}`, `{`, `null`, `[]`, `{"node":"pk:00"}`, strings.Repeat("[", 5000)} {
		f.Add(uint8(0), s)
		f.Add(uint8(3), s)
	}
	fake := controltest.New(control.CatalogEntry{Name: "a"})
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	var hs [2]http.Handler
	for i, token := range []string{"", "0123456789abcdef"} {
		srv, err := web.New(web.Config{Addr: "127.0.0.1:0", Token: token}, simRing(f, 2), web.LocalNodes{Ctrl: fake}, nil)
		if err != nil {
			f.Fatal(err)
		}
		hs[i] = srv.Handler(ctx)
	}
	paths := []string{"/api/start", "/api/stop", "/api/restart", "/api/login"}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		for i, h := range hs {
			req := httptest.NewRequest("POST", paths[int(which)%len(paths)], strings.NewReader(body))
			req.Host = "127.0.0.1:8000"
			req.Header.Set("Content-Type", "application/json")
			req.AddCookie(&http.Cookie{Name: "skywire_dashboard", Value: "wrong"})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code < 200 || rec.Code >= 600 {
				t.Fatalf("status %d", rec.Code)
			}
			if i == 1 && rec.Code == 200 && req.URL.Path != "/api/login" {
				t.Fatalf("an action answered 200 without a login: %s", rec.Body)
			}
		}
	})
}
