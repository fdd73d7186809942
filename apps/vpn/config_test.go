package vpn

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

func TestClientConfigValidate(t *testing.T) {
	base := tstest.DefaultsWith(DefaultClientConfig, func(c *ClientConfig) { c.Server = keys.PublicKey{1} })
	// A key with ":" pins that it is the error's subject ("key: …").
	tstest.CheckValidate(t, ErrConfig, base, (*ClientConfig).Validate, []tstest.ConfigCase[ClientConfig]{
		{"defaults with a server", func(c *ClientConfig) {}, ""},
		{"everything", func(c *ClientConfig) { c.Routes = []string{"everything", "10.0.0.0/8", "192.0.2.7"} }, ""},
		{"no server", func(c *ClientConfig) { c.Server = keys.PublicKey{} }, "vpn_client.server:"},
		{"tun too long", func(c *ClientConfig) { c.Tun = "abcdefghijklmnop" }, "vpn_client.tun:"},
		{"tun with slash", func(c *ClientConfig) { c.Tun = "a/b" }, "vpn_client.tun:"},
		{"mtu too small", func(c *ClientConfig) { c.MTU = 100 }, "vpn_client.mtu:"},
		{"mtu too large", func(c *ClientConfig) { c.MTU = MaxMTU + 1 }, "vpn_client.mtu:"},
		{"bad route", func(c *ClientConfig) { c.Routes = []string{"10.0.0.0/33"} }, "vpn_client.routes:"},
		{"IPv6 route", func(c *ClientConfig) { c.Routes = []string{"::/0"} }, "vpn_client.routes:"},
		{"exclude names", func(c *ClientConfig) { c.Exclude = []string{"peer.example:7901", "peer.example", "[::1]:7901"} }, ""},
		{"bad exclude", func(c *ClientConfig) { c.Exclude = []string{"a b:7901"} }, "vpn_client.exclude:"},
		{"empty exclude", func(c *ClientConfig) { c.Exclude = []string{":7901"} }, "vpn_client.exclude:"},
		{"negative retry", func(c *ClientConfig) { c.RetryMax = -1 }, "vpn_client.retry_max:"},
	}, nil)
}

func TestServerConfigValidate(t *testing.T) {
	// The state directory is the command layer's: there is no default.
	base := tstest.DefaultsWith(DefaultServerConfig, func(c *ServerConfig) { c.StateDir = "/state/vpn" })
	tstest.CheckValidate(t, ErrConfig, base, (*ServerConfig).Validate, []tstest.ConfigCase[ServerConfig]{
		{"allow all", func(c *ServerConfig) { c.AllowAll = true }, ""},
		{"allow list", func(c *ServerConfig) { c.Allow = []keys.PublicKey{{1}} }, ""},
		{"zero fields get defaults", func(c *ServerConfig) { *c = ServerConfig{AllowAll: true, StateDir: "/x"} }, ""},
		{"nobody allowed", func(c *ServerConfig) {}, "vpn_server.allow:"},
		{"zero key allowed", func(c *ServerConfig) { c.Allow = []keys.PublicKey{{}} }, "vpn_server.allow:"},
		{"IPv6 pool", func(c *ServerConfig) { c.AllowAll = true; c.Pool = "fd00::/64" }, "vpn_server.pool:"},
		{"pool too small", func(c *ServerConfig) { c.AllowAll = true; c.Pool = "10.0.0.0/31" }, "vpn_server.pool:"},
		{"pool garbage", func(c *ServerConfig) { c.AllowAll = true; c.Pool = "ten" }, "vpn_server.pool:"},
		{"mtu", func(c *ServerConfig) { c.AllowAll = true; c.MTU = MaxMTU + 1 }, "vpn_server.mtu:"},
		{"tun", func(c *ServerConfig) { c.AllowAll = true; c.Tun = "a b" }, "vpn_server.tun:"},
		{"no state dir", func(c *ServerConfig) { c.AllowAll = true; c.StateDir = "" }, "vpn_server.state_dir:"},
		{"keepalive", func(c *ServerConfig) { c.AllowAll = true; c.Keepalive = -1 }, "vpn_server.keepalive:"},
		{"destinations", func(c *ServerConfig) {
			c.AllowAll, c.AllowDestinations, c.DenyDestinations = true, []string{"10.0.0.0/8"}, []string{"0.0.0.0/0:25"}
		}, ""},
		{"allow destination", func(c *ServerConfig) { c.AllowAll = true; c.AllowDestinations = []string{"10.0.0.0/8:x"} }, "vpn_server.allow_destinations[0]:"},
		{"deny destination", func(c *ServerConfig) { c.AllowAll = true; c.DenyDestinations = []string{"10.0.0.1/8"} }, "vpn_server.deny_destinations[0]:"},
		{"IPv6 destination", func(c *ServerConfig) {
			c.AllowAll, c.DenyDestinations = true, []string{"0.0.0.0/0:25", "::/0:25"}
		}, "vpn_server.deny_destinations[1]:"},
	}, func(t *testing.T, c *ServerConfig) {
		if c.Pool != DefaultPool || c.MTU != DefaultMTU || c.Port != DefaultServerPort {
			t.Errorf("defaults not filled: %+v", *c)
		}
	})
}

func TestParseRoutes(t *testing.T) {
	got, err := parseRoutes([]string{"everything", "10.1.2.3/16", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("128.0.0.0/1"),
		netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("192.0.2.7/32"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestImports: the core never imports the CLI or the config-file library.
func TestImports(t *testing.T) {
	tstest.CheckImports(t, ".", "urfave/cli", "BurntSushi/toml", "internal/cli")
}

func TestExcludeAddrs(t *testing.T) {
	cfg := DefaultClientConfig()
	cfg.Server = keys.PublicKey{1}
	cfg.Exclude = []string{"198.51.100.7:7901", "peer.example:7901", "gone.example", "203.0.113.9"}
	c, err := NewClient(cfg, nil, WithTUN(func(string) (Device, error) { return nil, ErrUnsupported }))
	if err != nil {
		t.Fatal(err)
	}
	c.resolve = func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "peer.example" {
			return []netip.Addr{netip.MustParseAddr("192.0.2.44")}, nil
		}
		return nil, errors.New("no such host")
	}
	got := c.excludeAddrs(context.Background())
	want := []netip.Addr{addr("198.51.100.7"), addr("192.0.2.44"), addr("203.0.113.9")}
	if !slices.Equal(got, want) {
		t.Errorf("excludeAddrs = %v, want %v", got, want)
	}
}
