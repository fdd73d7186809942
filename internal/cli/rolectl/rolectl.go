// Package rolectl is how a command reads live state from a running role
// process (`skywire node status`, `skywire manager nodes`, `skywire ping`):
// JSON over HTTP on a unix socket of mode 0600 that the role serves. Only
// the socket's owner (and root) can connect.
package rolectl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/skywire-mesh/skywire/internal/localsock"
)

// ErrNotRunning is returned by Get when nothing serves the socket.
var ErrNotRunning = errors.New("not running (no process serves its control socket)")

// Handler answers one request; its result is sent as JSON. An error is
// sent with status 400 (bad request) or 500 and its text.
type Handler func(r *http.Request) (any, error)

// BadRequest marks an error as the caller's fault (HTTP 400).
type BadRequest struct{ Err error }

func (e BadRequest) Error() string { return e.Err.Error() }
func (e BadRequest) Unwrap() error { return e.Err }

// OrBadRequest is a handler's reply when every error of the call that
// made it is the caller's fault: v, or err as a BadRequest.
func OrBadRequest[T any](v T, err error) (any, error) {
	if err != nil {
		return nil, BadRequest{Err: err}
	}
	return v, nil
}

// Server serves handlers on a unix socket.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	path string
	done chan struct{}
}

// Listen creates the socket with localsock.Listen (mode 0600; a stale
// socket file is replaced, a live one is localsock.ErrInUse, any other
// file is left alone) and serves handlers on it until Close.
func Listen(path string, handlers map[string]Handler, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln, err := localsock.Listen(path)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	for p, h := range handlers {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			v, err := h(r)
			w.Header().Set("Content-Type", "application/json")
			if err != nil {
				code := http.StatusInternalServerError
				var br BadRequest
				if errors.As(err, &br) {
					code = http.StatusBadRequest
				}
				w.WriteHeader(code)
				json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
				return
			}
			if err := json.NewEncoder(w).Encode(v); err != nil {
				log.Debug("control: write reply", "path", p, "err", err)
			}
		})
	}
	s := &Server{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)},
		ln:   ln,
		path: path,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	return s, nil
}

// Close stops serving, removes the socket and waits for the serving loop.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	os.Remove(s.path)
	return err
}

// Get asks the process serving socket for path (with a query) and decodes
// the JSON answer into out.
func Get(ctx context.Context, socket, path string, out any) error {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://local"+path, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)) {
			return fmt.Errorf("%s: %w", socket, ErrNotRunning)
		}
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return json.Unmarshal(body, out)
}

// GetAs is Get decoding into a new T.
func GetAs[T any](ctx context.Context, socket, path string) (T, error) {
	var v T
	err := Get(ctx, socket, path, &v)
	return v, err
}
