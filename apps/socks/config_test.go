package socks

import (
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

func TestClientConfigValidate(t *testing.T) {
	base := tstest.DefaultsWith(DefaultClientConfig, func(c *ClientConfig) { c.Server = keys.PublicKey{1} })
	tstest.CheckValidate(t, ErrConfig, base, (*ClientConfig).Validate, []tstest.ConfigCase[ClientConfig]{
		{"defaults with server", func(c *ClientConfig) {}, ""},
		{"zero timeout gets default", func(c *ClientConfig) { c.ConnectTimeout = 0 }, ""},
		{"auth", func(c *ClientConfig) { c.Username, c.Password = "u", "p" }, ""},
		{"no listen", func(c *ClientConfig) { c.Listen = "" }, "socks_client.listen"},
		{"listen without port", func(c *ClientConfig) { c.Listen = "127.0.0.1" }, "socks_client.listen"},
		{"listen bad port", func(c *ClientConfig) { c.Listen = "127.0.0.1:99999" }, "socks_client.listen"},
		{"no server", func(c *ClientConfig) { c.Server = keys.PublicKey{} }, "socks_client.server"},
		{"server port 0", func(c *ClientConfig) { c.ServerPort = 0 }, "socks_client.server_port"},
		{"user without password", func(c *ClientConfig) { c.Username = "u" }, "socks_client.username"},
		{"password without user", func(c *ClientConfig) { c.Password = "p" }, "socks_client.username"},
		{"long user", func(c *ClientConfig) { c.Username, c.Password = strings.Repeat("u", 256), "p" }, "socks_client.username"},
		{"long password", func(c *ClientConfig) { c.Username, c.Password = "u", strings.Repeat("p", 256) }, "socks_client.password"},
		{"negative timeout", func(c *ClientConfig) { c.ConnectTimeout = -time.Second }, "socks_client.connect_timeout"},
		{"negative handshake timeout", func(c *ClientConfig) { c.HandshakeTimeout = -time.Second }, "socks_client.handshake_timeout"},
	}, func(t *testing.T, c *ClientConfig) {
		if c.ConnectTimeout <= 0 {
			t.Errorf("ConnectTimeout = %v after Validate", c.ConnectTimeout)
		}
	})
}

func TestServerConfigValidate(t *testing.T) {
	k := keys.PublicKey{1}
	tstest.CheckValidate(t, ErrConfig, DefaultServerConfig, (*ServerConfig).Validate, []tstest.ConfigCase[ServerConfig]{
		{"allow list", func(c *ServerConfig) { c.Allow = []keys.PublicKey{k} }, ""},
		{"allow all", func(c *ServerConfig) { c.AllowAll = true }, ""},
		{"zero timeout gets default", func(c *ServerConfig) { c.AllowAll, c.DialTimeout = true, 0 }, ""},
		{"defaults allow nobody", func(c *ServerConfig) {}, "socks_server.allow"},
		{"both", func(c *ServerConfig) { c.AllowAll, c.Allow = true, []keys.PublicKey{k} }, "socks_server.allow_all"},
		{"zero key", func(c *ServerConfig) { c.Allow = []keys.PublicKey{k, {}} }, "socks_server.allow[1]"},
		{"port 0", func(c *ServerConfig) { c.AllowAll, c.Port = true, 0 }, "socks_server.port"},
		{"negative timeout", func(c *ServerConfig) { c.AllowAll, c.DialTimeout = true, -1 }, "socks_server.dial_timeout"},
		{"negative handshake timeout", func(c *ServerConfig) { c.AllowAll, c.HandshakeTimeout = true, -1 }, "socks_server.handshake_timeout"},
		{"destinations", func(c *ServerConfig) {
			c.AllowAll, c.AllowDestinations, c.DenyDestinations = true, []string{"10.0.0.0/8", "::1/128:8080"}, []string{"0.0.0.0/0:25"}
		}, ""},
		{"allow destination without length", func(c *ServerConfig) { c.AllowAll, c.AllowDestinations = true, []string{"10.0.0.1"} }, "socks_server.allow_destinations[0]"},
		{"resolver", func(c *ServerConfig) { c.AllowAll, c.Resolver = true, "127.0.0.1:5353" }, ""},
		{"resolver IPv6", func(c *ServerConfig) { c.AllowAll, c.Resolver = true, "[::1]:53" }, ""},
		{"resolver by name", func(c *ServerConfig) { c.AllowAll, c.Resolver = true, "dns.example:53" }, "socks_server.resolver"},
		{"resolver without port", func(c *ServerConfig) { c.AllowAll, c.Resolver = true, "127.0.0.1" }, "socks_server.resolver"},
		{"resolver port 0", func(c *ServerConfig) { c.AllowAll, c.Resolver = true, "127.0.0.1:0" }, "socks_server.resolver"},
		{"deny destination bad port", func(c *ServerConfig) {
			c.AllowAll, c.DenyDestinations = true, []string{"::/0:25", "0.0.0.0/0:0"}
		}, "socks_server.deny_destinations[1]"},
	}, func(t *testing.T, c *ServerConfig) {
		if c.DialTimeout <= 0 {
			t.Errorf("DialTimeout = %v after Validate", c.DialTimeout)
		}
	})
}

// TestNoCLIImports: the core does not import the command line or the
// config-file library (STYLE.md 2).
func TestNoCLIImports(t *testing.T) {
	tstest.CheckImports(t, ".", "urfave/cli", "BurntSushi/toml", "internal/cli")
}
