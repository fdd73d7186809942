// Package cluster replicates a node manager's state with raft
// (github.com/hashicorp/raft, the engine of Consul and Nomad) among a few
// managers, so that the mesh keeps its control plane when any one of them
// is lost.
//
// The log and raft's stable store are a bbolt file (raft-boltdb) in
// data_dir; snapshots are files beside it, and raft compacts the log after
// each. Raft traffic runs over links (internal/mesh/link): authenticated
// with the managers' keys and encrypted, never in clear; see stream.go.
// What the log carries is in fsm.go; package manager decides what goes in.
package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/keys"
)

// Errors.
var (
	// ErrNoQuorum: no leader is known (an election is running, or fewer
	// than a majority of the members are reachable).
	ErrNoQuorum = errors.New("manager cluster has no quorum (no leader)")
	// ErrNotLeader is wrapped by NotLeaderError.
	ErrNotLeader = errors.New("not the manager cluster's leader")
)

// NotLeaderError names the leader a request should go to.
type NotLeaderError struct {
	ID   string
	Addr string
	Key  keys.PublicKey
}

func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("not leader, try %s (%s, raft %s)", e.Key, e.ID, e.Addr)
}

func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

const (
	applyTimeout   = 3 * time.Second
	statusTimeout  = 5 * time.Second
	maxStatusReply = 64 << 10
	snapshotRetain = 2
)

// Cluster is this manager's member of the raft cluster.
type Cluster struct {
	cfg    Config
	self   keys.PublicKey
	log    *slog.Logger
	r      *raft.Raft
	fsm    *fsm
	trans  *raft.NetworkTransport
	stream *streamLayer
	store  raftStore

	notify chan bool
	fwdSem chan struct{} // forwarded writes being served
	ready  chan struct{} // closed once r is set
	wg     sync.WaitGroup
	done   chan struct{}
	closed sync.Once
}

// Hooks are how the manager follows the cluster. Both run on the
// cluster's goroutines and must not block for long.
type Hooks struct {
	// Leader is called with true when this member becomes the leader and
	// with false when it stops being it.
	Leader func(bool)
	// Applied is called after every applied command.
	Applied func(*Command)
}

// Open starts this member: opens (or creates) the store in cfg.DataDir,
// bootstraps the cluster from the configured peers on the very first
// start, and joins raft. linkCfg is the manager's link configuration (its
// key pair). cfg must have been validated.
func Open(cfg Config, linkCfg link.Config, log *slog.Logger, hooks Hooks) (*Cluster, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("cluster", cfg.ID)
	self := linkCfg.Local.Public
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("open manager cluster: data_dir: %w", err)
	}
	store, err := openStore(filepath.Join(cfg.DataDir, "raft.db"))
	if err != nil {
		return nil, fmt.Errorf("open manager cluster: raft store in %s: %w", cfg.DataDir, err)
	}
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: &slogWriter{log: log}, DisableTime: true})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, snapshotRetain, hl)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("open manager cluster: snapshots: %w", err)
	}
	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.RaftAddr); err != nil {
			store.Close()
			return nil, fmt.Errorf("open manager cluster: listen on raft_addr: %w", err)
		}
	}
	c := &Cluster{cfg: cfg, self: self, log: log, fsm: &fsm{st: newState(), onApply: hooks.Applied},
		store: store, notify: make(chan bool, 8), fwdSem: make(chan struct{}, maxForwards), ready: make(chan struct{}), done: make(chan struct{})}
	// Raft links never carry much but the log: the node-link defaults
	// (1 s keepalive, dead after 3 s) suit them; close without linger.
	lcfg := linkCfg
	lcfg.Logger = log
	c.stream = newStreamLayer(ln, lcfg, c.keyOf, c.isMember, c.serveStatus, c.serveForward, log)
	c.stream.dialer = cfg.Dial
	c.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: c.stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: hl})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = 30 * time.Second
	rc.TrailingLogs = min(rc.TrailingLogs, cfg.SnapshotThreshold)
	rc.NotifyCh = c.notify
	rc.Logger = hl

	fail := func(err error) (*Cluster, error) {
		c.trans.Close()
		store.Close()
		return nil, fmt.Errorf("open manager cluster: %w", err)
	}
	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fail(err)
	}
	if !has && cfg.Join {
		log.Info("manager cluster: waiting to be added by the leader (join = true)")
	}
	if !has && !cfg.Join {
		// Every member bootstraps with the same configuration (the
		// config's peers); raft accepts that as one bootstrap.
		servers := []raft.Server{{ID: rc.LocalID, Address: raft.ServerAddress(c.localAddr())}}
		for _, p := range cfg.Peers {
			if p.ID != cfg.ID {
				servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
			}
		}
		slices.SortFunc(servers, func(a, b raft.Server) int { return strings.Compare(string(a.ID), string(b.ID)) })
		if err := raft.BootstrapCluster(rc, store, store, snaps, c.trans, raft.Configuration{Servers: servers}); err != nil {
			return fail(fmt.Errorf("bootstrap: %w", err))
		}
		log.Info("manager cluster bootstrapped", "members", len(servers), "data_dir", cfg.DataDir)
	}
	c.r, err = raft.NewRaft(rc, c.fsm, store, store, snaps, c.trans)
	if err != nil {
		return fail(err)
	}
	close(c.ready)
	c.wg.Go(func() { c.watchLeader(hooks.Leader) })
	log.Info("manager cluster member started", "raft_addr", c.localAddr(), "existing_state", has)
	return c, nil
}

// localAddr is this member's raft address as the others dial it.
func (c *Cluster) localAddr() string {
	if c.cfg.RaftAddr != "" {
		return c.cfg.RaftAddr
	}
	return c.stream.Addr().String()
}

func (c *Cluster) watchLeader(fn func(bool)) {
	for {
		select {
		case isLeader := <-c.notify:
			if isLeader {
				c.log.Info("this manager leads the cluster", "term", c.r.CurrentTerm())
			} else {
				c.log.Info("this manager no longer leads the cluster")
			}
			if fn != nil {
				fn(isLeader)
			}
		case <-c.done:
			return
		}
	}
}

// Close leaves raft (without telling the others: a restart rejoins) and
// closes the store. It returns after the cluster's goroutines exited.
func (c *Cluster) Close() error {
	var err error
	c.closed.Do(func() {
		err = c.r.Shutdown().Error()
		close(c.done)
		c.wg.Wait()
		c.trans.CloseStreams()
		c.trans.Close()
		if e := c.store.Close(); err == nil {
			err = e
		}
	})
	return err
}

// keyOf is the key the member at raft address addr must have.
func (c *Cluster) keyOf(addr string) (keys.PublicKey, bool) {
	for _, p := range c.cfg.Peers {
		if p.RaftAddr == addr && p.ID != c.cfg.ID {
			return p.PublicKey, true
		}
	}
	var k keys.PublicKey
	var ok bool
	c.fsm.view(func(st *State, _ uint64) {
		for _, s := range st.Servers {
			if s.RaftAddr == addr {
				k, ok = s.Key.PublicKey(), true
			}
		}
	})
	if !ok && addr == c.localAddr() {
		return c.self, true
	}
	return k, ok
}

// isMember says whether k is a member's key (configured or added).
func (c *Cluster) isMember(k keys.PublicKey) bool {
	if k == c.self {
		return true
	}
	for _, p := range c.cfg.Peers {
		if p.PublicKey == k {
			return true
		}
	}
	var ok bool
	c.fsm.view(func(st *State, _ uint64) {
		for _, s := range st.Servers {
			ok = ok || s.Key.PublicKey() == k
		}
	})
	return ok
}

// IsLeader says whether this member leads the cluster now.
func (c *Cluster) IsLeader() bool { return c.r.State() == raft.Leader }

// Leader returns the leader this member knows of, as a NotLeaderError
// (nil if this member leads), or ErrNoQuorum if none is known.
func (c *Cluster) Leader() error {
	if c.IsLeader() {
		return nil
	}
	addr, id := c.r.LeaderWithID()
	if addr == "" {
		return ErrNoQuorum
	}
	e := &NotLeaderError{ID: string(id), Addr: string(addr)}
	e.Key, _ = c.keyOf(string(addr))
	return e
}

// Apply replicates cmd and returns once a majority has it in its log and
// it is applied here, or with an error: ErrNotLeader (a NotLeaderError),
// ErrNoQuorum, or another error.
func (c *Cluster) Apply(cmd *Command) error {
	_, err := c.apply(cmd)
	return err
}

// apply is Apply, also returning the entry's log index.
func (c *Cluster) apply(cmd *Command) (uint64, error) {
	if err := c.Leader(); err != nil {
		return 0, err
	}
	b, err := cmd.Encode()
	if err != nil {
		return 0, err
	}
	f := c.r.Apply(b, applyTimeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
			errors.Is(err, raft.ErrLeadershipTransferInProgress):
			if lerr := c.Leader(); lerr != nil && !errors.Is(lerr, ErrNoQuorum) {
				return 0, lerr
			}
			return 0, fmt.Errorf("%w: %w", ErrNoQuorum, err)
		case errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrRaftShutdown):
			return 0, fmt.Errorf("%w: %w", ErrNoQuorum, err)
		}
		return 0, fmt.Errorf("replicate: %w", err)
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return f.Index(), err
	}
	return f.Index(), nil
}

// Routes returns the replicated routes.
func (c *Cluster) Routes() []Route {
	var out []Route
	c.fsm.view(func(st *State, _ uint64) {
		for _, r := range st.Routes {
			out = append(out, Route{ID: r.ID, Hops: slices.Clone(r.Hops), MaxHops: r.MaxHops})
		}
	})
	slices.SortFunc(out, func(a, b Route) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Nodes returns the replicated registrations.
func (c *Cluster) Nodes() []Node {
	var out []Node
	c.fsm.view(func(st *State, _ uint64) {
		for _, n := range st.Nodes {
			out = append(out, Node{Key: n.Key, Addrs: slices.Clone(n.Addrs), Apps: slices.Clone(n.Apps), AppsHidden: n.AppsHidden, Since: n.Since})
		}
	})
	return out
}

// Node returns one replicated registration.
func (c *Cluster) Node(k keys.PublicKey) (Node, bool) {
	var n Node
	var ok bool
	c.fsm.view(func(st *State, _ uint64) { n, ok = st.Nodes[k] })
	return n, ok
}

// MemberStatus is one member as Status sees it.
type MemberStatus struct {
	ID        string         `json:"id"`
	RaftAddr  string         `json:"raft_addr"`
	PublicKey keys.PublicKey `json:"public_key"`
	Voter     bool           `json:"voter"`
	// What the member says of itself (empty Err: it answered).
	State        string `json:"state,omitempty"`
	Term         uint64 `json:"term,omitempty"`
	LastIndex    uint64 `json:"last_index,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	Err          string `json:"error,omitempty"`
}

// Status is the cluster as this member sees it.
type Status struct {
	ID           string         `json:"id"`
	State        string         `json:"state"`
	Term         uint64         `json:"term"`
	LastIndex    uint64         `json:"last_index"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	LeaderID     string         `json:"leader_id,omitempty"`
	LeaderAddr   string         `json:"leader_addr,omitempty"`
	LeaderKey    keys.PublicKey `json:"leader_key,omitzero"`
	Members      []MemberStatus `json:"members"`
	Routes       int            `json:"routes"`
	Nodes        int            `json:"nodes"`
}

// selfStatus is what a member tells another about itself.
type selfStatus struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	AppliedIndex uint64 `json:"applied_index"`
}

func (c *Cluster) ownStatus() selfStatus {
	return selfStatus{ID: c.cfg.ID, State: c.r.State().String(), Term: c.r.CurrentTerm(),
		LastIndex: c.r.LastIndex(), AppliedIndex: c.r.AppliedIndex()}
}

// started waits until raft runs (the stream layer accepts before it
// does: a member asked for its status or sent a write while it starts).
func (c *Cluster) started() bool {
	select {
	case <-c.ready:
		return true
	case <-c.done:
	case <-time.After(statusTimeout):
	}
	return false
}

// serveStatus answers one status connection from another member.
func (c *Cluster) serveStatus(conn net.Conn) {
	if !c.started() {
		return
	}
	b, _ := json.Marshal(c.ownStatus())
	conn.Write(b)
}

// decodeStatus decodes a member's status answer.
func decodeStatus(b []byte) (selfStatus, error) {
	var s selfStatus
	if len(b) > maxStatusReply {
		return s, fmt.Errorf("status reply of %d bytes", len(b))
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("status reply: %w", err)
	}
	return s, nil
}

// memberStatus asks the member at addr for its status.
func (c *Cluster) memberStatus(addr string) (selfStatus, error) {
	conn, err := c.stream.dial(addr, purposeStatus, statusTimeout)
	if err != nil {
		return selfStatus{}, err
	}
	defer conn.Close()
	done := make(chan struct{})
	var b []byte
	go func() {
		defer close(done)
		b, err = io.ReadAll(io.LimitReader(conn, maxStatusReply+1))
	}()
	select {
	case <-done:
	case <-time.After(statusTimeout):
		conn.Close()
		<-done
		return selfStatus{}, fmt.Errorf("member %s did not answer within %v", addr, statusTimeout)
	}
	if err != nil && !errors.Is(err, link.ErrPeerClosed) && !errors.Is(err, link.ErrClosed) {
		return selfStatus{}, err
	}
	return decodeStatus(b)
}

// Status returns the cluster as this member sees it, asking every other
// member for its log index (in parallel, each within a few seconds).
func (c *Cluster) Status(ctx context.Context) (Status, error) {
	s := c.ownStatus()
	st := Status{ID: s.ID, State: s.State, Term: s.Term, LastIndex: s.LastIndex,
		CommitIndex: c.r.CommitIndex(), AppliedIndex: s.AppliedIndex}
	addr, id := c.r.LeaderWithID()
	st.LeaderID, st.LeaderAddr = string(id), string(addr)
	if addr != "" {
		st.LeaderKey, _ = c.keyOf(string(addr))
	}
	c.fsm.view(func(fs *State, _ uint64) { st.Routes, st.Nodes = len(fs.Routes), len(fs.Nodes) })
	f := c.r.GetConfiguration()
	if err := f.Error(); err != nil {
		return st, fmt.Errorf("cluster status: %w", err)
	}
	servers := f.Configuration().Servers
	st.Members = make([]MemberStatus, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		ms := &st.Members[i]
		ms.ID, ms.RaftAddr, ms.Voter = string(srv.ID), string(srv.Address), srv.Suffrage == raft.Voter
		if srv.ID == raft.ServerID(c.cfg.ID) {
			ms.PublicKey = c.self
			ms.State, ms.Term, ms.LastIndex, ms.AppliedIndex = s.State, s.Term, s.LastIndex, s.AppliedIndex
			continue
		}
		ms.PublicKey, _ = c.keyOf(ms.RaftAddr)
		wg.Go(func() {
			o, err := c.memberStatus(ms.RaftAddr)
			if err != nil {
				ms.Err = err.Error()
				return
			}
			ms.State, ms.Term, ms.LastIndex, ms.AppliedIndex = o.State, o.Term, o.LastIndex, o.AppliedIndex
		})
	}
	wg.Wait()
	return st, ctx.Err()
}

// Add adds a voting member: its key is replicated first, so that every
// member accepts its links, then raft adds it. A follower forwards it to
// the leader.
func (c *Cluster) Add(id, addr string, key keys.PublicKey) error {
	for !c.IsLeader() {
		err := c.forward(&forwardReq{Kind: fwdAdd, ID: id, Addr: addr, Key: proto.Key(key)})
		if err != errLeading {
			if err != nil {
				return fmt.Errorf("add member %s: %w", id, err)
			}
			return nil
		}
	}
	return c.add(id, addr, key)
}

// add is Add on the leader.
func (c *Cluster) add(id, addr string, key keys.PublicKey) error {
	if id == "" || addr == "" || key.IsZero() {
		return fmt.Errorf("add member: id, raft address and public key are all needed")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("add member: raft address %q: %w", addr, err)
	}
	if err := c.Apply(&Command{Op: OpServerPut, Server: &Server{ID: id, RaftAddr: addr, Key: proto.Key(key)}}); err != nil {
		return fmt.Errorf("add member %s: %w", id, err)
	}
	if err := c.r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, applyTimeout).Error(); err != nil {
		return fmt.Errorf("add member %s: %w", id, err)
	}
	c.log.Info("cluster member added", "id", id, "raft_addr", addr, "key", key.Short())
	return nil
}

// Remove removes a member; a follower forwards it to the leader.
func (c *Cluster) Remove(id string) error {
	for !c.IsLeader() {
		err := c.forward(&forwardReq{Kind: fwdRemove, ID: id})
		if err != errLeading {
			if err != nil {
				return fmt.Errorf("remove member %s: %w", id, err)
			}
			return nil
		}
	}
	return c.remove(id)
}

// remove is Remove on the leader.
func (c *Cluster) remove(id string) error {
	if err := c.Leader(); err != nil {
		return fmt.Errorf("remove member %s: %w", id, err)
	}
	if err := c.r.RemoveServer(raft.ServerID(id), 0, applyTimeout).Error(); err != nil {
		return fmt.Errorf("remove member %s: %w", id, err)
	}
	if err := c.Apply(&Command{Op: OpServerDel, Server: &Server{ID: id}}); err != nil &&
		!errors.Is(err, ErrNotLeader) { // removing ourselves: the new leader has the config
		return fmt.Errorf("remove member %s: %w", id, err)
	}
	c.log.Info("cluster member removed", "id", id)
	return nil
}

// Barrier returns once every entry committed before it is applied on
// this member (the leader): its state is then the whole log's.
func (c *Cluster) Barrier() error { return c.r.Barrier(applyTimeout).Error() }

// Snapshot takes a snapshot now (and compacts the log).
func (c *Cluster) Snapshot() error { return c.r.Snapshot().Error() }

// slogWriter turns raft's hclog lines into slog records.
type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	lvl := slog.LevelInfo
	switch {
	case strings.HasPrefix(line, "[ERROR]"):
		lvl = slog.LevelError
	case strings.HasPrefix(line, "[WARN]"):
		lvl = slog.LevelWarn
	case strings.HasPrefix(line, "[DEBUG]"), strings.HasPrefix(line, "[TRACE]"):
		lvl = slog.LevelDebug
	}
	w.log.Log(context.Background(), lvl, line)
	return len(p), nil
}

// Membership is the mesh's replicated membership: keys that joined, keys
// removed, invitations.
type Membership struct {
	Members []Member
	Removed []Member
	Invites []Invite
}

// Membership returns a copy of the replicated membership.
func (c *Cluster) Membership() Membership {
	var m Membership
	c.fsm.view(func(st *State, _ uint64) {
		m.Members = slices.Collect(maps.Values(st.Members))
		m.Removed = slices.Collect(maps.Values(st.Removed))
		m.Invites = slices.Collect(maps.Values(st.Invites))
	})
	return m
}

// MemberOf says whether k joined (joined) or was removed (removed).
func (c *Cluster) MemberOf(k keys.PublicKey) (joined, removed bool) {
	c.fsm.view(func(st *State, _ uint64) {
		_, joined = st.Members[k]
		_, removed = st.Removed[k]
	})
	return joined, removed
}

// InviteByID returns the invitation with ID id.
func (c *Cluster) InviteByID(id string) (Invite, bool) {
	var iv Invite
	var ok bool
	c.fsm.view(func(st *State, _ uint64) { iv, ok = st.Invites[id] })
	return iv, ok
}
