package socks

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/skywire-mesh/skywire/apps/internal/exitpolicy"
	"github.com/skywire-mesh/skywire/keys"
)

// ErrConfig is wrapped by the errors of ClientConfig.Validate and
// ServerConfig.Validate; the message names the bad key.
var ErrConfig = errors.New("socks config")

// Defaults.
const (
	DefaultListen         = "127.0.0.1:1080"
	DefaultServerPort     = 1080 // mesh port of socks-server
	DefaultClientUDPPort  = 1081 // mesh port of socks-client for UDP ASSOCIATE
	DefaultConnectTimeout = 30 * time.Second
	DefaultDialTimeout    = 10 * time.Second
	// DefaultHandshakeTimeout bounds a SOCKS handshake on the client and
	// the arrival of a stream header on the server.
	DefaultHandshakeTimeout = 10 * time.Second
)

// App names registered with the node.
const (
	ClientAppName = "socks-client"
	ServerAppName = "socks-server"
)

// ClientConfig configures socks-client; the command layer decodes the
// [socks_client] table of skywire.toml into it.
type ClientConfig struct {
	// NodeSocket is the path of the local node's app socket; empty:
	// $SKYWIRE_NODE_SOCKET.
	NodeSocket string `toml:"node_socket"`
	// Listen is the local TCP address of the SOCKS5 listener. UDP
	// associations bind to the same IP.
	Listen string `toml:"listen"`
	// Server is the public key of the node running socks-server.
	Server keys.PublicKey `toml:"server"`
	// ServerPort is socks-server's mesh port.
	ServerPort uint16 `toml:"server_port"`
	// Port is the mesh port this client registers to receive UDP
	// replies; 0 disables UDP ASSOCIATE (command not supported).
	Port uint16 `toml:"port"`
	// Username and Password, when set, are required from SOCKS
	// applications (RFC 1929); both or neither, at most 255 bytes each.
	Username string `toml:"username"`
	Password string `toml:"password"`
	// ConnectTimeout bounds reaching the server and its answer for one
	// connection (0: DefaultConnectTimeout).
	ConnectTimeout time.Duration `toml:"connect_timeout"`
	// HandshakeTimeout bounds an application's SOCKS handshake (0:
	// DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration `toml:"handshake_timeout"`
}

// DefaultClientConfig returns the defaults; Server must still be set.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		Listen:           DefaultListen,
		ServerPort:       DefaultServerPort,
		Port:             DefaultClientUDPPort,
		ConnectTimeout:   DefaultConnectTimeout,
		HandshakeTimeout: DefaultHandshakeTimeout,
	}
}

// Validate fills zero durations with defaults and returns an error
// naming the first bad key.
func (c *ClientConfig) Validate() error {
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, DefaultConnectTimeout)
	c.HandshakeTimeout = cmp.Or(c.HandshakeTimeout, DefaultHandshakeTimeout)
	switch {
	case c.Listen == "":
		return fmt.Errorf("%w: socks_client.listen is empty (want host:port, e.g. %q)", ErrConfig, DefaultListen)
	case validHostPort(c.Listen) != nil:
		return fmt.Errorf("%w: socks_client.listen = %q: %w", ErrConfig, c.Listen, validHostPort(c.Listen))
	case c.Server.IsZero():
		return fmt.Errorf("%w: socks_client.server: no server node key (pk:...)", ErrConfig)
	case c.ServerPort == 0:
		return fmt.Errorf("%w: socks_client.server_port is 0", ErrConfig)
	case (c.Username == "") != (c.Password == ""):
		return fmt.Errorf("%w: socks_client.username and socks_client.password: set both or neither", ErrConfig)
	case len(c.Username) > 255:
		return fmt.Errorf("%w: socks_client.username is longer than 255 bytes", ErrConfig)
	case len(c.Password) > 255:
		return fmt.Errorf("%w: socks_client.password is longer than 255 bytes", ErrConfig)
	case c.ConnectTimeout < 0:
		return fmt.Errorf("%w: socks_client.connect_timeout = %v is negative", ErrConfig, c.ConnectTimeout)
	case c.HandshakeTimeout < 0:
		return fmt.Errorf("%w: socks_client.handshake_timeout = %v is negative", ErrConfig, c.HandshakeTimeout)
	}
	return nil
}

func validHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// ServerConfig configures socks-server; the command layer decodes the
// [socks_server] table of skywire.toml into it.
type ServerConfig struct {
	// NodeSocket is the path of the local node's app socket; empty:
	// $SKYWIRE_NODE_SOCKET.
	NodeSocket string `toml:"node_socket"`
	// Port is the mesh port the server registers.
	Port uint16 `toml:"port"`
	// Allow lists the client node keys allowed to use the server.
	Allow []keys.PublicKey `toml:"allow"`
	// AllowAll allows every node of the mesh; it must be set explicitly
	// and Allow must then be empty.
	AllowAll bool `toml:"allow_all"`
	// DialTimeout bounds resolving and dialing a target (0:
	// DefaultDialTimeout).
	DialTimeout time.Duration `toml:"dial_timeout"`
	// HandshakeTimeout bounds the arrival of a stream's header (0:
	// DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration `toml:"handshake_timeout"`
	// Resolver, if set, is the DNS server ("IP:PORT") the server asks
	// for the addresses of target names, instead of the host's resolver
	// (/etc/resolv.conf). /etc/hosts is still read first.
	Resolver string `toml:"resolver"`
	// AllowDestinations opens destinations the default policy refuses
	// (the server host's loopback, link-local, private ranges, own
	// addresses, ...); DenyDestinations closes destinations, and wins.
	// Entries are PREFIX[:PORT[-PORT]]: "10.0.0.0/8",
	// "192.168.1.10/32:22", "0.0.0.0/0:25", "::1/128:8080". See package
	// apps/internal/exitpolicy.
	AllowDestinations []string `toml:"allow_destinations"`
	DenyDestinations  []string `toml:"deny_destinations"`
}

// DefaultServerConfig returns the defaults. They allow nobody: set Allow
// or AllowAll.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{Port: DefaultServerPort, DialTimeout: DefaultDialTimeout, HandshakeTimeout: DefaultHandshakeTimeout}
}

// Validate fills zero durations with defaults and returns an error
// naming the first bad key.
func (c *ServerConfig) Validate() error {
	c.DialTimeout = cmp.Or(c.DialTimeout, DefaultDialTimeout)
	c.HandshakeTimeout = cmp.Or(c.HandshakeTimeout, DefaultHandshakeTimeout)
	switch {
	case c.Port == 0:
		return fmt.Errorf("%w: socks_server.port is 0", ErrConfig)
	case c.DialTimeout < 0:
		return fmt.Errorf("%w: socks_server.dial_timeout = %v is negative", ErrConfig, c.DialTimeout)
	case c.HandshakeTimeout < 0:
		return fmt.Errorf("%w: socks_server.handshake_timeout = %v is negative", ErrConfig, c.HandshakeTimeout)
	case !c.AllowAll && len(c.Allow) == 0:
		return fmt.Errorf("%w: socks_server.allow is empty: list client keys, or set allow_all = true to serve every node", ErrConfig)
	case c.AllowAll && len(c.Allow) > 0:
		return fmt.Errorf("%w: socks_server.allow_all = true with a non-empty allow list: choose one", ErrConfig)
	}
	for i, k := range c.Allow {
		if k.IsZero() {
			return fmt.Errorf("%w: socks_server.allow[%d] is the zero key", ErrConfig, i)
		}
	}
	if c.Resolver != "" {
		if ap, err := netip.ParseAddrPort(c.Resolver); err != nil || ap.Port() == 0 {
			return fmt.Errorf("%w: socks_server.resolver = %q: want a DNS server's IP:PORT, e.g. \"127.0.0.1:53\" or \"[::1]:5353\"", ErrConfig, c.Resolver)
		}
	}
	if err := exitpolicy.Validate("socks_server", c.AllowDestinations, c.DenyDestinations); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}
