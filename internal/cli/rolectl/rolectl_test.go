package rolectl

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// TestOrBadRequest serves handlers replying with OrBadRequest and checks
// what Get sees: the value when the call succeeded, its error's text when
// it failed, and that a failure is a 400 (the caller's fault), not a 500
// like a plain handler error.
func TestOrBadRequest(t *testing.T) {
	tstest.CheckLeaks(t)
	errRefused := errors.New("refused: not a member")
	ok := func() (map[string]int, error) { return map[string]int{"n": 3}, nil }
	fail := func() (map[string]int, error) { return nil, errRefused }
	v, err := OrBadRequest(fail())
	var br BadRequest
	if v != nil || !errors.As(err, &br) || !errors.Is(err, errRefused) {
		t.Fatalf("OrBadRequest(nil, err) = %v, %v; want nil and a BadRequest wrapping err", v, err)
	}

	sock := filepath.Join(tstest.SocketDir(t), "role.ctl")
	srv, err := Listen(sock, map[string]Handler{
		"/ok":    func(r *http.Request) (any, error) { return OrBadRequest(ok()) },
		"/fail":  func(r *http.Request) (any, error) { return OrBadRequest(fail()) },
		"/plain": func(r *http.Request) (any, error) { return nil, errRefused },
	}, tstest.Logger(t, "rolectl"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()

	got, err := GetAs[map[string]int](ctx, sock, "/ok")
	if err != nil || got["n"] != 3 {
		t.Fatalf("/ok: %v, %v; want map[n:3]", got, err)
	}
	if _, err := GetAs[map[string]int](ctx, sock, "/fail"); err == nil || err.Error() != errRefused.Error() {
		t.Fatalf("/fail: err = %v, want %q", err, errRefused)
	}
	for path, want := range map[string]int{"/fail": http.StatusBadRequest, "/plain": http.StatusInternalServerError} {
		if code := status(t, sock, path); code != want {
			t.Errorf("%s: status %d, want %d", path, code, want)
		}
	}
}

// status is the HTTP status of a GET of path on the socket.
func status(t *testing.T, sock, path string) int {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://local" + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
