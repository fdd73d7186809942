package fakedns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestAnswers: a Go resolver pointed at the server gets the table's
// addresses over UDP and TCP, and "not found" for other names; the
// questions are counted.
func TestAnswers(t *testing.T) {
	s := Start(t, map[string][]netip.Addr{
		"target.test": {netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::7")},
	})
	for _, network := range []string{"udp", "tcp"} {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, s.Addr)
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		got, err := r.LookupNetIP(ctx, "ip", "target.test")
		slices.SortFunc(got, netip.Addr.Compare)
		if err != nil || len(got) != 2 || got[0] != netip.MustParseAddr("198.51.100.7") || got[1] != netip.MustParseAddr("2001:db8::7") {
			t.Errorf("%s: target.test = %v, %v", network, got, err)
		}
		_, err = r.LookupNetIP(ctx, "ip", "missing.invalid")
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Errorf("%s: missing.invalid: %v, want not found", network, err)
		}
		cancel()
	}
	if n := s.Queries("target.test"); n < 4 { // A and AAAA, over each network
		t.Errorf("%d questions about target.test counted, want at least 4", n)
	}
	if s.Queries("missing.invalid") == 0 {
		t.Error("no question about missing.invalid counted")
	}
}
