// Package cli is skywire's command layer: it maps argv to a role, turns
// skywire.toml and flags into typed configs, and calls the role packages.
// It is the only package besides internal/config that knows about
// urfave/cli or the config file; main only calls Main.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	ucli "github.com/urfave/cli/v2"

	"github.com/skywire-mesh/skywire/internal/cli/buildinfo"
	"github.com/skywire-mesh/skywire/internal/cli/config"
	"github.com/skywire-mesh/skywire/internal/cli/rolectl"
	"github.com/skywire-mesh/skywire/messenger"
)

// env is what every command gets: the I/O streams and the embedded config.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	embedded       []byte
}

// Main runs the program named by args[0] with args[1:] and returns the exit
// code. embedded is the default skywire.toml built into the binary.
func Main(args []string, embedded []byte, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, embedded: embedded}
	role, multi := roleFromArgv0(args[0])
	switch {
	case role != "":
		args = append([]string{"skywire", role}, args[1:]...)
	case !multi:
		fmt.Fprintf(stderr, "%s: no such role\nroles: %s\nrun as `skywire ROLE`, or through a link named ROLE or skywire-ROLE (`skywire links DIR` makes them)\n",
			strings.TrimSuffix(filepath.Base(args[0]), ".exe"), strings.Join(roleNames(), ", "))
		return 1
	}
	app := e.app()
	err := app.Run(args)
	if err == nil {
		return 0
	}
	var ec ucli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, "skywire:", msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(stderr, "skywire:", err)
	if notRunning(err) {
		fmt.Fprintln(stderr, stateDirHint())
	}
	return 1
}

// errNodeDown marks a failure to reach a node's app socket: nothing
// serves it.
var errNodeDown = errors.New("the node is not running (nothing serves its app socket)")

// notRunning reports whether err says a role's socket has nobody behind
// it: then the user may be looking in the wrong state directory.
func notRunning(err error) bool {
	return errors.Is(err, rolectl.ErrNotRunning) || errors.Is(err, messenger.ErrNotRunning) || errors.Is(err, errNodeDown)
}

// stateDirHint says where the sockets are looked for and which variable
// moves them, for a shell that lacks the variable (a second terminal
// beside `make run`).
func stateDirHint() string {
	cur := "not set in this shell"
	if v, ok := os.LookupEnv(envStateDir); ok {
		cur = fmt.Sprintf("%q here", v)
	}
	return fmt.Sprintf("skywire: the sockets are in the state directory: viscript.state_dir of the config, else $%s (%s),\n"+
		"skywire: else /var/lib/skywire for root, else $XDG_STATE_HOME/skywire (~/.local/state/skywire).\n"+
		"skywire: Beside `make run`, paste the line it printed, or: export %s=CHECKOUT/.run/state",
		envStateDir, cur, envStateDir)
}

// envStateDir moves the state directory (viscript.DefaultStateDir).
const envStateDir = "SKYWIRE_STATE_DIR"

func (e *env) app() *ucli.App {
	bi := buildinfo.Get()
	app := &ucli.App{
		Name:                 "skywire",
		Usage:                "a self-hosted mesh network and the shell that runs it",
		Version:              bi.Version,
		Reader:               e.stdin,
		Writer:               e.stdout,
		ErrWriter:            e.stderr,
		EnableBashCompletion: true,
		HideVersion:          true,
		Flags:                globalFlags(),
		ExitErrHandler:       func(*ucli.Context, error) {}, // Main reports errors; nothing here calls os.Exit
		Action: func(c *ucli.Context) error {
			if c.Args().Present() {
				return ucli.Exit(fmt.Sprintf("unknown command %q\nroles: %s\nother commands: %s",
					c.Args().First(), strings.Join(roleNames(), ", "), strings.Join(toolNames(e), ", ")), 1)
			}
			return ucli.ShowAppHelp(c)
		},
	}
	for _, r := range roleCommands() {
		cmd := r.command(e)
		cmd.Category = "roles"
		cmd.Flags = append(cmd.Flags, globalFlags()...)
		app.Commands = append(app.Commands, cmd)
	}
	for _, cmd := range toolCommands(e) {
		cmd.Category = "tools"
		app.Commands = append(app.Commands, cmd)
	}
	return app
}

func toolCommands(e *env) []*ucli.Command {
	return []*ucli.Command{configCommand(e), keygenCommand(e), routeCommand(e), pingCommand(e), ncCommand(e), versionCommand(e), linksCommand(e), completionCommand(e)}
}

func toolNames(e *env) []string {
	var n []string
	for _, c := range toolCommands(e) {
		n = append(n, c.Name)
	}
	return n
}

// unknownSubcommand is the usage error for `skywire ROLE WORD` where WORD
// is none of ROLE's subcommands. The list comes from the command's own
// definition (c.Command inside its Action), so it cannot drift from it.
func unknownSubcommand(c *ucli.Context) error {
	names := subcommandNames(c)
	if len(names) == 0 {
		return ucli.Exit(fmt.Sprintf("%s takes no arguments (got %q)", c.Command.Name, c.Args().First()), 2)
	}
	return ucli.Exit(fmt.Sprintf("unknown %s command %q (%s)", c.Command.Name, c.Args().First(), strings.Join(names, ", ")), 2)
}

// subcommandNames lists the visible subcommands of the running command
// (without the help command urfave/cli adds).
func subcommandNames(c *ucli.Context) []string {
	var names []string
	for _, sub := range c.Command.VisibleCommands() {
		if sub.Name != "help" {
			names = append(names, sub.Name)
		}
	}
	return names
}

// globalFlags are accepted before the command and, for roles, after it too
// (so `viscript --config x` works when started through a link).
func globalFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "config", Usage: "config file (also $" + config.EnvConfig + "; default: search ./skywire.toml, $XDG_CONFIG_HOME/skywire/skywire.toml, /etc/skywire/skywire.toml, then the embedded default)", TakesFile: true},
		&ucli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
	}
}

// flagString returns the innermost explicitly set value of a flag defined
// at several levels.
func flagString(c *ucli.Context, name string) string {
	for _, l := range c.Lineage() {
		if l.IsSet(name) {
			return l.String(name)
		}
	}
	return c.String(name)
}

func (e *env) loadConfig(c *ucli.Context) (*config.File, error) {
	return config.Load(flagString(c, "config"), e.embedded)
}

// roleConfig starts a role's own Action (not a subcommand's): a word after
// the role is an unknown subcommand; otherwise it loads the config.
func (e *env) roleConfig(c *ucli.Context) (*config.File, error) {
	if c.NArg() > 0 {
		return nil, unknownSubcommand(c)
	}
	return e.loadConfig(c)
}

func (e *env) logger(c *ucli.Context, role string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(flagString(c, "log-level"))); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	h := slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: lvl})
	return slog.New(h).With("role", role), nil
}

// signalContext returns a context cancelled on SIGINT or SIGTERM.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}
