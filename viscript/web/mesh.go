package web

import (
	"context"
	"errors"
	"time"

	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/viscript/control"
)

// Mesh is what the dashboard reads from the local node: the manager's
// directory, the node's own links with their counters, the routes in use
// and the node's registered apps. The command layer reads a running node
// over its control socket (web/nodemesh adapts a node); tests give an
// in-memory mesh or a simulated directory.
type Mesh interface {
	// Read returns the node's view now.
	Read(ctx context.Context) (MeshView, error)
	// Route returns the path the manager would choose from this node to
	// pk.
	Route(ctx context.Context, pk keys.PublicKey) (Route, error)
}

// MeshView is one reading of the local node.
type MeshView struct {
	Self keys.PublicKey
	// Nodes is the manager's directory (empty with DirectoryErr set when
	// it could not be read: the links and apps still show).
	Nodes        []DirNode
	DirectoryErr string
	// Links are this node's live links with their counters (the same
	// ones `skywire node links` and the node's link metrics show).
	Links []LinkCounters
	// Paths are the routes in use through or from this node, each from
	// one end to the other (a relay's rule as [in, self, out]).
	Paths [][]keys.PublicKey
	// Apps are the apps registered on the node's app socket, with their
	// mesh traffic.
	Apps []MeshApp
}

// DirNode is one node of the directory.
type DirNode struct {
	Key   keys.PublicKey
	Name  string // [node] name, "" when it has none
	Addrs []string
	Since time.Time
	Apps  []DirApp
	Links []DirLink
}

// DirApp is an app a node advertises.
type DirApp struct {
	Name string `json:"name"`
	Port uint16 `json:"port"`
}

// DirLink is a link as a node reports it to the manager.
type DirLink struct {
	Peer keys.PublicKey
	RTT  time.Duration
}

// LinkCounters is one local link.
type LinkCounters struct {
	Peer              keys.PublicKey
	RTT               time.Duration
	BytesIn, BytesOut uint64
}

// MeshApp is an app registered with the local node.
type MeshApp struct {
	Name              string
	Port              uint16
	PID               int
	BytesIn, BytesOut uint64
}

// Route is a path through the mesh.
type Route struct {
	Hops    []keys.PublicKey // from this node to the remote, inclusive
	Per     []time.Duration  // RTT of each link
	Latency time.Duration
}

// NodeSource gives the dashboard a Controller for a node by key. The
// dashboard asks for the local node (this viscript's own) with the zero
// key, whether or not the node's key is known yet. LocalNodes serves only
// that one; the mesh remote-control client is the NodeSource that will
// reach the others (it wraps LocalNodes for the zero key).
type NodeSource interface {
	Controller(ctx context.Context, pk keys.PublicKey) (control.Controller, error)
}

// ErrNotControlled is the answer for a node this viscript cannot control.
var ErrNotControlled = errors.New("this viscript does not control that node (remote control over the mesh is not connected)")

// LocalNodes is the NodeSource of one viscript alone: Ctrl is its
// supervisor, the local node's.
type LocalNodes struct{ Ctrl control.Controller }

// Controller implements NodeSource.
func (l LocalNodes) Controller(_ context.Context, pk keys.PublicKey) (control.Controller, error) {
	if pk.IsZero() {
		return l.Ctrl, nil
	}
	return nil, ErrNotControlled
}
