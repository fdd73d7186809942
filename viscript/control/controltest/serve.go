package controltest

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/viscript/control"
)

// Serve serves ctrl with token on a control socket in a fresh short
// directory and returns the server and the socket's path. When the test
// ends it closes the server (closing it earlier is fine) and checks that
// Serve returned ErrServerClosed.
func Serve(t testing.TB, ctrl control.Controller, token string) (*control.Server, string) {
	t.Helper()
	path := filepath.Join(tstest.SocketDir(t), "c.sock")
	ln, err := control.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := control.NewServer(ctrl, nil, token)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("server Close: %v", err)
		}
		if err := <-done; !errors.Is(err, control.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return srv, path
}
