package cluster

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/internal/strictmsgpack"
	"github.com/skywire-mesh/skywire/keys"
)

// What the log replicates. Each entry is one Command (msgpack); the FSM
// applies it to State in log order on every member, so every member holds
// the same State at the same index.
//
//   - Routes: every route the leader installed, with its hops (a repair
//     replaces the hops). A new leader takes them over, verifies their
//     links against what the nodes report and repairs those that broke.
//   - Nodes: every registered node, with its addresses and apps (what
//     the directory serves). Links and their RTTs are not: they change
//     every few seconds, every node reports them to every manager, and a
//     new leader rebuilds the graph from those reports.
//   - Servers: the cluster's members and their keys (raft's own
//     configuration has the IDs and addresses; the keys that their links
//     must authenticate with come from here and from the config).

// Op is a Command's operation.
type Op uint8

// Operations.
const (
	OpRoutePut  Op = 1 // add or replace Route
	OpRouteDel  Op = 2 // delete route ID
	OpNodePut   Op = 3 // add or replace Node
	OpNodeDel   Op = 4 // delete node Key
	OpServerPut Op = 5 // a member's key (before it is added to raft)
	OpServerDel Op = 6
)

// Limits of one command and of the state, so that no entry can make a
// member hold unbounded memory.
const (
	maxHops       = 64
	maxAddrs      = 16
	maxApps       = 256
	maxStrLen     = 256
	MaxCommandLen = 64 << 10
)

// ErrBadCommand wraps every error of DecodeCommand and of Apply.
var ErrBadCommand = errors.New("bad cluster log entry")

// Route is a replicated route.
type Route struct {
	ID      uint64      `msgpack:"id"`
	Hops    []proto.Key `msgpack:"h"`
	MaxHops int         `msgpack:"mh"`
}

// Node is a replicated registration.
type Node struct {
	Key        proto.Key   `msgpack:"k"`
	Addrs      []string    `msgpack:"a"`
	Apps       []proto.App `msgpack:"ap"`
	AppsHidden bool        `msgpack:"ah,omitempty"`
	Since      int64       `msgpack:"s"` // unix nanoseconds
}

// Server is a member's key.
type Server struct {
	ID       string    `msgpack:"id"`
	RaftAddr string    `msgpack:"a"`
	Key      proto.Key `msgpack:"k"`
}

// Command is one log entry.
type Command struct {
	Op     Op        `msgpack:"o"`
	ID     uint64    `msgpack:"i,omitempty"`
	Key    proto.Key `msgpack:"k"`
	Route  *Route    `msgpack:"r,omitempty"`
	Node   *Node     `msgpack:"n,omitempty"`
	Server *Server   `msgpack:"s,omitempty"`
}

// Encode returns the command's bytes.
func (c *Command) Encode() ([]byte, error) {
	b, err := msgpack.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode cluster command: %w", err)
	}
	if len(b) > MaxCommandLen {
		return nil, fmt.Errorf("encode cluster command: %d bytes: %w", len(b), ErrBadCommand)
	}
	return b, nil
}

// DecodeCommand decodes and checks one log entry.
func DecodeCommand(b []byte) (*Command, error) {
	if len(b) > MaxCommandLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadCommand, len(b))
	}
	var c Command
	if err := strictmsgpack.Unmarshal(b, &c, strictmsgpack.Limits{NoExt: true}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCommand, err)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Command) check() error {
	switch c.Op {
	case OpRoutePut:
		r := c.Route
		if r == nil || r.ID == 0 || len(r.Hops) < 2 || len(r.Hops) > maxHops || r.Hops[0] == r.Hops[len(r.Hops)-1] {
			return fmt.Errorf("%w: route put without a route of 2..%d hops between two nodes", ErrBadCommand, maxHops)
		}
	case OpRouteDel:
		if c.ID == 0 {
			return fmt.Errorf("%w: route delete of route 0", ErrBadCommand)
		}
	case OpNodePut:
		n := c.Node
		if n == nil || len(n.Addrs) > maxAddrs || len(n.Apps) > maxApps {
			return fmt.Errorf("%w: node put without a node, or with more than %d addresses or %d apps", ErrBadCommand, maxAddrs, maxApps)
		}
		for _, a := range n.Addrs {
			if len(a) > maxStrLen {
				return fmt.Errorf("%w: node address of %d bytes", ErrBadCommand, len(a))
			}
		}
	case OpNodeDel:
	case OpServerPut:
		s := c.Server
		if s == nil || s.ID == "" || s.RaftAddr == "" || len(s.ID) > maxStrLen || len(s.RaftAddr) > maxStrLen || s.Key.PublicKey().IsZero() {
			return fmt.Errorf("%w: server put without an ID, address and key", ErrBadCommand)
		}
	case OpServerDel:
		if c.Server == nil || c.Server.ID == "" {
			return fmt.Errorf("%w: server delete without an ID", ErrBadCommand)
		}
	default:
		return fmt.Errorf("%w: unknown op %d", ErrBadCommand, c.Op)
	}
	return nil
}

// State is what every member holds.
type State struct {
	Routes  map[uint64]Route
	Nodes   map[keys.PublicKey]Node
	Servers map[string]Server
}

func newState() State {
	return State{Routes: map[uint64]Route{}, Nodes: map[keys.PublicKey]Node{}, Servers: map[string]Server{}}
}

func (s *State) apply(c *Command) {
	switch c.Op {
	case OpRoutePut:
		s.Routes[c.Route.ID] = *c.Route
	case OpRouteDel:
		delete(s.Routes, c.ID)
	case OpNodePut:
		s.Nodes[c.Node.Key.PublicKey()] = *c.Node
	case OpNodeDel:
		delete(s.Nodes, c.Key.PublicKey())
	case OpServerPut:
		s.Servers[c.Server.ID] = *c.Server
	case OpServerDel:
		delete(s.Servers, c.Server.ID)
	}
}

// fsm is raft's FSM over State. onApply, if set, is called after each
// applied command (not under the lock).
type fsm struct {
	mu      sync.RWMutex
	st      State  // guarded by mu
	applied uint64 // guarded by mu; index of the last applied entry

	onApply func(*Command)
}

// Apply implements raft.FSM. An entry that does not decode is skipped
// (and returned as an error to whoever applied it): the leader encodes
// every entry, so one can only come from a newer or broken member.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	c, err := DecodeCommand(l.Data)
	f.mu.Lock()
	f.applied = l.Index
	if err == nil {
		f.st.apply(c)
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if f.onApply != nil {
		f.onApply(c)
	}
	return nil
}

// snapshotData is State on disk.
type snapshotData struct {
	Routes  []Route  `msgpack:"r"`
	Nodes   []Node   `msgpack:"n"`
	Servers []Server `msgpack:"s"`
}

// Snapshot implements raft.FSM: a copy taken under the lock, written
// later by Persist.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d := &snapshotData{
		Routes:  slices.Collect(maps.Values(f.st.Routes)),
		Nodes:   slices.Collect(maps.Values(f.st.Nodes)),
		Servers: slices.Collect(maps.Values(f.st.Servers)),
	}
	return d, nil
}

// Persist implements raft.FSMSnapshot.
func (d *snapshotData) Persist(sink raft.SnapshotSink) error {
	b, err := msgpack.Marshal(d)
	if err == nil {
		_, err = sink.Write(b)
	}
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("persist cluster snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (d *snapshotData) Release() {}

// maxSnapshot bounds a snapshot read back (1 GiB: far beyond 10,000
// nodes and their routes).
const maxSnapshot = 1 << 30

// Restore implements raft.FSM.
func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxSnapshot+1))
	if err != nil {
		return fmt.Errorf("restore cluster snapshot: %w", err)
	}
	st, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	return nil
}

func decodeSnapshot(b []byte) (State, error) {
	if len(b) > maxSnapshot {
		return State{}, fmt.Errorf("restore cluster snapshot: larger than %d bytes: %w", maxSnapshot, ErrBadCommand)
	}
	var d snapshotData
	if err := strictmsgpack.Unmarshal(b, &d, strictmsgpack.Limits{NoExt: true}); err != nil {
		return State{}, fmt.Errorf("restore cluster snapshot: %w: %w", ErrBadCommand, err)
	}
	st := newState()
	for _, r := range d.Routes {
		c := Command{Op: OpRoutePut, Route: &r}
		if err := c.check(); err != nil {
			return State{}, fmt.Errorf("restore cluster snapshot: %w", err)
		}
		st.Routes[r.ID] = r
	}
	for _, n := range d.Nodes {
		c := Command{Op: OpNodePut, Node: &n}
		if err := c.check(); err != nil {
			return State{}, fmt.Errorf("restore cluster snapshot: %w", err)
		}
		st.Nodes[n.Key.PublicKey()] = n
	}
	for _, s := range d.Servers {
		c := Command{Op: OpServerPut, Server: &s}
		if err := c.check(); err != nil {
			return State{}, fmt.Errorf("restore cluster snapshot: %w", err)
		}
		st.Servers[s.ID] = s
	}
	return st, nil
}

// view calls fn with the state under the read lock.
func (f *fsm) view(fn func(st *State, applied uint64)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(&f.st, f.applied)
}
