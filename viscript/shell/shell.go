// Package shell is viscript's command shell. It drives any
// control.Controller: the supervisor in the same process or a
// control.Client talking to one over the control socket. It runs one-shot
// command lines (Exec), scripts read from a pipe or file, and an
// interactive terminal session with line editing and history (Run).
package shell

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/skywire-mesh/skywire/viscript/control"
)

// Errors returned by Exec and Run.
var (
	// ErrCommandFailed wraps the failures of a command line or script.
	ErrCommandFailed = errors.New("shell: command failed")
	// ErrQuit is how quit/exit/q ends a line internally; Exec and Run
	// return nil for it.
	ErrQuit = errors.New("shell: quit")
	// ErrUsage marks bad command input (missing or malformed arguments).
	ErrUsage = errors.New("bad usage")
	// ErrUnknownCommand marks a command name the shell does not know.
	ErrUnknownCommand = errors.New("unknown command")
	// ErrAmbiguous marks an app name that matches several running apps
	// where one ID is needed.
	ErrAmbiguous = errors.New("ambiguous app name")
)

// Defaults for Options.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultFollowInterval = 200 * time.Millisecond
	// PingTimeout is how long ping waits for a pong.
	PingTimeout = 2 * time.Second
	// LogTail is how much of an app's output `logs` shows first.
	LogTail = 16 << 10
	// DefaultStartCheck is how long start watches a new app: one that
	// fails within it is reported as a failed start.
	DefaultStartCheck = time.Second
	// startLogLines is how many of its last output lines a failed start shows.
	startLogLines = 10
	// DefaultHistorySize is how many lines interactive history keeps.
	DefaultHistorySize = 1000
	// Prompt is the interactive prompt.
	Prompt = "viscript> "
)

// Options control how commands run and print.
type Options struct {
	JSON   bool   // one JSON object per command on its own line
	Owner  string // owner for Start when talking in-process ("local")
	Out    io.Writer
	Err    io.Writer
	Logger *slog.Logger
	// HistoryPath, if set, persists interactive history there (mode 0600).
	HistoryPath string
	// Timeout bounds each controller call (0 = DefaultTimeout); logs -f
	// runs until its context is cancelled.
	Timeout time.Duration
	// FollowInterval is how often logs -f polls (0 = DefaultFollowInterval).
	FollowInterval time.Duration
	// StartCheck is how long start watches a new app for an early exit
	// (0 = DefaultStartCheck, negative = not at all).
	StartCheck time.Duration
	// Remote, if set, reaches other nodes' viscripts (connect, la --all).
	Remote Remote
	// Connect, if set, is a node (pk:…) to connect to before the first
	// command, as `connect NODE` does (the command layer's --node). The
	// controller given to Exec or Run may then be nil: the shell has no
	// local viscript.
	Connect string
}

func (o Options) withDefaults() Options {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Err == nil {
		o.Err = o.Out
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.FollowInterval <= 0 {
		o.FollowInterval = DefaultFollowInterval
	}
	if o.StartCheck == 0 {
		o.StartCheck = DefaultStartCheck
	}
	return o
}

// shell runs commands against one controller: the local one, or the
// viscript of the node it is connected to.
type shell struct {
	c      control.Controller // where commands run now
	local  control.Controller // the local viscript (nil with --node)
	remote *remoteState       // the connected node (nil: local)
	o      Options
}

// newShell returns a shell on c, connected first to o.Connect if set.
func newShell(ctx context.Context, c control.Controller, o Options) (*shell, error) {
	sh := &shell{c: c, local: c, o: o}
	if o.Connect != "" {
		conn, err := sh.dial(ctx, o.Connect)
		if err != nil {
			sh.fail("connect", err)
			return nil, fmt.Errorf("%w: %w", ErrCommandFailed, err)
		}
		sh.switchTo(o.Connect, conn)
	}
	return sh, nil
}

// close ends the shell's remote connection.
func (sh *shell) close() { sh.closeRemote() }

// command is one entry of the command table.
type command struct {
	name    string // canonical name, used in JSON "cmd"
	aliases []string
	usage   string
	summary string
	run     func(sh *shell, ctx context.Context, args []string) (obj, error)
}

var commands []*command

func init() {
	// Assigned in init to break the initialisation cycle help -> commands.
	commands = []*command{
		{name: "help", usage: "help [APP|COMMAND]", summary: "this list, or the details of an app or command", run: (*shell).help},
		{name: "apps", usage: "apps", summary: "the app catalog", run: (*shell).apps},
		{name: "start", aliases: []string{"s"}, usage: "start [-f] [--replace] APP|all [ARGS...]",
			summary: "start an app: ARGS after its default args (--replace: instead of them); all: every catalog app not running, in after order",
			run:     (*shell).start},
		{name: "la", aliases: []string{"list_apps", "ps"}, usage: "list_apps [--all]", summary: "list launched apps (--all: on every node of the directory that lets us in, with a NODE column)", run: (*shell).listApps},
		{name: "status", usage: "status [ID|NAME]", summary: "an app's state, pid, uptime, restarts, exit and args (none: list_apps)", run: (*shell).status},
		{name: "ping", usage: "ping ID|NAME", summary: "ping an app over the signal protocol", run: (*shell).ping},
		{name: "ru", aliases: []string{"res_usage"}, usage: "res_usage ID|NAME", summary: "an app's resource usage", run: (*shell).resUsage},
		{name: "sd", aliases: []string{"shutdown", "stop"}, usage: "shutdown ID|NAME|all", summary: "stop an app (all: every live app, newest first)", run: (*shell).shutdown},
		{name: "restart", usage: "restart ID|NAME", summary: "restart an app", run: (*shell).restart},
		{name: "logs", usage: "logs ID|NAME [-f]", summary: "an app's output (-f follows until Ctrl-C)", run: (*shell).logs},
		{name: "rm", aliases: []string{"remove"}, usage: "rm ID|NAME|all", summary: "forget exited apps (NAME: every exited one of that name; all: every exited one)", run: (*shell).remove},
		{name: "connect", usage: "connect [pk:…|NODENAME|local]", summary: "run the commands that follow on that node's viscript (by key or claimed name), over the mesh (local: here again; none: where they run now)", run: (*shell).connect},
		{name: "reload", usage: "reload", summary: "re-read the catalog from the config file (running apps keep running)", run: (*shell).reload},
		{name: "quit", aliases: []string{"exit", "q"}, usage: "quit", summary: "leave the shell", run: nil},
	}
}

// otherNames lists the names of c other than the one its usage shows.
func (c *command) otherNames() []string {
	shown, _, _ := strings.Cut(c.usage, " ")
	var out []string
	for _, n := range append([]string{c.name}, c.aliases...) {
		if n != shown {
			out = append(out, n)
		}
	}
	return out
}

// lookup finds a command by name or alias.
func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
		for _, a := range c.aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

// Exec runs one command line, which may hold several commands separated by
// ';'. Each command's output and errors are printed; a failing command does
// not stop the following ones, quit stops the line. Exec returns nil if
// all commands succeeded, and otherwise an error wrapping ErrCommandFailed
// and each command's error (for the exit status: it is already printed).
func Exec(ctx context.Context, c control.Controller, line string, o Options) error {
	sh, err := newShell(ctx, c, o.withDefaults())
	if err != nil {
		return err
	}
	defer sh.close()
	err = sh.exec(ctx, line)
	if errors.Is(err, ErrQuit) && !errors.Is(err, ErrCommandFailed) {
		return nil
	}
	return err
}

func (sh *shell) exec(ctx context.Context, line string) error {
	cmds, err := split(line)
	if err != nil {
		err = &msgError{msg: err.Error(), is: ErrUsage}
		sh.fail("", err)
		return fmt.Errorf("%w: %w", ErrCommandFailed, err)
	}
	var errs []error
	for _, words := range cmds {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		err := sh.runOne(ctx, words)
		if errors.Is(err, ErrQuit) {
			if len(errs) > 0 {
				return fmt.Errorf("%w: %w", ErrCommandFailed, errors.Join(append(errs, ErrQuit)...))
			}
			return ErrQuit
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrCommandFailed, errors.Join(errs...))
	}
	return nil
}

// runOne runs one command and prints its result or error.
func (sh *shell) runOne(ctx context.Context, words []string) (err error) {
	cmd := lookup(words[0])
	if cmd == nil {
		err := errorf(ErrUnknownCommand, "unknown command %s (try help)", words[0])
		sh.fail(words[0], err)
		return err
	}
	if cmd.run == nil { // quit
		if len(words) > 1 {
			err := usageErr(cmd)
			sh.fail(cmd.name, err)
			return err
		}
		return ErrQuit
	}
	if cmd.name != "connect" && cmd.name != "help" {
		if err := sh.reconnectIfLost(ctx); err != nil {
			sh.fail(cmd.name, err)
			return err
		}
	}
	defer func() {
		if p := recover(); p != nil { // a bug here must not kill the shell
			sh.o.Logger.Error("shell: command panicked", "cmd", cmd.name, "panic", p)
			err = fmt.Errorf("%s: internal error: %v", cmd.name, p)
			sh.fail(cmd.name, err)
		}
	}()
	res, err := cmd.run(sh, ctx, words[1:])
	if err != nil {
		err = sh.lost(err)
		sh.fail(cmd.name, err)
		return err
	}
	if sh.o.JSON && res != nil {
		sh.emit(append(obj{{"cmd", cmd.name}, {"ok", true}}, res...))
	}
	return nil
}

// fail prints a command's error.
func (sh *shell) fail(cmd string, err error) {
	if sh.o.JSON {
		sh.emit(obj{{"cmd", cmd}, {"ok", false}, {"error", err.Error()}, {"code", errCode(err)}})
		return
	}
	fmt.Fprintln(sh.o.Err, err)
}

// errCode is the JSON "code" of an error.
func errCode(err error) string {
	switch {
	case errors.Is(err, ErrUsage):
		return "usage"
	case errors.Is(err, ErrUnknownCommand):
		return "unknown_command"
	case errors.Is(err, ErrAmbiguous):
		return "ambiguous"
	}
	return control.ErrorCode(err)
}

// emit writes one JSON object on its own line.
func (sh *shell) emit(o obj) {
	b, err := json.Marshal(o)
	if err != nil {
		b, _ = json.Marshal(obj{{"ok", false}, {"error", "encode output: " + err.Error()}, {"code", "internal"}})
	}
	b = append(b, '\n')
	if _, err := sh.o.Out.Write(b); err != nil {
		sh.o.Logger.Debug("shell: write output", "err", err)
	}
}

// printf writes text-mode output; it does nothing in JSON mode.
func (sh *shell) printf(format string, args ...any) {
	if !sh.o.JSON {
		fmt.Fprintf(sh.o.Out, format, args...)
	}
}

// msgError is an error with a message of its own that still matches a
// sentinel with errors.Is (fmt.Errorf would append the sentinel's text).
type msgError struct {
	msg string
	is  error
}

func (e *msgError) Error() string { return e.msg }
func (e *msgError) Unwrap() error { return e.is }

func errorf(is error, format string, args ...any) error {
	return &msgError{msg: fmt.Sprintf(format, args...), is: is}
}

func usageErr(cmd *command) error {
	return errorf(ErrUsage, "usage: %s", cmd.usage)
}

// callCtx bounds one controller call by Options.Timeout.
func (sh *shell) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, sh.o.Timeout)
}

// fetch makes one control call under the shell's call timeout; a failure
// names op, and says so when the user interrupted it.
func fetch[T any](ctx context.Context, sh *shell, op string, call func(context.Context) (T, error)) (T, error) {
	cctx, cancel := sh.callCtx(ctx)
	defer cancel()
	v, err := call(cctx)
	if err != nil {
		return v, fmt.Errorf("%s: %w", op, interrupted(ctx, op, err))
	}
	return v, nil
}

// callApp makes one control call on app id under the shell's call
// timeout; a failure is the controller's error, saying so when the user
// interrupted op.
func callApp[T any](ctx context.Context, sh *shell, op string, id uint64, call func(context.Context, uint64) (T, error)) (T, error) {
	cctx, cancel := sh.callCtx(ctx)
	defer cancel()
	v, err := call(cctx, id)
	if err != nil {
		return v, interrupted(ctx, op, err)
	}
	return v, nil
}

// onApp is callApp on the app args name for cmd.
func onApp[T any](ctx context.Context, sh *shell, cmd, op string, args []string, call func(context.Context, uint64) (T, error)) (uint64, T, error) {
	id, err := sh.resolve(ctx, cmd, args)
	if err != nil {
		var zero T
		return 0, zero, err
	}
	v, err := callApp(ctx, sh, op, id, call)
	return id, v, err
}

// listing is the start of a command that takes no arguments and lists
// what call returns: the list is never nil (JSON shows []); in text mode
// an empty list prints empty and show is false (nothing more to print),
// as it is on an error.
func listing[E any](ctx context.Context, sh *shell, args []string, cmd, op, empty string, call func(context.Context) ([]E, error)) (list []E, show bool, err error) {
	if len(args) != 0 {
		return nil, false, usageErr(lookup(cmd))
	}
	if list, err = fetch(ctx, sh, op, call); err != nil {
		return nil, false, err
	}
	if list == nil {
		list = []E{}
	}
	if !sh.o.JSON && len(list) == 0 {
		sh.printf("%s\n", empty)
		return nil, false, nil
	}
	return list, true, nil
}

// interrupted turns a cancellation of the caller's ctx into a plain
// message.
func interrupted(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: interrupted: %w", op, err)
	}
	return err
}

// appName returns the name of app id, or "" if it cannot be found.
func (sh *shell) appName(ctx context.Context, id uint64) string {
	cctx, cancel := sh.callCtx(ctx)
	defer cancel()
	list, err := sh.c.List(cctx)
	if err != nil {
		return ""
	}
	for _, a := range list {
		if a.ID == id {
			return a.Name
		}
	}
	return ""
}

func label(id uint64, name string) string {
	if name == "" {
		return strconv.FormatUint(id, 10)
	}
	return fmt.Sprintf("%d (%s)", id, name)
}

func (sh *shell) help(ctx context.Context, args []string) (obj, error) {
	switch len(args) {
	case 0:
		var list []obj
		sh.printf("commands:\n")
		usages := make([]string, len(commands))
		width := 0
		for i, c := range commands {
			usages[i] = c.usage
			if other := c.otherNames(); len(other) > 0 {
				usages[i] += " [" + strings.Join(other, ", ") + "]"
			}
			width = max(width, len(usages[i]))
		}
		for i, c := range commands {
			sh.printf("  %-*s %s\n", width, usages[i], c.summary)
			aliases := c.aliases
			if aliases == nil {
				aliases = []string{}
			}
			list = append(list, obj{{"name", c.name}, {"aliases", aliases}, {"usage", c.usage}, {"summary", c.summary}})
		}
		sh.printf("IDs are the decimal sequence IDs shown by list_apps; a NAME stands for the one\n"+
			"live app of that name (several: an error listing their IDs). Separate commands with ';'.\n"+
			"start refuses a second copy of a running app (--force; the catalog's instances = N),\n"+
			"waits for the apps it is after to answer a ping, and fails if the app exits with\n"+
			"an error within start_secs (default %v), showing its last output.\n"+
			"Catalog keys ([apps.NAME] in the config; help APP shows an app's): path, default_args,\n"+
			"daemon, restart, stop_timeout, env, dir, desc, help, autostart (started by\n"+
			"viscript --serve), after, after_timeout, instances, start_secs, user, limits = { nofile, memory }.\n",
			sh.o.StartCheck)
		return obj{{"commands", list}}, nil
	case 1:
	default:
		return nil, usageErr(lookup("help"))
	}
	cat, err := fetch(ctx, sh, "help", sh.c.Catalog)
	if err != nil {
		return nil, err
	}
	for _, e := range cat {
		if e.Name != args[0] {
			continue
		}
		restart := e.Restart
		if restart == "" {
			restart = "no"
		}
		sh.printf("%s: %s\n", e.Name, e.Desc)
		sh.printf("  path:         %s\n", orDash(e.Path))
		sh.printf("  daemon:       %s\n", yesNo(e.Daemon))
		sh.printf("  default args: %s\n", orDash(quoteArgs(e.DefaultArgs)))
		sh.printf("  restart:      %s\n", restart)
		sh.printf("  autostart:    %s\n", yesNo(e.Autostart))
		if e.StartWindowMS > 0 {
			sh.printf("  start_secs:   %v\n", time.Duration(e.StartWindowMS)*time.Millisecond)
		}
		if len(e.After) > 0 {
			sh.printf("  after:        %s\n", strings.Join(e.After, ", "))
		}
		if e.Instances > 1 {
			sh.printf("  instances:    %d\n", e.Instances)
		}
		if e.User != "" {
			sh.printf("  user:         %s\n", e.User)
		}
		if e.Limits != "" {
			sh.printf("  limits:       %s\n", e.Limits)
		}
		if e.Help != "" {
			sh.printf("\n%s\n", strings.TrimRight(e.Help, "\n"))
		}
		return obj{{"app", e}}, nil
	}
	if c := lookup(args[0]); c != nil {
		sh.printf("%s\n  %s\n", c.usage, c.summary)
		if other := c.otherNames(); len(other) > 0 {
			sh.printf("  also: %s\n", strings.Join(other, ", "))
		}
		return obj{{"command", c.name}, {"usage", c.usage}, {"summary", c.summary}}, nil
	}
	return nil, fmt.Errorf("help: no app or command named %q: %w", args[0], control.ErrUnknownApp)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// quoteArgs joins args, quoting those that need it to be re-typed.
func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n;'\"\\") {
			q[i] = strconv.Quote(a)
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}

// table starts a tab-aligned table on Out.
func (sh *shell) table() *tableWriter { return newTable(sh.o.Out) }

func (sh *shell) apps(ctx context.Context, args []string) (obj, error) {
	cat, show, err := listing(ctx, sh, args, "apps", "apps", "the catalog is empty (add [apps.NAME] tables to skywire.toml)", sh.c.Catalog)
	if !show {
		return nil, err
	}
	if !sh.o.JSON {
		t := sh.table()
		t.row("NAME", "DAEMON", "DESC")
		for _, e := range cat {
			t.row(e.Name, yesNo(e.Daemon), e.Desc)
		}
		t.flush()
	}
	return obj{{"apps", cat}}, nil
}

func (sh *shell) start(ctx context.Context, args []string) (obj, error) {
	var force, replace bool
flags:
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "--force", "-f":
			force = true
		case "--replace":
			replace = true
		case "--":
			args = args[1:]
			break flags
		default:
			return nil, errorf(ErrUsage, "start: unknown flag %s; usage: %s", args[0], lookup("start").usage)
		}
		args = args[1:]
	}
	if len(args) == 0 {
		return nil, usageErr(lookup("start"))
	}
	if args[0] == "all" && len(args) == 1 {
		if force || replace {
			return nil, errorf(ErrUsage, "start all takes no flags; usage: %s", lookup("start").usage)
		}
		return sh.startAll(ctx)
	}
	req := control.StartRequest{Name: args[0], Owner: sh.o.Owner, Args: args[1:], Replace: replace, Force: force}
	if len(req.Args) == 0 {
		req.Args = nil
		req.UseDefault = !replace
	}
	info, note, err := sh.startOne(ctx, req)
	if err != nil {
		return nil, err
	}
	sh.printf("started %s: id %d, pid %d%s\n", info.Name, info.ID, info.Pid, note)
	return obj{{"id", info.ID}, {"pid", info.Pid}, {"name", info.Name}, {"state", info.State}}, nil
}

// startOne starts req and watches the app for Options.StartCheck: if it
// ends in that time with a failure, that is the error (with its exit
// status and last output). note says how a quick clean exit went.
func (sh *shell) startOne(ctx context.Context, req control.StartRequest) (control.AppInfo, string, error) {
	// Start may wait for the apps it is after (after_timeout, 30s by
	// default) before it launches anything.
	cctx, cancel := context.WithTimeout(ctx, 2*sh.o.Timeout)
	defer cancel()
	info, err := sh.c.Start(cctx, req)
	if err != nil {
		if info.ID != 0 && info.ExitInfo != "" && !strings.Contains(err.Error(), info.ExitInfo) {
			err = fmt.Errorf("%w (%s)", err, info.ExitInfo)
		}
		return info, "", interrupted(ctx, "start", err)
	}
	if info.Name == "" {
		info.Name = req.Name
	}
	check := sh.o.StartCheck
	if check < 0 {
		return info, "", nil
	}
	if ms := sh.startWindow(ctx, req.Name); ms > 0 {
		check = time.Duration(ms) * time.Millisecond
	}
	end, ok := sh.watchStart(ctx, info, check)
	if !ok {
		return info, "", nil
	}
	if end.State == control.StateExited && end.ExitCode == 0 && end.Restarts == info.Restarts {
		return info, fmt.Sprintf(" (it exited at once: %s)", orDash(exitInfo(end))), nil
	}
	how := exitInfo(end)
	if how == "" {
		how = string(end.State)
	}
	if end.State == control.StateBackoff || end.Restarts > info.Restarts {
		how += "; its restart policy restarts it"
	}
	msg := fmt.Sprintf("start %s: app %d exited within %v of starting (%s)", info.Name, info.ID, check, how)
	if lines := sh.lastLines(ctx, info.ID, startLogLines); len(lines) > 0 {
		msg += fmt.Sprintf("; its last output (logs %d):\n  %s", info.ID, strings.Join(lines, "\n  "))
	} else {
		msg += "; it printed nothing"
	}
	return info, "", errorf(control.ErrStartFailed, "%s", msg)
}

// startWindow is the catalog's start_secs for name in milliseconds (0 if
// unset or unknown).
func (sh *shell) startWindow(ctx context.Context, name string) int64 {
	cctx, cancel := sh.callCtx(ctx)
	defer cancel()
	cat, err := sh.c.Catalog(cctx)
	if err != nil {
		return 0
	}
	for _, e := range cat {
		if e.Name == name {
			return e.StartWindowMS
		}
	}
	return 0
}

// watchStart polls app info.ID for d and returns how it was when its run
// ended (ok), or ok false if it kept running. It looks once more when d
// has passed, so a slow poll cannot miss an exit within d.
func (sh *shell) watchStart(ctx context.Context, info control.AppInfo, d time.Duration) (control.AppInfo, bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(startPoll)
	defer tick.Stop()
	for last := false; !last; {
		select {
		case <-ctx.Done():
			return control.AppInfo{}, false
		case <-deadline.C:
			last = true
		case <-tick.C:
		}
		cctx, cancel := sh.callCtx(ctx)
		list, err := sh.c.List(cctx)
		cancel()
		if err != nil {
			continue
		}
		for _, a := range list {
			if a.ID != info.ID {
				continue
			}
			if a.State != control.StateRunning && a.State != control.StateStopping || a.Restarts > info.Restarts || a.Pid != info.Pid {
				return a, true
			}
		}
	}
	return control.AppInfo{}, false
}

// startPoll is how often start looks at a new app during StartCheck.
const startPoll = 50 * time.Millisecond

// lastLines returns up to n of the last lines app id printed.
func (sh *shell) lastLines(ctx context.Context, id uint64, n int) []string {
	cctx, cancel := sh.callCtx(ctx)
	defer cancel()
	chunk, err := sh.c.Logs(cctx, id, -4096, 4096)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(chunk.Data), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

func (sh *shell) listApps(ctx context.Context, args []string) (obj, error) {
	if len(args) == 1 && (args[0] == "--all" || args[0] == "-a") {
		return sh.listAll(ctx)
	}
	list, show, err := listing(ctx, sh, args, "la", "list_apps", "no apps launched", sh.c.List)
	if !show {
		return nil, err
	}
	if !sh.o.JSON {
		withExit := false
		for _, a := range list {
			if a.State != control.StateRunning && exitInfo(a) != "" {
				withExit = true
			}
		}
		t := sh.table()
		hdr := []string{"ID", "NAME", "PID", "STATE", "UPTIME", "SIGNAL", "RESTARTS"}
		if withExit {
			hdr = append(hdr, "EXIT")
		}
		t.row(hdr...)
		for _, a := range list {
			up := "-"
			if a.State == control.StateRunning || a.State == control.StateStopping {
				up = fmtUptime(a.UptimeS)
			}
			pid := "-"
			if a.Pid > 0 {
				pid = strconv.Itoa(a.Pid)
			}
			row := []string{strconv.FormatUint(a.ID, 10), a.Name, pid, string(a.State), up, yesNo(a.Connected), strconv.Itoa(a.Restarts)}
			if withExit {
				ex := ""
				if a.State != control.StateRunning {
					ex = exitInfo(a)
				}
				row = append(row, ex)
			}
			t.row(row...)
		}
		t.flush()
	}
	return obj{{"apps", list}}, nil
}

// exitInfo describes how an app ended.
func exitInfo(a control.AppInfo) string {
	if a.ExitInfo != "" {
		return a.ExitInfo
	}
	if a.State == control.StateExited || a.State == control.StateBackoff {
		if a.ExitCode >= 0 {
			return fmt.Sprintf("exit status %d", a.ExitCode)
		}
	}
	return ""
}

func (sh *shell) ping(ctx context.Context, args []string) (obj, error) {
	id, err := sh.resolve(ctx, "ping", args)
	if err != nil {
		return nil, err
	}
	// A little longer than the pong deadline so that the controller, not
	// the transport, reports the timeout.
	pctx, cancel := context.WithTimeout(ctx, PingTimeout+500*time.Millisecond)
	defer cancel()
	rtt, err := sh.c.Ping(pctx, id)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, interrupted(ctx, "ping", err)
	case errors.Is(err, control.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
		return nil, errorf(control.ErrTimeout, "ping %d: no answer within %v", id, PingTimeout)
	case errors.Is(err, control.ErrNotSignalClient):
		return nil, errorf(control.ErrNotSignalClient, "ping %d: app %s is not a signal client (it never connected to viscript, so it cannot be pinged)",
			id, label(id, sh.appName(ctx, id)))
	default:
		return nil, err
	}
	ms := float64(rtt) / float64(time.Millisecond)
	sh.printf("pong from %s: %.3f ms\n", label(id, sh.appName(ctx, id)), ms)
	return obj{{"id", id}, {"rtt_ms", ms}}, nil
}

func (sh *shell) resUsage(ctx context.Context, args []string) (obj, error) {
	id, u, err := onApp(ctx, sh, "ru", "res_usage", args, sh.c.Usage)
	if err != nil {
		return nil, err
	}
	if !sh.o.JSON {
		sh.printf("app %s, pid %d\n", label(id, sh.appName(ctx, id)), u.Pid)
		t := sh.table()
		t.row("  cpu:", fmt.Sprintf("%.1f%%", u.CPUPercent))
		t.row("  rss:", fmtBytes(u.RSSBytes))
		t.row("  threads:", strconv.Itoa(u.Threads))
		t.row("  fds:", strconv.Itoa(u.FDs))
		t.row("  read:", fmtBytes(u.ReadBytes))
		t.row("  written:", fmtBytes(u.WriteBytes))
		t.row("  uptime:", fmtUptime(u.UptimeS))
		if len(u.Reported) > 0 {
			t.row("  reported by the app:")
			for _, k := range sortedKeys(u.Reported) {
				v := strconv.FormatUint(u.Reported[k], 10)
				if strings.HasSuffix(k, "_bytes") {
					v = fmtBytes(u.Reported[k])
				}
				t.row("    "+k+":", v)
			}
		}
		t.flush()
	}
	res := obj{{"id", id}, {"pid", u.Pid}, {"cpu_percent", u.CPUPercent}, {"rss_bytes", u.RSSBytes},
		{"threads", u.Threads}, {"fds", u.FDs}, {"read_bytes", u.ReadBytes}, {"write_bytes", u.WriteBytes},
		{"uptime_s", u.UptimeS}}
	if len(u.Reported) > 0 {
		res = res.add("reported", u.Reported)
	}
	return res, nil
}

var stepText = map[control.StopStep]string{
	control.StopSignal:  "it exited after the signal-protocol shutdown request",
	control.StopSIGTERM: "it exited after SIGTERM",
	control.StopSIGKILL: "it had to be killed with SIGKILL",
	control.StopAlready: "it had already exited",
}

func (sh *shell) shutdown(ctx context.Context, args []string) (obj, error) {
	if len(args) == 1 && args[0] == "all" {
		return sh.stopAll(ctx)
	}
	id, err := sh.resolve(ctx, "sd", args)
	if err != nil {
		return nil, err
	}
	name := ""
	if !sh.o.JSON {
		name = sh.appName(ctx, id) // before: an exited app may be dropped from the list
	}
	r, err := callApp(ctx, sh, "shutdown", id, sh.c.Shutdown)
	if err != nil {
		return nil, err
	}
	txt, ok := stepText[r.Step]
	if !ok {
		txt = "step " + string(r.Step)
	}
	sh.printf("shut down %s: %s (%s)\n", label(id, name), r.Step, txt)
	return obj{{"id", id}, {"step", r.Step}}, nil
}

func (sh *shell) restart(ctx context.Context, args []string) (obj, error) {
	_, info, err := onApp(ctx, sh, "restart", "restart", args, sh.c.Restart)
	if err != nil {
		return nil, err
	}
	sh.printf("restarted %s: id %d, pid %d\n", info.Name, info.ID, info.Pid)
	return obj{{"id", info.ID}, {"pid", info.Pid}, {"name", info.Name}, {"state", info.State}, {"restarts", info.Restarts}}, nil
}

func (sh *shell) logs(ctx context.Context, args []string) (obj, error) {
	follow := false
	var rest []string
	for _, a := range args {
		switch {
		case a == "-f" || a == "--follow":
			follow = true
		case strings.HasPrefix(a, "-") && len(a) > 1:
			return nil, errorf(ErrUsage, "logs: unknown flag %s; usage: %s", a, lookup("logs").usage)
		default:
			rest = append(rest, a)
		}
	}
	id, err := sh.resolve(ctx, "logs", rest)
	if err != nil {
		return nil, err
	}
	get := func(offset int64, max int) (control.LogChunk, error) {
		cctx, cancel := sh.callCtx(ctx)
		defer cancel()
		return sh.c.Logs(cctx, id, offset, max)
	}
	chunk, err := get(-LogTail, LogTail)
	if err != nil {
		if follow && ctx.Err() != nil {
			return nil, nil
		}
		return nil, interrupted(ctx, "logs", err)
	}
	if !follow {
		sh.writeLog(id, chunk)
		return nil, nil
	}
	sh.writeLog(id, chunk)
	t := time.NewTicker(sh.o.FollowInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, nil // following ends when the caller cancels
		case <-t.C:
		}
		for { // drain what is there before waiting again
			next, err := get(chunk.Next, control.MaxLogChunk)
			if err != nil {
				if ctx.Err() != nil {
					return nil, nil
				}
				if sh.remote != nil && (errors.Is(err, control.ErrClosed) || errors.Is(err, context.DeadlineExceeded)) {
					// The node or the route to it went away: follow on
					// from the same offset once it is back.
					if rerr := sh.recoverFollow(ctx, id, err); rerr == nil {
						continue
					} else if ctx.Err() != nil {
						return nil, nil
					} else {
						return nil, fmt.Errorf("logs %d: follow: %w", id, rerr)
					}
				}
				return nil, fmt.Errorf("logs %d: follow: %w", id, err)
			}
			if len(next.Data) > 0 {
				sh.writeLog(id, next)
			}
			full := len(next.Data) >= control.MaxLogChunk
			chunk = next
			if !full {
				break
			}
		}
	}
}

// writeLog prints a chunk: raw in text mode, one object in JSON mode.
func (sh *shell) writeLog(id uint64, c control.LogChunk) {
	if sh.o.JSON {
		sh.emit(obj{{"cmd", "logs"}, {"ok", true}, {"id", id}, {"data", string(c.Data)}, {"next", c.Next}})
		return
	}
	if _, err := sh.o.Out.Write(c.Data); err != nil {
		sh.o.Logger.Debug("shell: write logs", "err", err)
	}
}
