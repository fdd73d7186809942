package messenger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/skywire-mesh/skywire/internal/webguard"
	"github.com/skywire-mesh/skywire/keys"
)

// DefaultPort is the mesh port messengers listen on.
const DefaultPort = 7

// AppName is the name the messenger registers with its node.
const AppName = "messenger"

// ControlSocketName is the control socket's name in the state directory.
const ControlSocketName = "messenger.sock"

// ErrConfig is wrapped by Validate errors.
var ErrConfig = errors.New("messenger config")

// Config configures the messenger daemon and the client functions. The
// command layer decodes the [messenger] table of skywire.toml into it.
type Config struct {
	// NodeSocket is the local node's app socket; empty: $SKYWIRE_NODE_SOCKET.
	NodeSocket string `toml:"node_socket"`
	// Port is the mesh port of the messenger (the same on every node).
	Port uint16 `toml:"port"`
	// StateDir holds the history (messages.log) and the control socket;
	// empty: $SKYWIRE_STATE_DIR/messenger, else
	// $XDG_STATE_HOME/skywire/messenger (~/.local/state/skywire/messenger).
	StateDir string `toml:"state_dir"`
	// Web is the address of the chat page; empty: no web page.
	Web string `toml:"web"`
	// WebAllowRemote allows a Web address that is not loopback. The page
	// has no login: anyone who reaches it reads and sends as this node.
	WebAllowRemote bool `toml:"web_allow_remote"`
	// MaxMessage is the largest message text in bytes (sent and accepted).
	MaxMessage int `toml:"max_message"`
	// RateLimit is how many messages per second one key may deliver here
	// (sustained); RateBurst how many at once.
	RateLimit float64 `toml:"rate_limit"`
	RateBurst int     `toml:"rate_burst"`
	// RetryMin and RetryMax bound the exponential backoff between delivery
	// attempts to an unreachable peer.
	RetryMin time.Duration `toml:"retry_min"`
	RetryMax time.Duration `toml:"retry_max"`
	// DeliveryTimeout bounds one delivery attempt (dial and acks).
	DeliveryTimeout time.Duration `toml:"delivery_timeout"`

	// Dashboard is the address (HOST:PORT) of viscript's dashboard
	// ([viscript] web), set by the command layer: the chat page links
	// each conversation to that peer's cluster there. Empty: no link.
	Dashboard string `toml:"-"`
	// Directory answers peers and whois; nil: those commands fail with
	// ErrNoDirectory.
	Directory Directory `toml:"-"`
	// WebListener, if set, serves the web page instead of listening on Web
	// (tests use it); Run closes it.
	WebListener net.Listener `toml:"-"`
	// OnStart, if set, is called by Run once the daemon runs, with it
	// (the command layer serves its Stats as metrics).
	OnStart func(Daemon) `toml:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Port:            DefaultPort,
		Web:             "127.0.0.1:8001",
		MaxMessage:      16 << 10,
		RateLimit:       2,
		RateBurst:       20,
		RetryMin:        time.Second,
		RetryMax:        5 * time.Minute,
		DeliveryTimeout: 30 * time.Second,
	}
}

// maxMessageLimit keeps a message within one wire frame.
const maxMessageLimit = 60 << 10

// Validate checks c, filling zero values with defaults, and names the
// first bad key.
func (c *Config) Validate() error {
	d := DefaultConfig()
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: messenger.%s: %s", ErrConfig, key, fmt.Sprintf(format, a...))
	}
	c.Port = cmp.Or(c.Port, d.Port)
	c.MaxMessage = cmp.Or(c.MaxMessage, d.MaxMessage)
	c.RateLimit = cmp.Or(c.RateLimit, d.RateLimit)
	c.RateBurst = cmp.Or(c.RateBurst, d.RateBurst)
	c.RetryMin = cmp.Or(c.RetryMin, d.RetryMin)
	c.RetryMax = cmp.Or(c.RetryMax, d.RetryMax)
	c.DeliveryTimeout = cmp.Or(c.DeliveryTimeout, d.DeliveryTimeout)
	switch {
	case c.MaxMessage < 0 || c.MaxMessage > maxMessageLimit:
		return bad("max_message", "%d is outside 1..%d bytes", c.MaxMessage, maxMessageLimit)
	case c.RateLimit < 0:
		return bad("rate_limit", "must be positive, got %v", c.RateLimit)
	case c.RateBurst < 0:
		return bad("rate_burst", "must be positive, got %d", c.RateBurst)
	case c.RetryMin < 0:
		return bad("retry_min", "must be positive, got %v", c.RetryMin)
	case c.RetryMax < c.RetryMin:
		return bad("retry_max", "%v is below retry_min %v", c.RetryMax, c.RetryMin)
	case c.DeliveryTimeout < 0:
		return bad("delivery_timeout", "must be positive, got %v", c.DeliveryTimeout)
	}
	if c.Web != "" && c.WebListener == nil {
		host, _, err := net.SplitHostPort(c.Web)
		if err != nil {
			return bad("web", "%q is not host:port: %v", c.Web, err)
		}
		if !c.WebAllowRemote && !isLoopback(host) {
			return bad("web", "%q is not a loopback address; set messenger.web_allow_remote = true to serve the page (which has no login) beyond this machine", c.Web)
		}
	}
	if _, err := c.stateDir(); err != nil {
		return bad("state_dir", "%v", err)
	}
	return nil
}

func isLoopback(host string) bool { return webguard.IsLoopback(host) }

// stateDir resolves StateDir.
func (c *Config) stateDir() (string, error) {
	if c.StateDir != "" {
		return c.StateDir, nil
	}
	if d := os.Getenv("SKYWIRE_STATE_DIR"); d != "" {
		return filepath.Join(d, "messenger"), nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "skywire", "messenger"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: set state_dir, $SKYWIRE_STATE_DIR or $HOME: %w", err)
	}
	return filepath.Join(home, ".local", "state", "skywire", "messenger"), nil
}

// ControlSocket is the path of the daemon's control socket.
func (c *Config) ControlSocket() (string, error) {
	d, err := c.stateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, ControlSocketName), nil
}

// Directory is the view of the manager's directory the messenger shows
// (peers, whois). The command layer implements it over the local node's
// control socket (node.Directory and node.RouteTo).
type Directory interface {
	// Nodes lists the nodes registered with the manager.
	Nodes(ctx context.Context) ([]NodeEntry, error)
	// Whois returns the cluster of pk and the route to it from here; an
	// unknown key gives an error wrapping ErrUnknownNode.
	Whois(ctx context.Context, pk keys.PublicKey) (Cluster, error)
	// ResolveName returns the node that claims name ([node] name) as
	// `skywire ping NAME` resolves it (node/nodename): exactly one node
	// must claim it, else the error lists the candidates. Text that is
	// not a node name at all gives an error wrapping ErrNotNodeName.
	ResolveName(ctx context.Context, name string) (NodeEntry, error)
}

// App is an app a node offers on a mesh port.
type App struct {
	Name string `json:"name"`
	Port uint16 `json:"port"`
}

// Link is one link of a node with its measured round-trip time.
type Link struct {
	Peer keys.PublicKey `json:"peer"`
	Nick string         `json:"nick,omitempty"` // filled by the messenger
	RTT  time.Duration  `json:"rtt"`
}

// NodeEntry is one node in the directory (node.DirectoryEntry).
type NodeEntry struct {
	Key keys.PublicKey `json:"key"`
	// Name is the name the node claims ([node] name); a claim, not an
	// identity: another node may claim it too.
	Name  string   `json:"name,omitempty"`
	Nick  string   `json:"nick,omitempty"` // filled by the messenger from the address book
	Addrs []string `json:"addrs,omitempty"`
	Apps  []App    `json:"apps"` // empty when the node keeps its app list private
	// AppsHidden says the node keeps its app list private (so an empty
	// Apps does not mean it runs none).
	AppsHidden bool      `json:"apps_hidden,omitempty"`
	Links      []Link    `json:"links"` // the node's links
	Since      time.Time `json:"since"` // when it registered with the manager
}

// Uptime is how long the node has been registered at now.
func (e NodeEntry) Uptime(now time.Time) time.Duration {
	if e.Since.IsZero() || now.Before(e.Since) {
		return 0
	}
	return now.Sub(e.Since)
}

// Route is the path a route from this node to another would take
// (node.PathInfo).
type Route struct {
	Hops    []keys.PublicKey `json:"hops"` // from this node to the remote, inclusive
	Per     []time.Duration  `json:"per"`  // RTT of each link
	Latency time.Duration    `json:"latency"`
}

// Cluster is what whois shows: a node, its apps and links, and the route
// to it from here.
type Cluster struct {
	Node     NodeEntry `json:"node"`
	Route    Route     `json:"route"`
	RouteErr string    `json:"route_error,omitempty"` // why there is no route, if so
}
