// Package web is viscript's dashboard: a single page (embedded in the
// binary, no external scripts) that draws the mesh from the manager's
// directory, lists each node's apps with start, stop and restart, follows
// an app's log and charts link and app throughput, live over server-sent
// events. It is served on [viscript] web; off loopback it needs a token
// (login), and every request passes internal/webguard's Host and Origin
// checks. See docs/dashboard.md.
package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/skywire-mesh/skywire/internal/ratelimit"
	"github.com/skywire-mesh/skywire/internal/webguard"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/viscript/control"
)

//go:embed assets
var assets embed.FS

// Defaults and bounds.
const (
	DefaultInterval = 2 * time.Second
	DefaultHistory  = 150 // samples per chart: 5 minutes at the default interval
	MinTokenLen     = 16
	maxStreams      = 64 // event and log streams open at once
	maxBody         = 4 << 10
	logTail         = 16 << 10 // bytes of log a follow starts with
	logPoll         = 500 * time.Millisecond
	cookieName      = "skywire_dashboard"
	// A login lasts sessionTTL (or until Log out); at most maxSessions
	// are kept, the oldest ending first.
	sessionTTL  = 7 * 24 * time.Hour
	maxSessions = 256
)

// Config configures the dashboard.
type Config struct {
	// Addr is where to listen (HOST:PORT).
	Addr string
	// Token, if set, is needed to log in; required when Addr is not on
	// loopback.
	Token string
	// Listener, if set, is served instead of listening on Addr (tests).
	Listener net.Listener
	// Interval is how often the mesh and the apps are sampled (default
	// 2s); History how many samples each chart keeps (default 150).
	Interval time.Duration
	History  int
}

// Validate checks the address and the token rule.
func (c Config) Validate() error {
	if c.Listener == nil {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return fmt.Errorf("viscript.web: %q is not HOST:PORT: %v", c.Addr, err)
		}
		if c.Token == "" && !webguard.AddrIsLoopback(c.Addr) {
			return fmt.Errorf("viscript.web_token: required when viscript.web (%q) is not a loopback address: the dashboard starts and stops apps", c.Addr)
		}
	}
	if c.Token != "" && len(c.Token) < MinTokenLen {
		return fmt.Errorf("viscript.web_token: must be at least %d characters", MinTokenLen)
	}
	return nil
}

// Server serves the dashboard.
type Server struct {
	cfg    Config
	log    *slog.Logger
	smp    *sampler
	mesh   Mesh
	logins *ratelimit.Keyed[netip.Prefix]

	mu       sync.Mutex
	streams  int
	sessions map[[sha256.Size]byte]time.Time // hash of a login cookie's value → its expiry
}

// New returns a dashboard over mesh (the local node) and nodes (the
// controllers of nodes by key; LocalNodes for this viscript alone).
func New(cfg Config, mesh Mesh, nodes NodeSource, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.History <= 0 {
		cfg.History = DefaultHistory
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, mesh: mesh, smp: newSampler(mesh, nodes, cfg.Interval, cfg.History),
		logins: ratelimit.NewKeyed[netip.Prefix](0.5, 5, 4096), sessions: map[[sha256.Size]byte]time.Time{}}
	return s, nil
}

// SelfKey is the local node's key once the dashboard has read it.
func (s *Server) SelfKey() (keys.PublicKey, bool) { return s.smp.selfKey() }

// Run listens (unless Config.Listener is set), samples and serves until
// ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("dashboard: listen %s: %w", s.cfg.Addr, err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{
		Handler:           s.Handler(ctx),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.smp.run(ctx) })
	errc := make(chan error, 1)
	wg.Go(func() { errc <- srv.Serve(ln) })
	s.log.Info("dashboard serving", "addr", ln.Addr().String(), "login", s.cfg.Token != "")
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("dashboard: %w", err)
	}
	cancel()
	srv.Close()
	wg.Wait()
	return err
}

// Handler is the dashboard's HTTP handler; its streams end with ctx.
func (s *Server) Handler(ctx context.Context) http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		webguard.Headers(w, "")
		w.Header().Set("Cache-Control", "no-cache")
		b, _ := assets.ReadFile("assets/index.html")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(b)
	})
	for _, f := range []string{"app.js", "app.css", "favicon.svg"} {
		mux.HandleFunc("GET /"+f, func(w http.ResponseWriter, r *http.Request) {
			webguard.Headers(w, "")
			w.Header().Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r)
		})
	}
	mux.HandleFunc("GET /api/session", s.hSession)
	mux.HandleFunc("POST /api/login", s.hLogin)
	mux.HandleFunc("POST /api/logout", s.hLogout)
	api := http.NewServeMux()
	api.HandleFunc("GET /api/state", s.hState)
	api.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) { s.hEvents(ctx, w, r) })
	api.HandleFunc("GET /api/logs", func(w http.ResponseWriter, r *http.Request) { s.hLogs(ctx, w, r) })
	api.HandleFunc("GET /api/route", s.hRoute)
	api.HandleFunc("POST /api/start", s.hStart)
	api.HandleFunc("POST /api/stop", s.hStop)
	api.HandleFunc("POST /api/restart", s.hRestart)
	mux.Handle("/api/", s.requireLogin(api))
	return webguard.Guard(mux, webguard.Options{
		AnyHost: s.cfg.Token != "",
		Fail:    func(w http.ResponseWriter, status int, err error) { writeError(w, status, err) },
	})
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(errorBody{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

// errLogin is the answer to a request without a valid login.
var errLogin = errors.New("login required")

// Sessions: a login makes a random cookie value; the server keeps only
// its SHA-256 (a lookup by hash: no timing of the comparison tells how
// much of a guessed value matched), with its expiry. Log out forgets it,
// so a copy of the cookie stops working too.

func sessionHash(v string) [sha256.Size]byte { return sha256.Sum256([]byte(v)) }

// newSession makes and keeps a session, returning the cookie's value.
func (s *Server) newSession(now time.Time) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("session: %w", err)
	}
	v := hex.EncodeToString(b[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, exp := range s.sessions {
		if !now.Before(exp) {
			delete(s.sessions, h)
		}
	}
	if len(s.sessions) >= maxSessions {
		var oldest [sha256.Size]byte
		var at time.Time
		for h, exp := range s.sessions {
			if at.IsZero() || exp.Before(at) {
				oldest, at = h, exp
			}
		}
		delete(s.sessions, oldest)
		s.log.Warn("dashboard: too many logins: the oldest session ended", "max", maxSessions)
	}
	s.sessions[sessionHash(v)] = now.Add(sessionTTL)
	return v, nil
}

// endSession forgets the session of r's cookie (if any); true if there
// was one.
func (s *Server) endSession(r *http.Request) bool {
	h, ok := cookieHash(r)
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok = s.sessions[h]
	delete(s.sessions, h)
	return ok
}

// cookieHash returns the hash of r's login cookie, if it has one.
func cookieHash(r *http.Request) ([sha256.Size]byte, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return [sha256.Size]byte{}, false
	}
	return sessionHash(c.Value), true
}

func (s *Server) loggedIn(r *http.Request) bool {
	if s.cfg.Token == "" {
		return true
	}
	h, ok := cookieHash(r)
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.sessions[h]
	if ok && !time.Now().Before(exp) {
		delete(s.sessions, h)
		return false
	}
	return ok
}

func (s *Server) requireLogin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.loggedIn(r) {
			writeError(w, http.StatusUnauthorized, errLogin)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) hSession(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]bool{"login_required": s.cfg.Token != "", "logged_in": s.loggedIn(r)})
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad request: %v", err)
	}
	return nil
}

func source(r *http.Request) netip.Prefix {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Prefix{}
	}
	p, _ := ratelimit.Source(net.TCPAddrFromAddrPort(ap))
	return p
}

func (s *Server) hLogin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token string `json:"token"`
	}
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if s.cfg.Token == "" {
		writeJSON(w, struct{}{})
		return
	}
	src := source(r)
	if !s.logins.Allow(src, time.Now()) {
		s.log.Warn("dashboard: login refused: too many attempts", "source", src)
		writeError(w, http.StatusTooManyRequests, errors.New("too many login attempts; wait a minute"))
		return
	}
	if subtle.ConstantTimeCompare([]byte(req.Token), []byte(s.cfg.Token)) != 1 {
		s.log.Warn("dashboard: login refused: wrong token", "source", src)
		writeError(w, http.StatusUnauthorized, errors.New("wrong token"))
		return
	}
	v, err := s.newSession(time.Now())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	// A browser-session cookie: closing the browser ends it there; the
	// server forgets it after sessionTTL.
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: v, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	s.log.Info("dashboard: logged in", "source", src)
	writeJSON(w, struct{}{})
}

// hLogout ends the session: the server forgets it (a copy of the cookie
// no longer works, and its open streams end) and the browser drops the
// cookie.
func (s *Server) hLogout(w http.ResponseWriter, r *http.Request) {
	if s.endSession(r) {
		s.log.Info("dashboard: logged out", "source", source(r))
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	writeJSON(w, struct{}{})
}

func (s *Server) hState(w http.ResponseWriter, r *http.Request) {
	b, ok := s.smp.fullState()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, errors.New("no sample yet; try again in a moment"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

// stream takes a slot for a long-lived response; false (answered) when
// all are taken.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) (func(), bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams >= maxStreams {
		s.log.Warn("dashboard: stream refused: too many open", "max", maxStreams, "remote", r.RemoteAddr)
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("too many open dashboard streams (%d)", maxStreams))
		return nil, false
	}
	s.streams++
	return func() {
		s.mu.Lock()
		s.streams--
		s.mu.Unlock()
	}, true
}

func startSSE(w http.ResponseWriter) (http.Flusher, bool) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, errors.New("streaming not supported"))
		return nil, false
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": live\n\n")
	fl.Flush()
	return fl, true
}

// nodeParam is the node a request is about: "local" (or empty) or a key,
// normalised so the local node's key is "local".
func (s *Server) nodeParam(v string) (string, error) {
	if v == "" || v == "local" {
		return "local", nil
	}
	pk, err := keys.ParsePublicKey(v)
	if err != nil {
		return "", fmt.Errorf("node %q: %w", v, err)
	}
	if self, ok := s.smp.selfKey(); ok && self == pk {
		return "local", nil
	}
	return pk.String(), nil
}

// hEvents streams samples: the first event has every chart's history,
// the rest the newest points. ?node=KEY also samples that node's apps.
func (s *Server) hEvents(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	node, err := s.nodeParam(r.URL.Query().Get("node"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	done, ok := s.stream(w, r)
	if !ok {
		return
	}
	defer done()
	if node != "local" {
		unwatch, ok := s.smp.watch(node)
		if !ok {
			writeError(w, http.StatusServiceUnavailable, fmt.Errorf("too many nodes watched at once (%d)", maxWatched))
			return
		}
		defer unwatch()
		s.smp.refresh()
	}
	ch, cancel := s.smp.subscribe()
	defer cancel()
	fl, ok := startSSE(w)
	if !ok {
		return
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.Context().Done():
			return
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		case b := <-ch:
			if !s.loggedIn(r) { // logged out meanwhile
				return
			}
			fmt.Fprintf(w, "event: state\ndata: %s\n\n", b)
		}
		fl.Flush()
	}
}

// controller returns the Controller for a request's node.
func (s *Server) controller(ctx context.Context, node string) (control.Controller, error) {
	n, err := s.nodeParam(node)
	if err != nil {
		return nil, err
	}
	return s.smp.controller(ctx, n)
}

// hLogs follows an app's captured output: the last 16 KiB, then what is
// appended, as "log" events until the client goes away.
func (s *Server) hLogs(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, err := strconv.ParseUint(q.Get("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("id %q is not an app ID", q.Get("id")))
		return
	}
	ctrl, err := s.controller(r.Context(), q.Get("node"))
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	done, ok := s.stream(w, r)
	if !ok {
		return
	}
	defer done()
	first, err := ctrl.Logs(r.Context(), id, -logTail, logTail)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	fl, ok := startSSE(w)
	if !ok {
		return
	}
	send := func(c control.LogChunk) bool {
		if len(c.Data) == 0 {
			return true
		}
		b, _ := json.Marshal(map[string]string{"text": string(c.Data)})
		_, err := fmt.Fprintf(w, "event: log\ndata: %s\n\n", b)
		fl.Flush()
		return err == nil
	}
	if !send(first) {
		return
	}
	next := first.Next
	t := time.NewTicker(logPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.Context().Done():
			return
		case <-t.C:
		}
		if !s.loggedIn(r) { // logged out meanwhile
			return
		}
		c, err := ctrl.Logs(r.Context(), id, next, 64<<10)
		if err != nil {
			b, _ := json.Marshal(errorBody{Error: err.Error()})
			fmt.Fprintf(w, "event: logerror\ndata: %s\n\n", b)
			fl.Flush()
			return
		}
		next = c.Next
		if !send(c) {
			return
		}
	}
}

func (s *Server) hRoute(w http.ResponseWriter, r *http.Request) {
	pk, err := keys.ParsePublicKey(r.URL.Query().Get("to"))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("to: %w", err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	rt, err := s.mesh.Route(ctx, pk)
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Errorf("route to %s: %w", pk.Short(), err))
		return
	}
	hops := make([]string, len(rt.Hops))
	for i, h := range rt.Hops {
		hops[i] = h.String()
	}
	per := make([]float64, len(rt.Per))
	for i, d := range rt.Per {
		per[i] = ms(d)
	}
	writeJSON(w, map[string]any{"hops": hops, "per_ms": per, "latency_ms": ms(rt.Latency)})
}

// statusOf maps a Controller error to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, control.ErrNoSuchApp), errors.Is(err, control.ErrUnknownApp):
		return http.StatusNotFound
	case errors.Is(err, control.ErrAlreadyRunning), errors.Is(err, control.ErrNotRunning), errors.Is(err, control.ErrAppRunning):
		return http.StatusConflict
	case errors.Is(err, ErrNotControlled), errors.Is(err, control.ErrUnauthorized):
		return http.StatusForbidden
	case errors.Is(err, control.ErrBadRequest), errors.Is(err, keys.ErrBadKey):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

type appRequest struct {
	Node string `json:"node"`
	Name string `json:"name,omitempty"`
	ID   uint64 `json:"id,omitempty"`
}

// action decodes an appRequest, finds the node's Controller and runs do;
// the answer is do's result, and the page gets a fresh sample soon.
func (s *Server) action(w http.ResponseWriter, r *http.Request, what string, do func(context.Context, control.Controller, appRequest) (any, error)) {
	var req appRequest
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	ctrl, err := s.controller(ctx, req.Node)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	v, err := do(ctx, ctrl, req)
	s.smp.refresh()
	if err != nil {
		s.log.Info("dashboard: "+what+" failed", "node", req.Node, "name", req.Name, "id", req.ID, "remote", r.RemoteAddr, "err", err)
		writeError(w, statusOf(err), err)
		return
	}
	s.log.Info("dashboard: "+what, "node", req.Node, "name", req.Name, "id", req.ID, "remote", r.RemoteAddr)
	writeJSON(w, v)
}

func (s *Server) hStart(w http.ResponseWriter, r *http.Request) {
	s.action(w, r, "start", func(ctx context.Context, c control.Controller, q appRequest) (any, error) {
		if q.Name == "" {
			return nil, fmt.Errorf("%w: name the catalog app to start", control.ErrBadRequest)
		}
		// Started from the page, the app belongs to no shell session: it
		// keeps running when the page closes.
		return c.Start(ctx, control.StartRequest{Name: q.Name})
	})
}

func (s *Server) hStop(w http.ResponseWriter, r *http.Request) {
	s.action(w, r, "stop", func(ctx context.Context, c control.Controller, q appRequest) (any, error) {
		return c.Shutdown(ctx, q.ID)
	})
}

func (s *Server) hRestart(w http.ResponseWriter, r *http.Request) {
	s.action(w, r, "restart", func(ctx context.Context, c control.Controller, q appRequest) (any, error) {
		return c.Restart(ctx, q.ID)
	})
}
