package cluster

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

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
//   - Membership of the mesh: keys that joined with an invitation, keys
//     removed, and invitations (their ID, the hash of their secret, uses
//     left, expiry). The state machine decides a join (uses left, not
//     expired, not removed) so that every member decides it alike, and
//     a node joining through all managers at once uses one use.
//     Members listed in a manager's config are not replicated: they are
//     that manager's config.

// Op is a Command's operation.
type Op uint8

// Operations.
const (
	OpRoutePut   Op = 1 // add or replace Route
	OpRouteDel   Op = 2 // delete route ID
	OpNodePut    Op = 3 // add or replace Node
	OpNodeDel    Op = 4 // delete node Key
	OpServerPut  Op = 5 // a member's key (before it is added to raft)
	OpServerDel  Op = 6
	OpMemberJoin Op = 7 // Member joins with the invitation Member.Invite at At
	OpMemberDel  Op = 8 // Member (joined) removed at At
	OpInvitePut  Op = 9 // a new Invite; invitations expired before Prune are forgotten
	// OpMemberImport brings in a member from a manager's members file of
	// before the cluster (joined, or removed if Removed): a no-op for a
	// key the log already has either way.
	OpMemberImport Op = 10
)

// Limits of one command and of the state, so that no entry can make a
// member hold unbounded memory.
const (
	maxHops       = 64
	maxAddrs      = 16
	maxApps       = 256
	maxStrLen     = 256
	MaxCommandLen = 64 << 10
	// MaxInvites bounds the invitations kept, MaxMembers the keys that
	// joined plus those removed.
	MaxInvites = 10000
	MaxMembers = 1 << 20
)

// Membership errors an applied command returns (every member alike).
var (
	ErrInviteRefused = errors.New("invitation refused")
	ErrMemberRemoved = errors.New("removed from this mesh by its operator")
	ErrMemberUnknown = errors.New("not a member of this mesh")
	ErrTooMany       = errors.New("too many")
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

// Member is a key that joined the mesh with an invitation.
type Member struct {
	Key    proto.Key `msgpack:"k"`
	Since  int64     `msgpack:"s"` // unix nanoseconds (removed: when)
	Invite string    `msgpack:"i,omitempty"`
}

// Invite is an invitation: the token's ID and the hex SHA-256 of its
// secret (the secret itself is never stored), uses left, expiry.
type Invite struct {
	ID      string `msgpack:"id"`
	Hash    string `msgpack:"h"`
	Uses    int    `msgpack:"u"`
	Expires int64  `msgpack:"e"` // unix nanoseconds
}

// Command is one log entry.
type Command struct {
	Op     Op        `msgpack:"o"`
	ID     uint64    `msgpack:"i,omitempty"`
	Key    proto.Key `msgpack:"k"`
	Route  *Route    `msgpack:"r,omitempty"`
	Node   *Node     `msgpack:"n,omitempty"`
	Server *Server   `msgpack:"s,omitempty"`
	Member *Member   `msgpack:"m,omitempty"`
	Invite *Invite   `msgpack:"iv,omitempty"`
	// Removed: an OpMemberImport of a removed key.
	Removed bool `msgpack:"rm,omitempty"`
	// At is when the proposer made the command (unix nanoseconds): the
	// state machine decides expiry with it, never with its own clock.
	At    int64 `msgpack:"at,omitempty"`
	Prune int64 `msgpack:"p,omitempty"`

	// Changed is set when applying the command changed the state (a
	// join of a key already joined does not).
	Changed bool `msgpack:"-"`
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
	case OpMemberJoin:
		mb := c.Member
		if mb == nil || mb.Key.PublicKey().IsZero() || mb.Invite == "" || len(mb.Invite) > maxStrLen {
			return fmt.Errorf("%w: member join without a key and an invitation ID", ErrBadCommand)
		}
	case OpMemberDel, OpMemberImport:
		if c.Member == nil || c.Member.Key.PublicKey().IsZero() || len(c.Member.Invite) > maxStrLen {
			return fmt.Errorf("%w: member delete without a key", ErrBadCommand)
		}
	case OpInvitePut:
		iv := c.Invite
		if iv == nil || iv.ID == "" || len(iv.ID) > maxStrLen || len(iv.Hash) > maxStrLen || iv.Uses < 1 {
			return fmt.Errorf("%w: invitation without an ID, a hash and at least one use", ErrBadCommand)
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
	Members map[keys.PublicKey]Member // joined with an invitation
	Removed map[keys.PublicKey]Member // removed (Since: when)
	Invites map[string]Invite         // by ID
}

func newState() State {
	return State{Routes: map[uint64]Route{}, Nodes: map[keys.PublicKey]Node{}, Servers: map[string]Server{},
		Members: map[keys.PublicKey]Member{}, Removed: map[keys.PublicKey]Member{}, Invites: map[string]Invite{}}
}

// apply applies c (checked) and returns the refusal of a membership
// command that does not change the state, as every member would.
func (s *State) apply(c *Command) error {
	c.Changed = true
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
	case OpMemberJoin:
		return s.join(c)
	case OpMemberDel:
		k := c.Member.Key.PublicKey()
		if _, ok := s.Members[k]; !ok {
			c.Changed = false
			return fmt.Errorf("remove %s: %w (only keys that joined with an invitation can be removed)", k.Short(), ErrMemberUnknown)
		}
		delete(s.Members, k)
		s.Removed[k] = Member{Key: c.Member.Key, Since: c.At}
	case OpMemberImport:
		k := c.Member.Key.PublicKey()
		_, joined := s.Members[k]
		_, removed := s.Removed[k]
		switch {
		case joined || removed:
			c.Changed = false
		case len(s.Members)+len(s.Removed) >= MaxMembers:
			c.Changed = false
			return fmt.Errorf("import member: %w members (%d)", ErrTooMany, MaxMembers)
		case c.Removed:
			s.Removed[k] = *c.Member
		default:
			s.Members[k] = *c.Member
		}
	case OpInvitePut:
		for id, iv := range s.Invites {
			if iv.Expires < c.Prune {
				delete(s.Invites, id)
			}
		}
		if _, dup := s.Invites[c.Invite.ID]; !dup && len(s.Invites) >= MaxInvites {
			c.Changed = false
			return fmt.Errorf("invite: %w outstanding invitations (%d)", ErrTooMany, MaxInvites)
		}
		s.Invites[c.Invite.ID] = *c.Invite
	}
	return nil
}

// join decides a join: a key already joined is fine (nothing changes:
// a node joins through every manager at once), a removed key, an
// unknown, expired or used-up invitation is refused.
func (s *State) join(c *Command) error {
	k := c.Member.Key.PublicKey()
	c.Changed = false
	if _, ok := s.Members[k]; ok {
		return nil
	}
	if _, gone := s.Removed[k]; gone {
		return fmt.Errorf("%s was %w (only listing it in [manager] members admits it again)", k.Short(), ErrMemberRemoved)
	}
	iv, ok := s.Invites[c.Member.Invite]
	switch {
	case !ok:
		return fmt.Errorf("%w: unknown token (not issued by this mesh's managers, or long expired); ask for a new one", ErrInviteRefused)
	case c.At >= iv.Expires:
		return fmt.Errorf("%w: token %s expired at %s; ask for a new one", ErrInviteRefused, iv.ID, time.Unix(0, iv.Expires).UTC().Format(time.RFC3339))
	case iv.Uses <= 0:
		return fmt.Errorf("%w: token %s is used up; ask for a new one", ErrInviteRefused, iv.ID)
	case len(s.Members)+len(s.Removed) >= MaxMembers:
		return fmt.Errorf("%w: %w members (%d)", ErrInviteRefused, ErrTooMany, MaxMembers)
	}
	iv.Uses--
	s.Invites[iv.ID] = iv
	s.Members[k] = Member{Key: c.Member.Key, Since: c.At, Invite: iv.ID}
	c.Changed = true
	return nil
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
		err = f.st.apply(c)
	}
	f.mu.Unlock()
	if c != nil && f.onApply != nil && c.Changed {
		f.onApply(c)
	}
	return err
}

// snapshotData is State on disk.
type snapshotData struct {
	Routes  []Route  `msgpack:"r"`
	Nodes   []Node   `msgpack:"n"`
	Servers []Server `msgpack:"s"`
	Members []Member `msgpack:"m"`
	Removed []Member `msgpack:"rm"`
	Invites []Invite `msgpack:"iv"`
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
		Members: slices.Collect(maps.Values(f.st.Members)),
		Removed: slices.Collect(maps.Values(f.st.Removed)),
		Invites: slices.Collect(maps.Values(f.st.Invites)),
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
	if len(d.Members)+len(d.Removed) > MaxMembers || len(d.Invites) > MaxInvites {
		return State{}, fmt.Errorf("restore cluster snapshot: more than %d members or %d invitations: %w", MaxMembers, MaxInvites, ErrBadCommand)
	}
	for _, mb := range d.Members {
		c := Command{Op: OpMemberImport, Member: &mb} // (an imported member has no invitation)
		if err := c.check(); err != nil {
			return State{}, fmt.Errorf("restore cluster snapshot: %w", err)
		}
		st.Members[mb.Key.PublicKey()] = mb
	}
	for _, mb := range d.Removed {
		c := Command{Op: OpMemberDel, Member: &mb}
		if err := c.check(); err != nil {
			return State{}, fmt.Errorf("restore cluster snapshot: %w", err)
		}
		st.Removed[mb.Key.PublicKey()] = mb
	}
	for _, iv := range d.Invites {
		c := Command{Op: OpInvitePut, Invite: &iv}
		// An invitation used up has no uses left: valid in a snapshot.
		if iv.Uses == 0 {
			c.Invite = &Invite{ID: iv.ID, Hash: iv.Hash, Uses: 1}
		}
		if iv.Uses < 0 || c.check() != nil {
			return State{}, fmt.Errorf("restore cluster snapshot: bad invitation: %w", ErrBadCommand)
		}
		st.Invites[iv.ID] = iv
	}
	return st, nil
}

// view calls fn with the state under the read lock.
func (f *fsm) view(fn func(st *State, applied uint64)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(&f.st, f.applied)
}
