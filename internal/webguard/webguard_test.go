package webguard

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name, method, host, origin, ctype string
		anyHost                           bool
		want                              error
	}{
		{"loopback get", "GET", "127.0.0.1:8000", "", "", false, nil},
		{"localhost get", "GET", "localhost:8000", "", "", false, nil},
		{"ipv6 loopback", "GET", "[::1]:8000", "", "", false, nil},
		{"rebinding", "GET", "evil.example:8000", "", "", false, ErrHost},
		{"rebinding without port", "GET", "evil.example", "", "", false, ErrHost},
		{"any host", "GET", "dash.example:8000", "", "", true, nil},
		{"same-origin post", "POST", "127.0.0.1:8000", "http://127.0.0.1:8000", "application/json", false, nil},
		{"post without origin", "POST", "127.0.0.1:8000", "", "application/json", false, nil},
		{"cross-origin post", "POST", "127.0.0.1:8000", "http://evil.example", "application/json", false, ErrCrossOrigin},
		{"cross-origin post, any host", "POST", "dash.example", "http://evil.example", "application/json", true, ErrCrossOrigin},
		{"form post", "POST", "127.0.0.1:8000", "http://127.0.0.1:8000", "application/x-www-form-urlencoded", false, ErrContentType},
		{"json with charset", "POST", "127.0.0.1:8000", "", "application/json; charset=utf-8", false, ErrContentType},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, "/api/x", strings.NewReader("{}"))
		r.Host = tt.host
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		if tt.ctype != "" {
			r.Header.Set("Content-Type", tt.ctype)
		}
		status, err := Check(r, tt.anyHost)
		if !errors.Is(err, tt.want) || (err == nil) != (status == 0) {
			t.Errorf("%s: %d %v, want %v", tt.name, status, err, tt.want)
		}
	}
}

func TestAddrIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8000": true, "[::1]:1": true, "localhost:80": true,
		"0.0.0.0:8000": false, ":8000": false, "[::]:8000": false, "192.0.2.1:80": false, "nonsense": false,
	} {
		if got := AddrIsLoopback(addr); got != want {
			t.Errorf("AddrIsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
