package cli

import (
	"context"
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/skywire-mesh/skywire/internal/cli/config"
	"github.com/skywire-mesh/skywire/internal/cli/rolectl"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/node"
	"github.com/skywire-mesh/skywire/node/nodename"
	"github.com/skywire-mesh/skywire/viscript"
	"github.com/skywire-mesh/skywire/viscript/remote"
	"github.com/skywire-mesh/skywire/viscript/shell"
)

// Flags of remote control (viscript/remote).
var (
	viscriptNodeFlag = &ucli.StringFlag{Name: "node",
		Usage: "run the commands on the viscript of node `PUBKEY|NAME` over the mesh, as `connect PUBKEY|NAME` in the shell does; it must list this node's key in its [viscript] admins"}
	viscriptViaFlag = &ucli.StringFlag{Name: "via", DefaultText: "viscript.node",
		Usage: "the local node `PROFILE` to reach the mesh through (\"\" is [node], NAME is [nodes.NAME]); for --serve, the node whose mesh port admins call"}
)

// viscriptNodeSockets resolves the app and control sockets of viscript's
// node: --via, else [viscript] node.
func viscriptNodeSockets(c *ucli.Context, f *config.File) (appSock, ctlSock string, err error) {
	an := config.AppNode{Node: f.Viscript.Node}
	if c.IsSet("via") {
		an.Node = c.String("via")
	}
	appSock, ctlSock, err = f.NodeSockets("viscript", an, "")
	if err != nil && c.IsSet("via") {
		return "", "", fmt.Errorf("--via %q: %w", an.Node, err)
	}
	return appSock, ctlSock, err
}

// loadAdmins re-reads [viscript] admins from the config file at path
// (Config.LoadAdmins, for reload).
func loadAdmins(path string) func() ([]keys.PublicKey, error) {
	return func() ([]keys.PublicKey, error) {
		nf, err := config.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return nf.Viscript.Admins, nil
	}
}

// shellRemote is the shell's way to other nodes' viscripts: streams
// through the local node, the directory from its control socket.
type shellRemote struct {
	dialer  *remote.Dialer
	ctlSock string
	err     error // why there is no node to go through (told at first use)
}

// newShellRemote resolves the node to go through. A shell that never
// leaves this machine does not need one: a bad --via fails at once, a
// problem with [viscript] node only at connect or la --all.
func newShellRemote(c *ucli.Context, f *config.File, cfg viscript.Config) (*shellRemote, error) {
	appSock, ctlSock, err := viscriptNodeSockets(c, f)
	if err != nil {
		if c.IsSet("via") || c.IsSet("node") {
			return nil, err
		}
		return &shellRemote{err: err}, nil
	}
	return &shellRemote{dialer: &remote.Dialer{NodeSocket: appSock, Port: cfg.RemotePort}, ctlSock: ctlSock}, nil
}

func (r *shellRemote) Close() error {
	if r.dialer == nil {
		return nil
	}
	return r.dialer.Close()
}

// Connect implements shell.Remote.
func (r *shellRemote) Connect(ctx context.Context, target string) (*shell.Conn, error) {
	if r.err != nil {
		return nil, r.err
	}
	// A key, or a name exactly one node of the directory claims (an
	// ambiguous or unknown name is an error listing the candidates).
	n, err := nodename.New(ctlSource{r.ctlSock}).ResolveNode(ctx, target)
	if err != nil {
		return nil, fmt.Errorf("connect %q: %w", target, err)
	}
	cl, err := r.dialer.Dial(ctx, n.Key)
	if err != nil {
		return nil, err
	}
	return &shell.Conn{Ctrl: cl, Node: n.String(), Close: cl.Close, Done: cl.Done()}, nil
}

// Nodes implements shell.Remote: every node of the directory but ours.
func (r *shellRemote) Nodes(ctx context.Context) ([]string, error) {
	if r.err != nil {
		return nil, r.err
	}
	self, err := r.dialer.LocalKey(ctx)
	if err != nil {
		return nil, err
	}
	var es []node.DirectoryEntry
	if err := rolectl.Get(ctx, r.ctlSock, "/directory", &es); err != nil {
		return nil, err
	}
	var out []string
	for _, e := range es {
		if e.Key != self {
			out = append(out, e.Key.String())
		}
	}
	return out, nil
}
