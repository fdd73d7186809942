package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ucli "github.com/urfave/cli/v2"

	"github.com/skywire-mesh/skywire/apps/socks"
	"github.com/skywire-mesh/skywire/apps/vpn"
	"github.com/skywire-mesh/skywire/internal/cli/config"
	"github.com/skywire-mesh/skywire/internal/cli/rolectl"
	"github.com/skywire-mesh/skywire/internal/metrics"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/messenger"
	"github.com/skywire-mesh/skywire/messenger/nodedir"
	"github.com/skywire-mesh/skywire/node"
	"github.com/skywire-mesh/skywire/node/nodename"
)

// appRole is a role that runs one app of the mesh: it loads the config,
// then runs with the signal client every role embeds. flags are what a
// launcher passes per instance (they override the config file's values);
// the role's stats subcommand takes --state-dir too.
func appRole(e *env, name, usage string, flags []ucli.Flag, run func(ctx context.Context, c *ucli.Context, f *config.File, log *slog.Logger) error) *ucli.Command {
	return &ucli.Command{
		Name:  name,
		Usage: usage,
		Description: `Flags override the config file's [` + strings.ReplaceAll(name, "-", "_") + `] values for this instance, so
several instances can run from one config (e.g. two clients on different
listen addresses, mesh ports and state directories).`,
		Flags: flags,
		Action: func(c *ucli.Context) error {
			f, err := e.roleConfig(c)
			if err != nil {
				return err
			}
			return e.runRole(c, name, func(ctx context.Context, log *slog.Logger) error { return run(ctx, c, f, log) })
		},
	}
}

// Per-instance flags of the app roles (`back-quoted` words are the
// placeholders --help shows).
var (
	appNodeFlag = &ucli.StringFlag{Name: "node", Aliases: []string{"profile"}, DefaultText: "the section's node",
		Usage: "node `PROFILE` whose app socket to register on: \"\" is [node], NAME is [nodes.NAME] (overrides node and node_socket)"}
	appPortFlag = &ucli.UintFlag{Name: "port", DefaultText: "the section's port",
		Usage: "the mesh `PORT` this instance registers (overrides port)"}
	appStateDirFlag = &ucli.StringFlag{Name: "state-dir", TakesFile: true, DefaultText: "viscript.state_dir, $SKYWIRE_STATE_DIR, /var/lib/skywire for root, else ~/.local/state/skywire",
		Usage: "this instance's state `DIR`: its ROLE.ctl (read by ROLE stats --state-dir DIR) and vpn-server's DIR/vpn/leases.json"}
	appServerFlag  = &ucli.StringFlag{Name: "server", Usage: "`PUBKEY` (pk:…) of the server's node (overrides server)"}
	appListenFlag  = &ucli.StringFlag{Name: "listen", Usage: "local SOCKS5 listen address `HOST:PORT` (overrides listen)"}
	appTunFlag     = &ucli.StringFlag{Name: "tun", Usage: "TUN device `NAME` (overrides tun)"}
	appMetricsFlag = &ucli.StringFlag{Name: "metrics", DefaultText: "the section's metrics",
		Usage: "serve Prometheus metrics on `HOST:PORT` (overrides metrics; docs/metrics.md)"}
)

// metricsAddr is --metrics if set (checked like the config's), else the
// section's metrics.
func metricsAddr(c *ucli.Context, section string) (string, error) {
	if !c.IsSet("metrics") {
		return section, nil
	}
	addr := c.String("metrics")
	if err := config.CheckMetricsAddr(addr); err != nil {
		return "", fmt.Errorf("--metrics: %w", err)
	}
	return addr, nil
}

// appStateDir is an app instance's state directory: --state-dir, else the
// state directory every role uses (viscript.state_dir or the default).
func appStateDir(c *ucli.Context, f *config.File) string {
	if sd := flagString(c, "state-dir"); sd != "" {
		return sd
	}
	return f.StateDir()
}

// appNode applies --node to an app section's node (clearing the section's
// node_socket, which would otherwise win) and resolves the app socket.
func appNode(c *ucli.Context, f *config.File, table string, an config.AppNode, nodeSocket string) (string, error) {
	if !c.IsSet("node") {
		sock, _, err := f.NodeSockets(table, an, nodeSocket)
		return sock, err
	}
	an.Node = c.String("node")
	sock, _, err := f.NodeSockets(table, an, "")
	if err != nil {
		return "", fmt.Errorf("--node %q: %w", an.Node, err)
	}
	return sock, nil
}

// flagPort returns --port if set (1..65535), else def.
func flagPort(c *ucli.Context, def uint16) (uint16, error) {
	if !c.IsSet("port") {
		return def, nil
	}
	p := c.Uint("port")
	if p == 0 || p > 65535 {
		return 0, fmt.Errorf("--port %d: want a mesh port from 1 to 65535", p)
	}
	return uint16(p), nil
}

// appFlags applies the flags every app role takes to its config: --node
// to its node socket (appNode, for the config table and its node keys
// an), --server to its server key (when server is not nil) and --port to
// its mesh port.
func appFlags(c *ucli.Context, f *config.File, table string, an config.AppNode, sock *string, server *keys.PublicKey, port *uint16) error {
	var err error
	if *sock, err = appNode(c, f, table, an, *sock); err != nil {
		return err
	}
	if server != nil {
		if *server, err = flagServer(c, *server); err != nil {
			return err
		}
	}
	*port, err = flagPort(c, *port)
	return err
}

// flagServer returns --server if set, else def.
func flagServer(c *ucli.Context, def keys.PublicKey) (keys.PublicKey, error) {
	if !c.IsSet("server") {
		return def, nil
	}
	k, err := keys.ParsePublicKey(c.String("server"))
	if err != nil {
		return keys.PublicKey{}, fmt.Errorf("--server: %w", err)
	}
	return k, nil
}

// statsApp is what the SOCKS and VPN roles have in common: they run
// until ctx ends and count their connections or clients.
type statsApp[T any] interface {
	Run(ctx context.Context) error
	Stats() T
}

// runWithStats runs app and serves its Stats on STATE/NAME.ctl, where
// `skywire NAME stats` reads them.
func runWithStats[T any](ctx context.Context, stateDir, name string, app statsApp[T], log *slog.Logger) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	srv, err := rolectl.Listen(statsSocket(stateDir, name), map[string]rolectl.Handler{
		"/stats": func(*http.Request) (any, error) { return app.Stats(), nil },
	}, log)
	if err != nil {
		return err
	}
	defer srv.Close()
	return app.Run(ctx)
}

func statsSocket(stateDir, name string) string { return filepath.Join(stateDir, name+".ctl") }

// statsCommand is `skywire NAME stats`: counters of the running app, per
// connection or per client, as JSON.
func statsCommand(e *env, name string) *ucli.Command {
	return &ucli.Command{
		Name:  "stats",
		Usage: "counters of the running " + name + ": bytes each way, open streams, per connection or client (JSON)",
		Flags: []ucli.Flag{appStateDirFlag},
		Action: func(c *ucli.Context) error {
			f, err := e.loadConfig(c)
			if err != nil {
				return err
			}
			var v json.RawMessage
			if err := rolectl.Get(c.Context, statsSocket(appStateDir(c, f), name), "/stats", &v); err != nil {
				return err
			}
			var out bytes.Buffer
			json.Indent(&out, v, "", "  ")
			out.WriteByte('\n')
			_, err = out.WriteTo(e.stdout)
			return err
		},
	}
}

func withStats(e *env, cmd *ucli.Command) *ucli.Command {
	cmd.Subcommands = append(cmd.Subcommands, statsCommand(e, cmd.Name))
	return cmd
}

// statsRole is the role of an app that counts its connections or
// clients: conf is its config with the command line's flags applied,
// start makes the app, which then runs with its Stats served for
// `skywire NAME stats` and, if its section's metrics (or --metrics) says
// where, as Prometheus metrics by the collector collect makes.
func statsRole[T, C any, A statsApp[T]](e *env, name, usage string, flags []ucli.Flag,
	conf func(*ucli.Context, *config.File) (C, error), start func(context.Context, C, *slog.Logger) (A, error),
	section func(*config.File) config.RoleMetrics, collect func(A) prometheus.Collector) *ucli.Command {
	return withStats(e, appRole(e, name, usage, append(flags, appMetricsFlag),
		func(ctx context.Context, c *ucli.Context, f *config.File, log *slog.Logger) error {
			cfg, err := conf(c, f)
			if err != nil {
				return err
			}
			maddr, err := metricsAddr(c, section(f).Metrics)
			if err != nil {
				return err
			}
			app, err := start(ctx, cfg, log)
			if err != nil {
				return err
			}
			ms, err := serveMetrics(maddr, collect(app), log)
			if err != nil {
				if cl, ok := any(app).(io.Closer); ok {
					cl.Close()
				}
				return err
			}
			defer ms.Close()
			return runWithStats[T](ctx, appStateDir(c, f), name, app, log)
		}))
}

// socksClientConfig is [socks_client] with the command line's flags applied.
func socksClientConfig(c *ucli.Context, f *config.File) (socks.ClientConfig, error) {
	cfg := f.SocksClient.ClientConfig
	if err := appFlags(c, f, "socks_client", f.SocksClient.AppNode, &cfg.NodeSocket, &cfg.Server, &cfg.Port); err != nil {
		return cfg, err
	}
	if c.IsSet("listen") {
		cfg.Listen = c.String("listen")
		if _, port, err := net.SplitHostPort(cfg.Listen); err != nil || port == "" {
			return cfg, fmt.Errorf("--listen %q: want HOST:PORT, e.g. %q", cfg.Listen, socks.DefaultListen)
		}
	}
	return cfg, nil
}

func socksClientCommand(e *env) *ucli.Command {
	return statsRole[socks.Stats](e, "socks-client", "a local SOCKS5 proxy whose connections cross the mesh to a socks-server",
		[]ucli.Flag{appListenFlag, appServerFlag, appPortFlag, appNodeFlag, appStateDirFlag}, socksClientConfig, socks.NewClient,
		func(f *config.File) config.RoleMetrics { return f.SocksClient.RoleMetrics },
		func(c *socks.Client) prometheus.Collector { return metrics.SocksClient(c) })
}

// socksServerConfig is [socks_server] with the command line's flags applied.
func socksServerConfig(c *ucli.Context, f *config.File) (socks.ServerConfig, error) {
	cfg := f.SocksServer.ServerConfig
	err := appFlags(c, f, "socks_server", f.SocksServer.AppNode, &cfg.NodeSocket, nil, &cfg.Port)
	return cfg, err
}

func socksServerCommand(e *env) *ucli.Command {
	return statsRole[socks.Stats](e, "socks-server", "the mesh end of the SOCKS proxy: dials targets for allowed clients",
		[]ucli.Flag{appPortFlag, appNodeFlag, appStateDirFlag}, socksServerConfig,
		func(ctx context.Context, cfg socks.ServerConfig, log *slog.Logger) (*socks.Server, error) {
			return socks.NewServer(ctx, cfg, log)
		},
		func(f *config.File) config.RoleMetrics { return f.SocksServer.RoleMetrics },
		func(s *socks.Server) prometheus.Collector { return metrics.SocksServer(s) })
}

// vpnClientConfig is [vpn_client] with the command line's flags applied.
func vpnClientConfig(c *ucli.Context, f *config.File) (vpn.ClientConfig, error) {
	cfg := f.VPNClient.ClientConfig
	if err := appFlags(c, f, "vpn_client", f.VPNClient.AppNode, &cfg.NodeSocket, &cfg.Server, &cfg.Port); err != nil {
		return cfg, err
	}
	if c.IsSet("tun") {
		cfg.Tun = c.String("tun")
	}
	if len(cfg.Exclude) == 0 {
		// The node's own links must stay outside the tunnel
		// (routes = "everything" would otherwise capture them).
		profile := f.VPNClient.Node
		if c.IsSet("node") {
			profile = c.String("node")
		}
		if ncfg, _, err := f.NodeProfile(profile); err == nil {
			for _, p := range append(append([]node.Peer{}, ncfg.Peers...), ncfg.Managers...) {
				cfg.Exclude = append(cfg.Exclude, p.Addr)
			}
		}
	}
	return cfg, nil
}

func vpnClientCommand(e *env) *ucli.Command {
	return statsRole[vpn.Stats](e, "vpn-client", "an IP tunnel over the mesh to a vpn-server (Linux, root)",
		[]ucli.Flag{appServerFlag, appPortFlag, appTunFlag, appNodeFlag, appStateDirFlag}, vpnClientConfig,
		func(ctx context.Context, cfg vpn.ClientConfig, log *slog.Logger) (*vpn.Client, error) {
			return vpn.NewClient(cfg, log)
		},
		func(f *config.File) config.RoleMetrics { return f.VPNClient.RoleMetrics },
		func(c *vpn.Client) prometheus.Collector { return metrics.VPNClient(c) })
}

// vpnServerConfig is [vpn_server] with the command line's flags applied.
// The leases live in vpn_server.state_dir if set, else in STATE/vpn of the
// instance's state directory (--state-dir, viscript.state_dir or the
// default every role uses); --state-dir wins over vpn_server.state_dir.
func vpnServerConfig(c *ucli.Context, f *config.File) (vpn.ServerConfig, error) {
	cfg := f.VPNServer.ServerConfig
	if err := appFlags(c, f, "vpn_server", f.VPNServer.AppNode, &cfg.NodeSocket, nil, &cfg.Port); err != nil {
		return cfg, err
	}
	if c.IsSet("tun") {
		cfg.Tun = c.String("tun")
	}
	if cfg.StateDir == "" || flagString(c, "state-dir") != "" {
		cfg.StateDir = filepath.Join(appStateDir(c, f), "vpn")
	}
	return cfg, nil
}

func vpnServerCommand(e *env) *ucli.Command {
	return statsRole[[]vpn.Stats](e, "vpn-server", "the server end of the IP tunnel: TUN device, address pool, forwarding (Linux, root)",
		[]ucli.Flag{appPortFlag, appTunFlag, appNodeFlag, appStateDirFlag}, vpnServerConfig,
		func(ctx context.Context, cfg vpn.ServerConfig, log *slog.Logger) (*vpn.Server, error) {
			return vpn.NewServer(cfg, log)
		},
		func(f *config.File) config.RoleMetrics { return f.VPNServer.RoleMetrics },
		func(s *vpn.Server) prometheus.Collector { return metrics.VPNServer(s) })
}

// messengerConfig resolves [messenger] for the daemon and its clients.
func (e *env) messengerConfig(c *ucli.Context) (messenger.Config, error) {
	f, err := e.loadConfig(c)
	if err != nil {
		return messenger.Config{}, err
	}
	return messengerConfigOf(f)
}

// messengerConfigOf resolves f's [messenger].
func messengerConfigOf(f *config.File) (messenger.Config, error) {
	cfg := f.Messenger.Config
	appSock, ctlSock, err := f.NodeSockets("messenger", f.Messenger.AppNode, cfg.NodeSocket)
	if err != nil {
		return cfg, err
	}
	cfg.NodeSocket = appSock
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Join(f.StateDir(), "messenger")
	}
	cfg.Directory = nodedir.New(ctlSource{ctlSock})
	cfg.Dashboard = f.Viscript.Web // the chat page links peers to it
	return cfg, nil
}

// lateDaemon is the messenger daemon once it runs; before, its Stats
// are zero.
type lateDaemon struct {
	d atomic.Pointer[messenger.Daemon]
}

func (l *lateDaemon) set(d messenger.Daemon) { l.d.Store(&d) }

func (l *lateDaemon) Stats() messenger.Stats {
	if d := l.d.Load(); d != nil {
		return d.Stats()
	}
	return messenger.Stats{}
}

func messengerCommand(e *env) *ucli.Command {
	withCfg := func(run func(c *ucli.Context, ctx context.Context, cfg messenger.Config) error) ucli.ActionFunc {
		return func(c *ucli.Context) error {
			cfg, err := e.messengerConfig(c)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(c.Context)
			defer cancel()
			return run(c, ctx, cfg)
		}
	}
	return &ucli.Command{
		Name:  "messenger",
		Usage: "chat by public key, and look at anyone's cluster",
		Description: `Without a command: an interactive chat with the running messenger daemon
(/list, /open PUBKEY|NICK|NODE-NAME, /nick PUBKEY NAME, text to send). The daemon
is "skywire messenger serve" (viscript starts it); it also serves a chat page
on [messenger] web (default 127.0.0.1:8001).`,
		Action: withCfg(func(c *ucli.Context, ctx context.Context, cfg messenger.Config) error {
			if c.NArg() > 0 {
				return unknownSubcommand(c)
			}
			return messenger.Chat(ctx, cfg, e.stdin, e.stdout)
		}),
		Subcommands: []*ucli.Command{
			{
				Name:    "serve",
				Aliases: []string{"daemon"},
				Usage:   "run the messenger daemon (delivery, history, web page)",
				Flags:   []ucli.Flag{appMetricsFlag},
				Action: func(c *ucli.Context) error {
					f, err := e.loadConfig(c)
					if err != nil {
						return err
					}
					cfg, err := messengerConfigOf(f)
					if err != nil {
						return err
					}
					maddr, err := metricsAddr(c, f.Messenger.Metrics)
					if err != nil {
						return err
					}
					return e.runRole(c, "messenger", func(ctx context.Context, log *slog.Logger) error {
						// The endpoint listens first (a bad address fails
						// before the daemon starts) and shows the daemon's
						// counters once it runs.
						var d lateDaemon
						cfg.OnStart = d.set
						ms, err := serveMetrics(maddr, metrics.Messenger(&d), log)
						if err != nil {
							return err
						}
						defer ms.Close()
						return messenger.Run(ctx, cfg, log)
					})
				},
			},
			{
				Name: "send", Usage: "send TEXT to PUBKEY (or a nickname, or a node name); queued while the peer is offline", ArgsUsage: "PUBKEY|NICK|NAME TEXT…",
				Action: withCfg(func(c *ucli.Context, ctx context.Context, cfg messenger.Config) error {
					if c.NArg() < 2 {
						return ucli.Exit("usage: skywire messenger send PUBKEY|NICK|NAME TEXT…", 2)
					}
					m, err := withPeer(ctx, e, c, c.Args().First(), func(who string) (messenger.Message, error) {
						return messenger.Send(ctx, cfg, who, strings.Join(c.Args().Slice()[1:], " "))
					})
					if err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "%s %s\n", m.ID, m.State)
					return nil
				}),
			},
			{
				Name: "read", Usage: "print messages (of one conversation, or all)", ArgsUsage: "[PUBKEY|NICK|NAME]", Flags: []ucli.Flag{jsonFlag},
				Action: withCfg(func(c *ucli.Context, ctx context.Context, cfg messenger.Config) error {
					ms, err := withPeer(ctx, e, c, c.Args().First(), func(who string) ([]messenger.Message, error) {
						return messenger.Read(ctx, cfg, who)
					})
					if err != nil {
						return err
					}
					return e.printOr(c, ms, func() error { return messenger.WriteMessages(e.stdout, ms) })
				}),
			},
			{
				Name: "conversations", Usage: "one line per conversation", Flags: []ucli.Flag{jsonFlag},
				Action: withCfg(func(c *ucli.Context, ctx context.Context, cfg messenger.Config) error {
					cs, err := messenger.Conversations(ctx, cfg)
					if err != nil {
						return err
					}
					return e.printOr(c, cs, func() error { return messenger.WriteConversations(e.stdout, cs) })
				}),
			},
			{
				Name: "nick", Usage: "give PUBKEY a local nickname (- removes it)", ArgsUsage: "PUBKEY|NICK|NAME NICKNAME",
				Action: withCfg(func(c *ucli.Context, ctx context.Context, cfg messenger.Config) error {
					if err := needArgs(c, 2); err != nil {
						return err
					}
					_, err := withPeer(ctx, e, c, c.Args().Get(0), func(who string) (struct{}, error) {
						return struct{}{}, messenger.SetNick(ctx, cfg, who, c.Args().Get(1))
					})
					return err
				}),
			},
			{
				Name: "peers", Usage: "online nodes from the manager's directory", Flags: []ucli.Flag{jsonFlag},
				Action: withCfg(func(c *ucli.Context, ctx context.Context, cfg messenger.Config) error {
					ps, err := messenger.Peers(ctx, cfg)
					if err != nil {
						return err
					}
					return e.printOr(c, ps, func() error { return messenger.WritePeers(e.stdout, ps, time.Now()) })
				}),
			},
			{
				Name: "whois", Usage: "a node's cluster: its apps, links and the route to it", ArgsUsage: "PUBKEY|NICK|NAME", Flags: []ucli.Flag{jsonFlag},
				Action: withCfg(func(c *ucli.Context, ctx context.Context, cfg messenger.Config) error {
					if err := needArgs(c, 1); err != nil {
						return err
					}
					cl, err := withPeer(ctx, e, c, c.Args().First(), func(who string) (messenger.Cluster, error) {
						return messenger.Whois(ctx, cfg, who)
					})
					if err != nil {
						return err
					}
					return e.printOr(c, cl, func() error { return messenger.WriteCluster(e.stdout, cl, time.Now()) })
				}),
			},
		},
	}
}

// withPeer runs op with who, a PUBKEY or NICK as the messenger daemon
// resolves it; when the daemon knows no such nickname, who is taken as a
// node NAME and resolved through the node's directory (claimed by exactly
// one node, else an error listing the candidates), and op runs again with
// the key. A local nickname, which the user chose, wins over a name,
// which a node claims.
func withPeer[T any](ctx context.Context, e *env, c *ucli.Context, who string, op func(who string) (T, error)) (T, error) {
	v, err := op(who)
	if who == "" || !errors.Is(err, messenger.ErrUnknownPeer) {
		return v, err
	}
	f, ferr := e.loadConfig(c)
	if ferr != nil {
		return v, err
	}
	_, ctlSock, serr := f.NodeSockets("messenger", f.Messenger.AppNode, f.Messenger.NodeSocket)
	if serr != nil {
		return v, err
	}
	n, rerr := resolveNode(ctx, ctlSock, who)
	if rerr != nil {
		if errors.Is(rerr, nodename.ErrBadArgument) {
			return v, err
		}
		return v, fmt.Errorf("%q is not a nickname; as a node name: %w", who, rerr)
	}
	return op(n.Key.String())
}

// printOr prints v as JSON with --json, else calls text.
func (e *env) printOr(c *ucli.Context, v any, text func() error) error {
	if flagBool(c, "json") {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return text()
}
