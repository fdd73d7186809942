package socks

import (
	"io"
	"net/netip"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/fakedns"
)

// TestConfiguredResolver: with socks_server.resolver set, the server asks
// that DNS server (here a fake one on loopback) for target names, not the
// host's resolver: a name it knows is reached, one it does not gets
// reply 4 (host unreachable), and both questions reached it.
func TestConfiguredResolver(t *testing.T) {
	tstest.CheckLeaks(t)
	dns := fakedns.Start(t, map[string][]netip.Addr{"echo.skywire.test": {netip.MustParseAddr("127.0.0.1")}})
	port := netip.MustParseAddrPort(tstest.ServeTCP(t, tstest.Echo)).Port()
	e := newEnv(t, envOptions{configLookup: true, server: func(c *ServerConfig) { c.Resolver = dns.Addr }})

	c, err := socksDial(e.proxy, "", "", addr{Name: "echo.skywire.test", Port: port})
	if err != nil {
		t.Fatalf("CONNECT echo.skywire.test (known to the configured resolver): %v", err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Errorf("echo through the proxy: %q, %v", got, err)
	}
	c.Close()
	_, err = socksDial(e.proxy, "", "", addr{Name: "name.invalid", Port: 80})
	if replyOf(err) != ReplyHostUnreachable {
		t.Errorf("CONNECT name.invalid: %v, want reply %v", err, ReplyHostUnreachable)
	}
	for _, name := range []string{"echo.skywire.test", "name.invalid"} {
		if dns.Queries(name) == 0 {
			t.Errorf("the configured resolver was not asked about %s", name)
		}
	}
}
