package exitpolicy

import (
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

func mustParse(t *testing.T, allow, deny []string, opts ...Option) *Policy {
	t.Helper()
	p, err := Parse("socks_server", allow, deny, opts...)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", allow, deny, err)
	}
	return p
}

// noLocal is a host with no interface addresses of its own beyond the
// ones the defaults cover.
func noLocal() ([]netip.Prefix, error) { return nil, nil }

func TestParseErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		allow, deny []string
		key         string
	}{
		{allow: []string{"10.0.0.0"}, key: "socks_server.allow_destinations[0]"},    // no prefix length
		{allow: []string{"10.0.0.0/8", "10.1.2.3/8"}, key: "allow_destinations[1]"}, // host bits set
		{deny: []string{"10.0.0.0/33"}, key: "socks_server.deny_destinations[0]"},   // bad length
		{deny: []string{"10.0.0.0/8:0"}, key: "deny_destinations[0]"},               // port 0
		{deny: []string{"10.0.0.0/8:65536"}, key: "deny_destinations[0]"},           // port too big
		{deny: []string{"10.0.0.0/8:22-21"}, key: "deny_destinations[0]"},           // empty range
		{deny: []string{"10.0.0.0/8:"}, key: "deny_destinations[0]"},                // empty port
		{deny: []string{"10.0.0.0/8:ssh"}, key: "deny_destinations[0]"},             // named port
		{deny: []string{"example.com/32"}, key: "deny_destinations[0]"},             // not an address
		{deny: []string{"::ffff:10.0.0.0/104"}, key: "deny_destinations[0]"},        // mapped v4
		{deny: []string{""}, key: "deny_destinations[0]"},                           // empty
		{deny: []string{" 10.0.0.0/8"}, key: "deny_destinations[0]"},                // spaces
		{deny: []string{"fe80::/10%eth0"}, key: "deny_destinations[0]"},             // zone
		{allow: []string{"[::1]/128:22"}, key: "allow_destinations[0]"},             // brackets
		{allow: []string{"fc00::/7:1-2-3"}, key: "allow_destinations[0]"},           // bad range
		{allow: []string{"fc00::/7:+22"}, key: "allow_destinations[0]"},             // sign
		{allow: []string{"127.0.0.1/32:080"}, key: "allow_destinations[0]"},         // leading zero
		{allow: []string{"127.0.0.1/032"}, key: "allow_destinations[0]"},            // leading zero length
		{allow: []string{"0.0.0.0/0:1-65535", "10.0.0.0/8:22 "}, key: "allow_destinations[1]"},
	} {
		_, err := Parse("socks_server", tc.allow, tc.deny)
		if err == nil {
			t.Errorf("Parse(%q, %q) = nil error, want one naming %s", tc.allow, tc.deny, tc.key)
			continue
		}
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("Parse(%q, %q) = %v, want ErrConfig naming %s", tc.allow, tc.deny, err, tc.key)
		}
	}
}

func TestParseAccepts(t *testing.T) {
	p := mustParse(t,
		[]string{"10.0.0.0/8", "192.168.1.10/32:22", "127.0.0.1/32:8000-8080", "::1/128", "fc00::/7:443", "2001:db8::/32:1-65535"},
		[]string{"0.0.0.0/0:25", "::/0:25", "10.9.0.0/16"})
	if got := p.String(); !strings.Contains(got, "192.168.1.10/32:22") || !strings.Contains(got, "127.0.0.1/32:8000-8080") {
		t.Errorf("String() = %q, want the entries in their syntax", got)
	}
}

func TestDefaults(t *testing.T) {
	p := mustParse(t, nil, nil, WithLocalAddrs(func() ([]netip.Prefix, error) {
		return []netip.Prefix{netip.MustParsePrefix("203.0.113.7/24"), netip.MustParsePrefix("2001:db8:1::5/64")}, nil
	}))
	refused := []string{
		"127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", // loopback, also mapped
		"169.254.169.254", "fe80::1", // link-local
		"0.0.0.0", "0.1.2.3", "::", // unspecified, "this network"
		"224.0.0.1", "239.255.255.250", "ff02::1", "255.255.255.255", // multicast, broadcast
		"10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.0.1", "100.64.0.1", "100.127.255.254", "fd00::1", "fc00::1", // private
		"::ffff:10.0.0.1",
		"203.0.113.7", "203.0.113.255", "2001:db8:1::5", // the host's own addresses, and its subnet's broadcast
	}
	for _, s := range refused {
		if err := p.Check(netip.MustParseAddr(s), 80); !errors.Is(err, ErrRefused) {
			t.Errorf("Check(%s) = %v, want ErrRefused", s, err)
		}
	}
	allowed := []string{"1.1.1.1", "8.8.8.8", "172.15.255.255", "172.32.0.0", "100.63.255.255", "100.128.0.0",
		"203.0.113.8", "2001:db8:1::6", "2606:4700::1111", "::ffff:1.1.1.1", "192.169.0.1"}
	for _, s := range allowed {
		if err := p.Check(netip.MustParseAddr(s), 80); err != nil {
			t.Errorf("Check(%s) = %v, want allowed", s, err)
		}
	}
	if err := p.Check(netip.Addr{}, 80); !errors.Is(err, ErrRefused) {
		t.Errorf("Check(invalid address) = %v, want ErrRefused", err)
	}
}

func TestAllowOpensAndDenyWins(t *testing.T) {
	p := mustParse(t,
		[]string{"127.0.0.1/32:8080", "10.0.0.0/8", "192.168.1.10/32:22", "fd00::/8:443", "::1/128", "1.2.3.0/24"},
		[]string{"10.9.0.0/16", "0.0.0.0/0:25", "::/0:25", "1.2.3.4/32"},
		WithLocalAddrs(noLocal))
	for _, tc := range []struct {
		ip   string
		port int
		ok   bool
	}{
		{"127.0.0.1", 8080, true},
		{"127.0.0.1", 8081, false}, // only that port was opened
		{"127.0.0.2", 8080, false},
		{"10.1.2.3", 80, true},
		{"10.9.1.1", 80, false}, // deny wins over the wider allow
		{"10.1.2.3", 25, false}, // deny on a port, everywhere
		{"8.8.8.8", 25, false},
		{"8.8.8.8", 26, true},
		{"192.168.1.10", 22, true},
		{"192.168.1.10", 23, false},
		{"192.168.1.11", 22, false},
		{"fd12::1", 443, true},
		{"fd12::1", 80, false},
		{"fc12::1", 443, false}, // fc00::/7 outside fd00::/8 stays closed
		{"::1", 22, true},
		{"::1", 25, false},
		{"1.2.3.4", 80, false}, // deny wins over the allow of its /24
		{"1.2.3.5", 80, true},
		{"::ffff:10.1.2.3", 80, true}, // mapped addresses match their IPv4 entries
	} {
		err := p.Check(netip.MustParseAddr(tc.ip), tc.port)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%s, %d) = %v, want allowed %v", tc.ip, tc.port, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrRefused) {
			t.Errorf("Check(%s, %d) = %v, not ErrRefused", tc.ip, tc.port, err)
		}
	}
}

// A port-less packet (ICMP, a later fragment) matches only entries
// without ports.
func TestCheckNoPort(t *testing.T) {
	p := mustParse(t, []string{"127.0.0.1/32:8080", "10.0.0.0/8"}, []string{"0.0.0.0/0:25"}, WithLocalAddrs(noLocal))
	for _, tc := range []struct {
		ip string
		ok bool
	}{
		{"127.0.0.1", false}, // the allow is for one port only
		{"10.0.0.1", true},
		{"8.8.8.8", true}, // the deny is for one port only
	} {
		if err := p.Check(netip.MustParseAddr(tc.ip), NoPort); (err == nil) != tc.ok {
			t.Errorf("Check(%s, NoPort) = %v, want allowed %v", tc.ip, err, tc.ok)
		}
	}
}

func TestLocalAddrsRefreshed(t *testing.T) {
	var local []netip.Prefix
	p := mustParse(t, nil, nil, WithLocalAddrs(func() ([]netip.Prefix, error) { return local, nil }))
	ip := netip.MustParseAddr("198.51.100.9")
	if err := p.Check(ip, 80); err != nil {
		t.Fatalf("Check before the address is the host's = %v", err)
	}
	local = []netip.Prefix{netip.MustParsePrefix("198.51.100.9/32")}
	p.RefreshLocal()
	if err := p.Check(ip, 80); !errors.Is(err, ErrRefused) {
		t.Fatalf("Check after the host took the address = %v, want ErrRefused", err)
	}
}

func TestControl(t *testing.T) {
	p := mustParse(t, []string{"127.0.0.1/32:8080"}, nil, WithLocalAddrs(noLocal))
	if err := p.Control("tcp4", "127.0.0.1:8080", nil); err != nil {
		t.Errorf("Control(allowed) = %v", err)
	}
	for _, a := range []string{"127.0.0.1:8081", "[::1]:8080", "10.0.0.1:80"} {
		err := p.Control("tcp", a, nil)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("Control(%s) = %v, want ErrRefused", a, err)
		}
	}
	if err := p.Control("tcp", "nonsense", nil); !errors.Is(err, ErrRefused) {
		t.Errorf("Control(unparsable) = %v, want ErrRefused", err)
	}
	var _ func(string, string, syscall.RawConn) error = p.Control
}

func TestLogLimiter(t *testing.T) {
	l := LogLimiter{Every: time.Hour}
	if ok, n := l.Allow(); !ok || n != 0 {
		t.Fatalf("first Allow = %v, %d; want true, 0", ok, n)
	}
	for range 3 {
		if ok, _ := l.Allow(); ok {
			t.Fatal("Allow = true within Every")
		}
	}
	l.mu.Lock()
	l.last = time.Now().Add(-2 * time.Hour)
	l.mu.Unlock()
	if ok, n := l.Allow(); !ok || n != 3 {
		t.Fatalf("Allow after Every = %v, %d; want true, 3 suppressed", ok, n)
	}
}
