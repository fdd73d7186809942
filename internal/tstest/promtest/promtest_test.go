package promtest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

const text = `# TYPE apps gauge
apps{state="running"} 2
apps{state="exited"} 5
# TYPE bytes_total counter
bytes_total{peer="a",direction="in"} 10
bytes_total{peer="a",direction="out"} 20
`

// serve answers /metrics with body and status on a loopback port (as
// httptest does) until the test ends, and returns its address.
func serve(t *testing.T, status int, body string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(func() { srv.Close(); http.DefaultClient.CloseIdleConnections() })
	return srv.Listener.Addr().String()
}

func TestScrapeAndValue(t *testing.T) {
	tstest.CheckLeaks(t)
	fams, err := Scrape(serve(t, http.StatusOK, text))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
		ok     bool
	}{
		{"apps", []string{"state", "exited"}, 5, true},
		{"apps", nil, 2, true}, // the first sample
		{"bytes_total", []string{"direction", "out"}, 20, true},
		{"bytes_total", []string{"peer", "a", "direction", "in"}, 10, true},
		{"bytes_total", []string{"peer", ""}, 10, true}, // any value of a label the sample has
		{"bytes_total", []string{"peer", "b"}, 0, false},
		{"bytes_total", []string{"app", ""}, 0, false}, // a label no sample has
		{"missing", nil, 0, false},
	} {
		if v, ok := Value(fams, c.name, c.labels...); v != c.want || ok != c.ok {
			t.Errorf("Value(%s, %q) = %v, %v; want %v, %v", c.name, c.labels, v, ok, c.want, c.ok)
		}
	}
}

func TestScrapeErrors(t *testing.T) {
	tstest.CheckLeaks(t)
	if _, err := Scrape(serve(t, http.StatusUnauthorized, "token required")); err == nil || !strings.Contains(err.Error(), "token required") {
		t.Errorf("a 401: %v, want an error with the body", err)
	}
	if _, err := Scrape(serve(t, http.StatusOK, "apps{ 1\n")); err == nil || !strings.Contains(err.Error(), "parse") {
		t.Errorf("bad text: %v, want a parse error", err)
	}
}
