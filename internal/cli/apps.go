package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/skywire-mesh/skywire/apps/socks"
	"github.com/skywire-mesh/skywire/apps/vpn"
	"github.com/skywire-mesh/skywire/internal/cli/config"
	"github.com/skywire-mesh/skywire/internal/cli/rolectl"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/messenger"
	"github.com/skywire-mesh/skywire/messenger/nodedir"
	"github.com/skywire-mesh/skywire/node"
)

// appRole is a role that runs one app of the mesh: it loads the config,
// then runs with the signal client every role embeds.
func appRole(e *env, name, usage string, run func(ctx context.Context, f *config.File, log *slog.Logger) error) *ucli.Command {
	return &ucli.Command{
		Name:  name,
		Usage: usage,
		Action: func(c *ucli.Context) error {
			f, err := e.roleConfig(c)
			if err != nil {
				return err
			}
			return e.runRole(c, name, func(ctx context.Context, log *slog.Logger) error { return run(ctx, f, log) })
		},
	}
}

// statsApp is what the SOCKS and VPN roles have in common: they run
// until ctx ends and count their connections or clients.
type statsApp[T any] interface {
	Run(ctx context.Context) error
	Stats() T
}

// runWithStats runs app and serves its Stats on STATE/NAME.ctl, where
// `skywire NAME stats` reads them.
func runWithStats[T any](ctx context.Context, f *config.File, name string, app statsApp[T], log *slog.Logger) error {
	srv, err := rolectl.Listen(statsSocket(f, name), map[string]rolectl.Handler{
		"/stats": func(*http.Request) (any, error) { return app.Stats(), nil },
	}, log)
	if err != nil {
		return err
	}
	defer srv.Close()
	return app.Run(ctx)
}

func statsSocket(f *config.File, name string) string { return filepath.Join(f.StateDir(), name+".ctl") }

// statsCommand is `skywire NAME stats`: counters of the running app, per
// connection or per client, as JSON.
func statsCommand(e *env, name string) *ucli.Command {
	return &ucli.Command{
		Name:  "stats",
		Usage: "counters of the running " + name + ": bytes each way, open streams, per connection or client (JSON)",
		Action: func(c *ucli.Context) error {
			f, err := e.loadConfig(c)
			if err != nil {
				return err
			}
			var v json.RawMessage
			if err := rolectl.Get(c.Context, statsSocket(f, name), "/stats", &v); err != nil {
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

func socksClientCommand(e *env) *ucli.Command {
	return withStats(e, appRole(e, "socks-client", "a local SOCKS5 proxy whose connections cross the mesh to a socks-server",
		func(ctx context.Context, f *config.File, log *slog.Logger) error {
			cfg := f.SocksClient.ClientConfig
			var err error
			if cfg.NodeSocket, _, err = f.NodeSockets("socks_client", f.SocksClient.AppNode, cfg.NodeSocket); err != nil {
				return err
			}
			cl, err := socks.NewClient(ctx, cfg, log)
			if err != nil {
				return err
			}
			return runWithStats(ctx, f, "socks-client", statsApp[socks.Stats](cl), log)
		}))
}

func socksServerCommand(e *env) *ucli.Command {
	return withStats(e, appRole(e, "socks-server", "the mesh end of the SOCKS proxy: dials targets for allowed clients",
		func(ctx context.Context, f *config.File, log *slog.Logger) error {
			cfg := f.SocksServer.ServerConfig
			var err error
			if cfg.NodeSocket, _, err = f.NodeSockets("socks_server", f.SocksServer.AppNode, cfg.NodeSocket); err != nil {
				return err
			}
			srv, err := socks.NewServer(ctx, cfg, log)
			if err != nil {
				return err
			}
			return runWithStats(ctx, f, "socks-server", statsApp[socks.Stats](srv), log)
		}))
}

func vpnClientCommand(e *env) *ucli.Command {
	return withStats(e, appRole(e, "vpn-client", "an IP tunnel over the mesh to a vpn-server (Linux, root)",
		func(ctx context.Context, f *config.File, log *slog.Logger) error {
			cfg := f.VPNClient.ClientConfig
			var err error
			if cfg.NodeSocket, _, err = f.NodeSockets("vpn_client", f.VPNClient.AppNode, cfg.NodeSocket); err != nil {
				return err
			}
			if len(cfg.Exclude) == 0 {
				// The node's own links must stay outside the tunnel
				// (routes = "everything" would otherwise capture them).
				if ncfg, _, err := f.NodeProfile(f.VPNClient.Node); err == nil {
					for _, p := range append(append([]node.Peer{}, ncfg.Peers...), ncfg.Managers...) {
						cfg.Exclude = append(cfg.Exclude, p.Addr)
					}
				}
			}
			cl, err := vpn.NewClient(cfg, log)
			if err != nil {
				return err
			}
			return runWithStats(ctx, f, "vpn-client", statsApp[vpn.Stats](cl), log)
		}))
}

func vpnServerCommand(e *env) *ucli.Command {
	return withStats(e, appRole(e, "vpn-server", "the server end of the IP tunnel: TUN device, address pool, forwarding (Linux, root)",
		func(ctx context.Context, f *config.File, log *slog.Logger) error {
			cfg := f.VPNServer.ServerConfig
			var err error
			if cfg.NodeSocket, _, err = f.NodeSockets("vpn_server", f.VPNServer.AppNode, cfg.NodeSocket); err != nil {
				return err
			}
			if cfg.StateDir == "" {
				cfg.StateDir = filepath.Join(f.StateDir(), "vpn")
			}
			srv, err := vpn.NewServer(cfg, log)
			if err != nil {
				return err
			}
			return runWithStats(ctx, f, "vpn-server", statsApp[[]vpn.Stats](srv), log)
		}))
}

// messengerConfig resolves [messenger] for the daemon and its clients.
func (e *env) messengerConfig(c *ucli.Context) (messenger.Config, error) {
	f, err := e.loadConfig(c)
	if err != nil {
		return messenger.Config{}, err
	}
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
	return cfg, nil
}

// ctlSource reads a node's directory and routes over its control socket.
type ctlSource struct{ sock string }

func (s ctlSource) Directory(ctx context.Context) ([]node.DirectoryEntry, error) {
	var es []node.DirectoryEntry
	return es, rolectl.Get(ctx, s.sock, "/directory", &es)
}

func (s ctlSource) RouteTo(ctx context.Context, remote keys.PublicKey) (node.PathInfo, error) {
	var p node.PathInfo
	return p, rolectl.Get(ctx, s.sock, "/route?to="+url.QueryEscape(remote.String()), &p)
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
(/list, /open PUBKEY|NICK, /nick PUBKEY NAME, text to send). The daemon
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
				Action: func(c *ucli.Context) error {
					cfg, err := e.messengerConfig(c)
					if err != nil {
						return err
					}
					return e.runRole(c, "messenger", func(ctx context.Context, log *slog.Logger) error {
						return messenger.Run(ctx, cfg, log)
					})
				},
			},
			{
				Name: "send", Usage: "send TEXT to PUBKEY (or a nickname); queued while the peer is offline", ArgsUsage: "PUBKEY|NICK TEXT…",
				Action: withCfg(func(c *ucli.Context, ctx context.Context, cfg messenger.Config) error {
					if c.NArg() < 2 {
						return ucli.Exit("usage: skywire messenger send PUBKEY|NICK TEXT…", 2)
					}
					m, err := messenger.Send(ctx, cfg, c.Args().First(), strings.Join(c.Args().Slice()[1:], " "))
					if err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "%s %s\n", m.ID, m.State)
					return nil
				}),
			},
			{
				Name: "read", Usage: "print messages (of one conversation, or all)", ArgsUsage: "[PUBKEY|NICK]", Flags: []ucli.Flag{jsonFlag},
				Action: withCfg(func(c *ucli.Context, ctx context.Context, cfg messenger.Config) error {
					ms, err := messenger.Read(ctx, cfg, c.Args().First())
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
					return e.printOr(c, cs, func() error {
						for _, cv := range cs {
							fmt.Fprintf(e.stdout, "%+v\n", cv)
						}
						return nil
					})
				}),
			},
			{
				Name: "nick", Usage: "give PUBKEY a local nickname (- removes it)", ArgsUsage: "PUBKEY|NICK NAME",
				Action: withCfg(func(c *ucli.Context, ctx context.Context, cfg messenger.Config) error {
					if c.NArg() != 2 {
						return ucli.Exit("usage: skywire messenger nick PUBKEY|NICK NAME", 2)
					}
					return messenger.SetNick(ctx, cfg, c.Args().Get(0), c.Args().Get(1))
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
				Name: "whois", Usage: "a node's cluster: its apps, links and the route to it", ArgsUsage: "PUBKEY|NICK", Flags: []ucli.Flag{jsonFlag},
				Action: withCfg(func(c *ucli.Context, ctx context.Context, cfg messenger.Config) error {
					if c.NArg() != 1 {
						return ucli.Exit("usage: skywire messenger whois PUBKEY|NICK", 2)
					}
					cl, err := messenger.Whois(ctx, cfg, c.Args().First())
					if err != nil {
						return err
					}
					return e.printOr(c, cl, func() error { return messenger.WriteCluster(e.stdout, cl, time.Now()) })
				}),
			},
		},
	}
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
