package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/skywire-mesh/skywire/appsignal"
	"github.com/skywire-mesh/skywire/internal/cli/config"
	"github.com/skywire-mesh/skywire/internal/metrics"
	"github.com/skywire-mesh/skywire/viscript"
	"github.com/skywire-mesh/skywire/viscript/control"
	"github.com/skywire-mesh/skywire/viscript/remote"
	"github.com/skywire-mesh/skywire/viscript/shell"
	"github.com/skywire-mesh/skywire/viscript/web"
	"github.com/skywire-mesh/skywire/viscript/web/nodemesh"
)

func viscriptCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:  "viscript",
		Usage: "the shell and app launcher",
		Description: `Without flags: an interactive shell (or commands read from stdin when it is
not a terminal). If a viscript server already runs for the state directory,
the shell talks to it over STATE/control.sock; otherwise it runs the launcher
itself, and on quit leaves daemons running for the next viscript to adopt.`,
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "serve", Usage: "run the launcher and signal server without a shell (systemd, Docker)"},
			&ucli.StringFlag{Name: "c", Usage: "run these commands (separated by ';') and exit; non-zero if one failed"},
			&ucli.BoolFlag{Name: "json", Usage: "print one JSON object per command"},
			&ucli.StringFlag{Name: "state-dir", Usage: "state directory (overrides viscript.state_dir)", TakesFile: true},
			viscriptNodeFlag, viscriptViaFlag,
		},
		Subcommands: []*ucli.Command{{
			// The re-exec shim that applies an app's limits (see
			// viscript.ShimArgs); not for people.
			Name:            viscript.ShimCommand[1],
			Hidden:          true,
			SkipFlagParsing: true,
			Action: func(c *ucli.Context) error {
				return ucli.Exit(viscript.RunShim(c.Args().Slice()).Error(), 126)
			},
		}},
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return ucli.Exit(fmt.Sprintf("viscript takes no arguments (got %q); use -c 'CMD; CMD' to run commands", c.Args().First()), 2)
			}
			f, err := e.loadConfig(c)
			if err != nil {
				return err
			}
			cfg := f.Viscript
			cfg.Apps = f.Apps
			// The config named here (or found) is the config every app
			// gets: a role started by viscript must not go looking for its
			// own and find another one.
			if !f.Embedded { // the embedded default cannot change: no reload
				if cfg.ConfigPath, err = filepath.Abs(f.Path); err != nil {
					return fmt.Errorf("config path: %w", err)
				}
				path := cfg.ConfigPath
				cfg.LoadCatalog = func() (map[string]viscript.AppSpec, error) {
					nf, err := config.ReadFile(path)
					if err != nil {
						return nil, err
					}
					return nf.Apps, nil
				}
			}
			if sd := c.String("state-dir"); sd != "" {
				cfg.StateDir = sd
			}
			if cfg.StateDir == "" {
				cfg.StateDir = viscript.DefaultStateDir()
			}
			if cfg.SelfPath, err = os.Executable(); err != nil {
				return fmt.Errorf("find own binary: %w", err)
			}
			ctx, cancel := signalContext(c.Context)
			defer cancel()

			if c.Bool("serve") {
				if c.IsSet("node") {
					return ucli.Exit("viscript: --node drives another node's viscript from a shell; it does not go with --serve", 2)
				}
				var ctlSock string
				if cfg.NodeSocket, ctlSock, err = viscriptNodeSockets(c, f); err != nil {
					return err
				}
				if !f.Embedded {
					cfg.LoadAdmins = loadAdmins(cfg.ConfigPath)
				}
				log, err := e.logger(c, "viscript")
				if err != nil {
					return err
				}
				ctx, stop, err := appsignal.StartFromEnv(ctx, log)
				if err != nil {
					return err
				}
				defer stop()
				cfg.Autostart = true
				sup, err := viscript.New(cfg, log)
				if err != nil {
					return err
				}
				ms, err := serveMetrics(cfg.Metrics, metrics.Viscript(sup), log)
				if err != nil {
					sup.Close()
					return err
				}
				defer ms.Close()
				log.Info("viscript serving", "state_dir", cfg.StateDir, "control", sup.ControlPath(), "signal", sup.SignalAddr(),
					"config", cfg.ConfigPath, "autostart", sup.AutostartNames())
				if cfg.Web != "" {
					return serveWithDashboard(ctx, sup, cfg, ctlSock, log)
				}
				return sup.Run(ctx)
			}
			return e.runShell(ctx, c, f, cfg)
		},
	}
}

// runShell connects to the viscript server of the state directory, or runs
// one in this process for as long as the shell lives.
func (e *env) runShell(ctx context.Context, c *ucli.Context, f *config.File, cfg viscript.Config) error {
	opts := shell.Options{JSON: c.Bool("json"), Out: e.stdout, Err: e.stderr, HistoryPath: filepath.Join(cfg.StateDir, "history")}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	rem, err := newShellRemote(c, f, cfg)
	if err != nil {
		return err
	}
	defer rem.Close()
	opts.Remote = rem
	var ctrl control.Controller
	if opts.Connect = c.String("node"); opts.Connect == "" {
		// Only a shell that runs commands here needs a local viscript.
		// A one-shot -c does not serve [viscript] metrics (nobody could
		// scrape them in its moment, and a taken port would fail it).
		if c.String("c") != "" {
			cfg.Metrics = ""
		}
		var done func()
		ctrl, done, err = e.connectOrServe(ctx, cfg)
		if err != nil {
			return err
		}
		defer done()
	}
	if _, inProcess := ctrl.(*viscript.Supervisor); inProcess {
		opts.Owner = "local" // over the socket, the server names the owner
	}
	if cmds := c.String("c"); cmds != "" {
		err = shell.Exec(ctx, ctrl, cmds, opts)
	} else {
		err = shell.Run(ctx, ctrl, e.stdin, opts)
	}
	if errors.Is(err, shell.ErrCommandFailed) {
		// Each failure has been printed where it happened: exit 1
		// without printing them all again.
		return ucli.Exit("", 1)
	}
	return err
}

// connectOrServe returns a Controller: a client of the running server, or a
// supervisor started here. done stops what was started.
func (e *env) connectOrServe(ctx context.Context, cfg viscript.Config) (control.Controller, func(), error) {
	sock := filepath.Join(cfg.StateDir, "control.sock")
	if cl, err := dialControl(ctx, sock); err == nil {
		return cl, func() { cl.Close() }, nil
	}
	logFile, err := os.OpenFile(filepath.Join(cfg.StateDir, "viscript.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open viscript log: %w", err)
	}
	log := slog.New(slog.NewTextHandler(logFile, nil)).With("role", "viscript")
	sup, err := viscript.New(cfg, log)
	if errors.Is(err, viscript.ErrServerRunning) {
		logFile.Close()
		// Another viscript holds the state directory but its control
		// socket was not up yet: wait for it briefly.
		deadline := time.Now().Add(3 * time.Second)
		for {
			cl, derr := dialControl(ctx, sock)
			if derr == nil {
				return cl, func() { cl.Close() }, nil
			}
			if time.Now().After(deadline) {
				return nil, nil, fmt.Errorf("%w, but its control socket %s does not answer: %v", err, sock, derr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err != nil {
		logFile.Close()
		return nil, nil, err
	}
	// This shell's supervisor is the viscript of the state directory for
	// as long as the shell lives: it serves [viscript] metrics as
	// `viscript --serve` would (a shell that connected to a server above
	// leaves them to it).
	ms, err := serveMetrics(cfg.Metrics, metrics.Viscript(sup), log)
	if err != nil {
		sup.Close()
		logFile.Close()
		return nil, nil, fmt.Errorf("viscript.metrics: %w (this shell runs the launcher itself and serves its metrics there; free the address or run the shell beside a viscript --serve)", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- sup.Run(runCtx) }()
	return sup, func() {
		stop()
		if err := <-runErr; err != nil {
			fmt.Fprintln(e.stderr, "viscript:", err)
		}
		ms.Close()
		logFile.Close()
	}, nil
}

func dialControl(ctx context.Context, sock string) (*control.Client, error) {
	if _, err := os.Stat(sock); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return control.Dial(dctx, "unix", sock, "")
}

// serveWithDashboard runs the supervisor and the dashboard on
// viscript.web until ctx is done or either fails (then both stop). The
// dashboard reads viscript's node ([viscript] node, or --via) over its
// control socket ctlSock.
func serveWithDashboard(ctx context.Context, sup *viscript.Supervisor, cfg viscript.Config, ctlSock string, log *slog.Logger) error {
	// Other nodes' apps: over the mesh, where their [viscript] admins
	// list this node's key (viscript/remote). The node is viscript's own
	// ([viscript] node, or --via): the one remote control goes through.
	nodes := &remote.Nodes{Local: sup, Dialer: &remote.Dialer{NodeSocket: cfg.NodeSocket, Port: cfg.RemotePort}}
	defer nodes.Close()
	defer nodes.Dialer.Close()
	ln, err := net.Listen("tcp", cfg.Web)
	if err != nil {
		sup.Close()
		return fmt.Errorf("viscript.web: listen %s: %w", cfg.Web, err)
	}
	dash, err := web.New(web.Config{Addr: cfg.Web, Token: cfg.WebToken, Listener: ln},
		nodemesh.New(ctlSource{ctlSock}), nodes, log.With("part", "dashboard"))
	if err != nil {
		ln.Close()
		sup.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dashErr := make(chan error, 1)
	go func() {
		err := dash.Run(ctx)
		cancel() // a dashboard that fails stops viscript: it was asked for
		dashErr <- err
	}()
	err = sup.Run(ctx)
	cancel()
	return errors.Join(err, <-dashErr)
}
