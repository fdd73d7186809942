// Package webguard is the one check every local web page of skywire (the
// messenger's chat page, viscript's dashboard) puts in front of its
// handlers, against other sites open in the same browser:
//
//   - DNS rebinding: unless the page is served beyond this machine on
//     purpose (AnyHost), a request whose Host is not a loopback name or
//     address is refused, so a site whose name resolves to 127.0.0.1 cannot
//     read the page's API;
//   - CSRF: a request that changes state (anything but GET and HEAD) must
//     come from the page's own origin (an Origin header, when present,
//     equal to the request's scheme and Host) and carry JSON, which a
//     cross-site form cannot send without a CORS preflight we never answer.
//
// It also sets the headers every page response carries (Headers).
package webguard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
)

// Errors given to Options.Fail; the HTTP status goes with them.
var (
	ErrHost        = errors.New("host is not this machine")
	ErrCrossOrigin = errors.New("cross-origin request")
	ErrContentType = errors.New("Content-Type must be application/json")
)

// Options configure Guard.
type Options struct {
	// AnyHost accepts any Host header: the page is served beyond this
	// machine on purpose (and then needs its own login).
	AnyHost bool
	// Fail writes a refusal; nil writes err's text as plain text.
	Fail func(w http.ResponseWriter, status int, err error)
}

// IsLoopback reports whether host (a name or address, without port) is
// this machine: "localhost" or a loopback address.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// AddrIsLoopback reports whether a listen address HOST:PORT is on
// loopback only (an empty host, 0.0.0.0 or :: is not).
func AddrIsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && IsLoopback(host)
}

// Check returns the refusal for r (with its HTTP status), or nil.
func Check(r *http.Request, anyHost bool) (int, error) {
	if !anyHost {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		if !IsLoopback(host) {
			return http.StatusForbidden, fmt.Errorf("%w: %q", ErrHost, r.Host)
		}
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return 0, nil
	}
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
		return http.StatusForbidden, fmt.Errorf("%w from %q", ErrCrossOrigin, o)
	}
	if r.Header.Get("Content-Type") != "application/json" {
		return http.StatusUnsupportedMediaType, ErrContentType
	}
	return 0, nil
}

// Guard refuses what Check refuses and passes the rest to next.
func Guard(next http.Handler, opts Options) http.Handler {
	fail := opts.Fail
	if fail == nil {
		fail = func(w http.ResponseWriter, status int, err error) { http.Error(w, err.Error(), status) }
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status, err := Check(r, opts.AnyHost); err != nil {
			fail(w, status, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Headers sets the security headers of a page response: a Content
// Security Policy (csp; "" means everything from this origin only, no
// inline script or style), no framing, no MIME sniffing, no referrer.
func Headers(w http.ResponseWriter, csp string) {
	if csp == "" {
		csp = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
	}
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}
