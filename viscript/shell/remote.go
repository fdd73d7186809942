package shell

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/skywire-mesh/skywire/viscript/control"
)

// Remote is how the shell reaches the viscripts of other nodes over the
// mesh (connect, la --all, and the command layer's --node). The command
// layer implements it with viscript/remote through the local node.
type Remote interface {
	// Connect opens a control connection to the node named by target
	// (pk:…). A node that refuses us answers the first request with
	// control.ErrUnauthorized; Connect need not find out.
	Connect(ctx context.Context, target string) (*Conn, error)
	// Nodes returns the targets la --all visits besides the local
	// viscript: the other nodes of the manager's directory.
	Nodes(ctx context.Context) ([]string, error)
}

// Conn is a control connection to another node's viscript.
type Conn struct {
	Ctrl control.Controller
	// Node is how the node is shown (its key).
	Node string
	// Close ends the connection.
	Close func() error
	// Done, if not nil, is closed when the connection is lost; the shell
	// then connects again before the next command.
	Done <-chan struct{}
}

// ErrNoRemote: connect or la --all in a shell without a way to reach the
// mesh.
var ErrNoRemote = errors.New("remote control is not available here")

// Defaults for remote control.
const (
	// AllTimeout bounds how long la --all waits for one node.
	AllTimeout = 5 * time.Second
	// allParallel is how many nodes la --all asks at once.
	allParallel = 8
	// LocalTarget is the connect argument that returns to the local
	// viscript.
	LocalTarget = "local"
)

// remoteState is the shell's current remote connection (nil: local).
type remoteState struct {
	target string // as given to connect
	conn   *Conn
}

// node names where commands run: "" for the local viscript.
func (sh *shell) node() string {
	if sh.remote == nil {
		return ""
	}
	return sh.remote.conn.Node
}

// prompt is the interactive prompt for the current node.
func (sh *shell) prompt() string {
	if n := sh.node(); n != "" {
		return "viscript " + shortNode(n) + "> "
	}
	return Prompt
}

// shortNode shortens a "pk:<64 hex>" key for the prompt and tables.
func shortNode(n string) string {
	if len(n) == 67 && n[:3] == "pk:" {
		return n[:11] + "…"
	}
	return n
}

// closeRemote ends the current remote connection, if any.
func (sh *shell) closeRemote() {
	if sh.remote != nil {
		if sh.remote.conn.Close != nil {
			_ = sh.remote.conn.Close()
		}
		sh.remote = nil
	}
}

// dial connects to target and checks that it lets us in (one List), so
// that a refusal shows at connect, naming our key.
func (sh *shell) dial(ctx context.Context, target string) (*Conn, error) {
	if sh.o.Remote == nil {
		return nil, fmt.Errorf("connect %s: %w (no local node to reach the mesh through)", target, ErrNoRemote)
	}
	cctx, cancel := sh.callCtx(ctx)
	defer cancel()
	conn, err := sh.o.Remote.Connect(cctx, target)
	if err != nil {
		return nil, interrupted(ctx, "connect", err)
	}
	if _, err := conn.Ctrl.List(cctx); err != nil {
		if conn.Close != nil {
			_ = conn.Close()
		}
		return nil, fmt.Errorf("connect %s: %w", conn.Node, interrupted(ctx, "connect", err))
	}
	return conn, nil
}

// switchTo makes conn (nil: the local viscript) where commands run.
func (sh *shell) switchTo(target string, conn *Conn) {
	sh.closeRemote()
	if conn == nil {
		sh.c = sh.local
		return
	}
	sh.remote = &remoteState{target: target, conn: conn}
	sh.c = conn.Ctrl
}

// reconnectIfLost connects again when the current remote connection was
// lost (its node restarted, the route failed and came back). ok is false
// when it was lost and could not be made again.
func (sh *shell) reconnectIfLost(ctx context.Context) error {
	if sh.remote == nil || sh.remote.conn.Done == nil {
		return nil
	}
	select {
	case <-sh.remote.conn.Done:
	default:
		return nil
	}
	target, node := sh.remote.target, sh.remote.conn.Node
	conn, err := sh.dial(ctx, target)
	if err != nil {
		return fmt.Errorf("the connection to %s was lost and connecting again failed: %w", node, err)
	}
	sh.switchTo(target, conn)
	return nil
}

// lost explains an error of a lost remote connection.
func (sh *shell) lost(err error) error {
	if sh.remote != nil && errors.Is(err, control.ErrClosed) {
		return fmt.Errorf("%w (the connection to %s was lost: its node, its viscript or the mesh route to it went away)", err, sh.remote.conn.Node)
	}
	return err
}

func (sh *shell) connect(ctx context.Context, args []string) (obj, error) {
	switch {
	case len(args) == 0:
		if n := sh.node(); n != "" {
			sh.printf("connected to %s\n", n)
			return obj{{"node", n}}, nil
		}
		sh.printf("local\n")
		return obj{{"node", LocalTarget}}, nil
	case len(args) > 1:
		return nil, usageErr(lookup("connect"))
	}
	target := args[0]
	if target == LocalTarget {
		if sh.local == nil {
			return nil, errorf(ErrUsage, "connect local: this shell has no local viscript (it was started with --node)")
		}
		sh.switchTo("", nil)
		sh.printf("back on the local viscript\n")
		return obj{{"node", LocalTarget}}, nil
	}
	conn, err := sh.dial(ctx, target)
	if err != nil {
		return nil, err
	}
	sh.switchTo(target, conn)
	sh.printf("connected to %s: commands run there now (connect local comes back)\n", conn.Node)
	return obj{{"node", conn.Node}}, nil
}

// nodeApps is what la --all found on one node.
type nodeApps struct {
	node string
	apps []control.AppInfo
	err  error
}

// listAll is la --all: the apps of the local viscript (or the one this
// shell is connected to) and of every other node of the directory that
// lets us in. Nodes that refuse or do not answer are listed as such.
func (sh *shell) listAll(ctx context.Context) (obj, error) {
	if sh.o.Remote == nil {
		return nil, fmt.Errorf("la --all: %w (no local node to reach the mesh through)", ErrNoRemote)
	}
	cctx, cancel := sh.callCtx(ctx)
	targets, err := sh.o.Remote.Nodes(cctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("la --all: the directory: %w", interrupted(ctx, "la --all", err))
	}
	var results []nodeApps
	if sh.local != nil {
		lctx, cancel := context.WithTimeout(ctx, AllTimeout)
		list, err := sh.local.List(lctx)
		cancel()
		results = append(results, nodeApps{node: LocalTarget, apps: list, err: err})
	}
	found := make([]nodeApps, len(targets))
	sem := make(chan struct{}, allParallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			found[i] = sh.listOne(ctx, t)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, interrupted(ctx, "la --all", ctx.Err())
	}
	results = append(results, found...)

	nodes := make([]obj, 0, len(results))
	var failed []nodeApps
	t := sh.table()
	t.row("NODE", "ID", "NAME", "PID", "STATE", "UPTIME", "SIGNAL", "RESTARTS")
	for _, r := range results {
		if r.err != nil {
			failed = append(failed, r)
			nodes = append(nodes, obj{{"node", r.node}, {"ok", false}, {"error", r.err.Error()}, {"code", errCode(r.err)}})
			continue
		}
		apps := r.apps
		if apps == nil {
			apps = []control.AppInfo{}
		}
		nodes = append(nodes, obj{{"node", r.node}, {"ok", true}, {"apps", apps}})
		for _, a := range apps {
			up, pid := "-", "-"
			if a.State == control.StateRunning || a.State == control.StateStopping {
				up = fmtUptime(a.UptimeS)
			}
			if a.Pid > 0 {
				pid = strconv.Itoa(a.Pid)
			}
			t.row(shortNode(r.node), strconv.FormatUint(a.ID, 10), a.Name, pid, string(a.State), up, yesNo(a.Connected), strconv.Itoa(a.Restarts))
		}
	}
	if !sh.o.JSON {
		t.flush()
		for _, r := range failed {
			sh.printf("%s: %s: %v\n", r.node, failState(r.err), r.err)
		}
	}
	return obj{{"nodes", nodes}}, nil
}

// failState says in a word why a node is missing from la --all.
func failState(err error) string {
	switch {
	case errors.Is(err, control.ErrUnauthorized):
		return "refused"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, control.ErrTimeout):
		return "timed out"
	}
	return "unreachable"
}

// listOne lists the apps of one remote node within AllTimeout.
func (sh *shell) listOne(ctx context.Context, target string) nodeApps {
	cctx, cancel := context.WithTimeout(ctx, AllTimeout)
	defer cancel()
	conn, err := sh.o.Remote.Connect(cctx, target)
	if err != nil {
		return nodeApps{node: target, err: err}
	}
	if conn.Close != nil {
		defer conn.Close()
	}
	list, err := conn.Ctrl.List(cctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %v: %w", AllTimeout, err)
	}
	return nodeApps{node: conn.Node, apps: list, err: err}
}

// recoverFollow connects to the current node again after logs -f lost
// it (cause), trying for up to Options.Timeout; it says so on Err. If
// that fails the lost connection stays current, and the next command
// tries again.
func (sh *shell) recoverFollow(ctx context.Context, id uint64, cause error) error {
	target, node := sh.remote.target, sh.remote.conn.Node
	if sh.remote.conn.Close != nil {
		_ = sh.remote.conn.Close() // a hung one too
	}
	if !sh.o.JSON {
		fmt.Fprintf(sh.o.Err, "logs %d: lost the connection to %s (%v); connecting again for up to %v\n", id, node, cause, sh.o.Timeout)
	}
	deadline := time.Now().Add(sh.o.Timeout)
	wait := sh.o.FollowInterval
	for {
		conn, err := sh.dial(ctx, target)
		if err == nil {
			sh.switchTo(target, conn)
			if !sh.o.JSON {
				fmt.Fprintf(sh.o.Err, "logs %d: connected to %s again; following on\n", id, node)
			}
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("the connection to %s was lost (%v) and could not be made again within %v: %w", node, cause, sh.o.Timeout, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}
