package manager

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/internal/ratelimit"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager/cluster"
)

// Admission modes (Config.Admit).
const (
	// AdmitOpen admits every key: a public mesh.
	AdmitOpen = "open"
	// AdmitMembers admits only members: keys in Config.Members and keys
	// that joined with an invitation token.
	AdmitMembers = "members"
)

// Membership errors.
var (
	// ErrNotMember: the key is not a member of this mesh.
	ErrNotMember = errors.New("not a member of this mesh")
	// ErrConfigMember: the key is listed in the manager's config, which
	// only the operator editing the config can change.
	ErrConfigMember = errors.New("member listed in the config")
	// ErrOpenMesh: the manager admits every key; there is no membership to
	// change.
	ErrOpenMesh = errors.New("the manager admits every key (admit = \"open\")")
	// ErrTooManyInvites: MaxInvites invitations are outstanding.
	ErrTooManyInvites = errors.New("too many outstanding invitations")
)

// NotMemberHint is what a refused node is told to do.
const NotMemberHint = "ask the manager's operator for an invitation: skywire manager invite"

const (
	// MaxInvites bounds the invitations a manager keeps (outstanding, and
	// used up or expired ones it still recognises).
	MaxInvites = 10000
	// MaxInviteTTL bounds an invitation's lifetime.
	MaxInviteTTL = 365 * 24 * time.Hour
	// DefaultInviteTTL is an invitation's lifetime unless told otherwise.
	DefaultInviteTTL = 24 * time.Hour
	// inviteKeep is how long an expired invitation is remembered, so that
	// using it gets "expired" rather than "unknown".
	inviteKeep = 7 * 24 * time.Hour
	// Join attempts (a hello with an invitation from a key that is not a
	// member yet) are rate limited per source address (ratelimit.Source):
	// a burst of joinBurst, refilled at joinRate per second, for at most
	// joinSources sources; and, as a backstop against many sources, all
	// together at joinRateAll per second (burst joinBurstAll). Tokens
	// carry 128 random bits, so this only keeps a flood of bad tokens from
	// costing hashing and log lines, and one flooding host from delaying
	// anyone else's join.
	joinBurst    = 10
	joinRate     = 0.5
	joinSources  = 4096
	joinBurstAll = 200
	joinRateAll  = 50
	// membersFileVersion is the version of the members file format.
	membersFileVersion = 1
)

// MemberInfo is one member of the mesh.
type MemberInfo struct {
	Key keys.PublicKey
	// How: "config" (listed in the manager's config) or "joined" (with an
	// invitation).
	How string
	// Since is when the key joined (zero for config members).
	Since time.Time `json:",omitzero"`
	// Invite is the ID of the invitation it joined with.
	Invite string `json:",omitempty"`
	// Registered: the node is connected to the manager now.
	Registered bool
}

// Invitation is a new invitation: Token is given to the joining node's
// operator; the manager keeps only ID and a hash of the secret.
type Invitation struct {
	Token   string
	ID      string
	Uses    int
	Expires time.Time
}

// MembershipStats are the membership counters.
type MembershipStats struct {
	Admit          string
	Members        int
	Invites        int    // invitations with uses left and not expired
	Refused        uint64 // connections refused: not a member
	InvitesRefused uint64 // join attempts refused: bad, unknown, used-up or expired token
	Joined         uint64 // keys that joined with an invitation
	Evicted        uint64 // members removed
}

type joinedMember struct {
	Key    keys.PublicKey `json:"key"`
	Since  time.Time      `json:"since"`
	Invite string         `json:"invite,omitempty"`
}

type invitation struct {
	ID      string    `json:"id"`
	Hash    string    `json:"hash"` // hex SHA-256 of the token's secret
	Uses    int       `json:"uses"` // left
	Expires time.Time `json:"expires"`
}

// membersFile is what the manager persists in its state directory.
type membersFile struct {
	Version int            `json:"version"`
	Members []joinedMember `json:"members"`
	Invites []invitation   `json:"invites"`
	// Removed are keys evicted with Remove: they cannot join again with
	// an invitation (listing one in Config.Members admits it again).
	Removed []joinedMember `json:"removed"`
}

// members is the manager's member store. Its lock is never held together
// with Manager.mu.
type members struct {
	open bool
	path string // "" keeps joined members in memory only

	mu      sync.Mutex
	config  map[keys.PublicKey]bool         // guarded by mu
	joined  map[keys.PublicKey]joinedMember // guarded by mu
	removed map[keys.PublicKey]time.Time    // guarded by mu
	invites map[string]*invitation          // guarded by mu; by ID
	joins   *ratelimit.Keyed[netip.Prefix]  // join attempts per source
	allJoin ratelimit.Bucket                // guarded by mu; join attempts from all sources

	refused, invitesRefused atomic.Uint64
	joinedCount, evicted    atomic.Uint64

	// cl, in a manager cluster, holds joined and removed members and
	// invitations (replicated through the raft log: every manager honours
	// a member or an invitation added at any one, and they outlive the
	// loss of any one); joined and removed above then hold only what the
	// members file had from before the cluster (Manager.importMembers
	// brings them in), and the file is not written. Config members stay
	// each manager's own.
	cl *cluster.Cluster
}

func newMembers(cfg Config) (*members, error) {
	s := &members{
		open:    cfg.Admit == AdmitOpen,
		path:    cfg.MembersFile,
		config:  make(map[keys.PublicKey]bool),
		joined:  make(map[keys.PublicKey]joinedMember),
		removed: make(map[keys.PublicKey]time.Time),
		invites: make(map[string]*invitation),
		joins:   ratelimit.NewKeyed[netip.Prefix](joinRate, joinBurst, joinSources),
		allJoin: ratelimit.Bucket{Rate: joinRateAll, Burst: joinBurstAll},
	}
	for _, k := range cfg.Members {
		s.config[k] = true
	}
	if s.path == "" {
		return s, nil
	}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("members file: %w", err)
	}
	var f membersFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("members file %s: %w (move it away to start with no joined members)", s.path, err)
	}
	if f.Version != membersFileVersion {
		return nil, fmt.Errorf("members file %s: version %d, want %d", s.path, f.Version, membersFileVersion)
	}
	for _, jm := range f.Members {
		s.joined[jm.Key] = jm
	}
	for _, inv := range f.Invites {
		s.invites[inv.ID] = &inv
	}
	for _, r := range f.Removed {
		s.removed[r.Key] = r.Since
	}
	return s, nil
}

// admit decides whether k, connected from src (ratelimit.Source; the zero
// prefix when not IP), may register, consuming a use of the invitation
// join if k needs it. joined reports that k just became a member.
func (s *members) admit(k keys.PublicKey, join string, src netip.Prefix, now time.Time) (code proto.Code, msg string, joined bool) {
	if s.open {
		return proto.CodeOK, "", false
	}
	if s.cl != nil {
		return s.admitReplicated(k, join, src, now)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, j := s.joined[k]; j || s.config[k] {
		return proto.CodeOK, "", false
	}
	if _, gone := s.removed[k]; gone {
		return proto.CodeNotMember, fmt.Sprintf("%s was removed from this mesh by its operator (only listing it in [manager] members admits it again)", k.Short()), false
	}
	if join == "" {
		return proto.CodeNotMember, fmt.Sprintf("%s is %v (%s)", k.Short(), ErrNotMember, NotMemberHint), false
	}
	refuse := func(format string, args ...any) (proto.Code, string, bool) {
		return proto.CodeBadInvite, fmt.Sprintf("invitation refused: "+format, args...), false
	}
	if !s.joins.Allow(src, now) {
		return refuse("too many join attempts from your address; try again in a few seconds")
	}
	if !s.allJoin.Allow(now) {
		return refuse("too many join attempts at this manager; try again in a few seconds")
	}
	tok, err := proto.ParseInvite(join)
	if err != nil {
		return refuse("%v", err)
	}
	inv := s.invites[tok.IDString()]
	var h [32]byte
	if inv != nil {
		if b, err := hex.DecodeString(inv.Hash); err == nil && len(b) == len(h) {
			copy(h[:], b)
		}
	}
	switch {
	case inv == nil || !tok.MatchesHash(h):
		return refuse("unknown token (not issued by this manager, or long expired); ask for a new one")
	case !now.Before(inv.Expires):
		return refuse("token %s expired at %s; ask for a new one", inv.ID, inv.Expires.UTC().Format(time.RFC3339))
	case inv.Uses <= 0:
		return refuse("token %s is used up; ask for a new one", inv.ID)
	}
	inv.Uses--
	s.joined[k] = joinedMember{Key: k, Since: now, Invite: inv.ID}
	s.joinedCount.Add(1)
	return proto.CodeOK, "", true
}

// admitReplicated is admit in a manager cluster: the invitation is
// checked here against the replicated one, and the join is decided by
// the raft log (OpMemberJoin; a follower forwards it to the leader), so
// that one use is spent however many managers the node joins through.
// joined is false: every manager announces the join when it applies it
// (Manager.onMembership).
func (s *members) admitReplicated(k keys.PublicKey, join string, src netip.Prefix, now time.Time) (proto.Code, string, bool) {
	s.mu.Lock()
	isConfig := s.config[k]
	s.mu.Unlock()
	if isConfig {
		return proto.CodeOK, "", false
	}
	j, gone := s.cl.MemberOf(k)
	switch {
	case j:
		return proto.CodeOK, "", false
	case gone:
		return proto.CodeNotMember, fmt.Sprintf("%s was removed from this mesh by its operator (only listing it in [manager] members admits it again)", k.Short()), false
	case join == "":
		return proto.CodeNotMember, fmt.Sprintf("%s is %v (%s)", k.Short(), ErrNotMember, NotMemberHint), false
	}
	refuse := func(format string, args ...any) (proto.Code, string, bool) {
		return proto.CodeBadInvite, fmt.Sprintf("invitation refused: "+format, args...), false
	}
	s.mu.Lock()
	allowed, allowedAll := s.joins.Allow(src, now), false
	if allowed {
		allowedAll = s.allJoin.Allow(now)
	}
	s.mu.Unlock()
	if !allowed {
		return refuse("too many join attempts from your address; try again in a few seconds")
	}
	if !allowedAll {
		return refuse("too many join attempts at this manager; try again in a few seconds")
	}
	tok, err := proto.ParseInvite(join)
	if err != nil {
		return refuse("%v", err)
	}
	iv, ok := s.cl.InviteByID(tok.IDString())
	var h [32]byte
	if b, err := hex.DecodeString(iv.Hash); ok && err == nil && len(b) == len(h) {
		copy(h[:], b)
	}
	if !ok || !tok.MatchesHash(h) {
		return refuse("unknown token (not issued by this mesh's managers, or long expired); ask for a new one")
	}
	// Expiry and uses are decided by the log (the same on every member).
	err = s.cl.Submit(&cluster.Command{Op: cluster.OpMemberJoin, At: now.UnixNano(),
		Member: &cluster.Member{Key: proto.Key(k), Since: now.UnixNano(), Invite: iv.ID}})
	switch {
	case err == nil:
		return proto.CodeOK, "", false
	case errors.Is(err, cluster.ErrMemberRemoved):
		return proto.CodeNotMember, fmt.Sprintf("%s was removed from this mesh by its operator (only listing it in [manager] members admits it again)", k.Short()), false
	case errors.Is(err, cluster.ErrInviteRefused):
		msg := err.Error()
		if i := strings.Index(msg, cluster.ErrInviteRefused.Error()+": "); i >= 0 {
			msg = msg[i+len(cluster.ErrInviteRefused.Error())+2:]
		}
		return refuse("%s", msg)
	}
	return refuse("the manager cluster could not record the join (%v); try again", err)
}

// invite makes an invitation for uses joins within ttl.
func (s *members) invite(uses int, ttl time.Duration, now time.Time) (Invitation, error) {
	if s.open {
		return Invitation{}, fmt.Errorf("invite: %w: every key may join without one", ErrOpenMesh)
	}
	if uses < 1 {
		return Invitation{}, fmt.Errorf("invite: uses = %d, want at least 1", uses)
	}
	if ttl <= 0 || ttl > MaxInviteTTL {
		return Invitation{}, fmt.Errorf("invite: expires = %v, want more than 0 and at most %v", ttl, MaxInviteTTL)
	}
	tok, err := proto.NewInvite()
	if err != nil {
		return Invitation{}, err
	}
	h := tok.Hash()
	inv := &invitation{ID: tok.IDString(), Hash: hex.EncodeToString(h[:]), Uses: uses, Expires: now.Add(ttl)}
	if s.cl != nil {
		err := s.cl.Submit(&cluster.Command{Op: cluster.OpInvitePut, At: now.UnixNano(), Prune: now.Add(-inviteKeep).UnixNano(),
			Invite: &cluster.Invite{ID: inv.ID, Hash: inv.Hash, Uses: uses, Expires: inv.Expires.UnixNano()}})
		if errors.Is(err, cluster.ErrTooMany) {
			return Invitation{}, fmt.Errorf("invite: %w (%d)", ErrTooManyInvites, MaxInvites)
		}
		if err != nil {
			return Invitation{}, fmt.Errorf("invite: %w", err)
		}
		return Invitation{Token: tok.String(), ID: inv.ID, Uses: uses, Expires: inv.Expires}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(now)
	if len(s.invites) >= MaxInvites {
		return Invitation{}, fmt.Errorf("invite: %w (%d)", ErrTooManyInvites, MaxInvites)
	}
	s.invites[inv.ID] = inv
	if err := s.saveLocked(); err != nil {
		delete(s.invites, inv.ID)
		return Invitation{}, fmt.Errorf("invite: %w", err)
	}
	return Invitation{Token: tok.String(), ID: inv.ID, Uses: uses, Expires: inv.Expires}, nil
}

// pruneLocked forgets invitations expired long ago.
func (s *members) pruneLocked(now time.Time) {
	for id, inv := range s.invites {
		if now.Sub(inv.Expires) > inviteKeep {
			delete(s.invites, id)
		}
	}
}

// remove evicts a member that joined.
func (s *members) remove(k keys.PublicKey) error {
	if s.open {
		return fmt.Errorf("remove %s: %w", k.Short(), ErrOpenMesh)
	}
	s.mu.Lock()
	isConfig := s.config[k]
	s.mu.Unlock()
	if isConfig {
		return fmt.Errorf("remove %s: %w: edit [manager] members in the config and restart the manager", k.Short(), ErrConfigMember)
	}
	if s.cl != nil {
		err := s.cl.Submit(&cluster.Command{Op: cluster.OpMemberDel, At: time.Now().UnixNano(), Member: &cluster.Member{Key: proto.Key(k)}})
		if errors.Is(err, cluster.ErrMemberUnknown) {
			return fmt.Errorf("remove %s: %w", k.Short(), ErrNotMember)
		}
		if err != nil {
			return fmt.Errorf("remove %s: %w", k.Short(), err)
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	jm, ok := s.joined[k]
	if !ok {
		return fmt.Errorf("remove %s: %w", k.Short(), ErrNotMember)
	}
	delete(s.joined, k)
	s.removed[k] = time.Now()
	if err := s.saveLocked(); err != nil {
		s.joined[k] = jm
		delete(s.removed, k)
		return fmt.Errorf("remove %s: %w", k.Short(), err)
	}
	s.evicted.Add(1)
	return nil
}

// list returns every member, config members first, each part sorted by key.
func (s *members) list() []MemberInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	joined := s.joinedLocked()
	out := make([]MemberInfo, 0, len(s.config)+len(joined))
	for k := range s.config {
		out = append(out, MemberInfo{Key: k, How: "config"})
	}
	for k, jm := range joined {
		if !s.config[k] {
			out = append(out, MemberInfo{Key: k, How: "joined", Since: jm.Since, Invite: jm.Invite})
		}
	}
	slices.SortFunc(out, func(a, b MemberInfo) int {
		if a.How != b.How {
			if a.How == "config" {
				return -1
			}
			return 1
		}
		return cmpKey(a.Key, b.Key)
	})
	return out
}

// keys returns every member's key (for the full set sent to nodes).
func (s *members) keys() []proto.Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	joined := s.joinedLocked()
	out := make([]proto.Key, 0, len(s.config)+len(joined))
	for k := range s.config {
		out = append(out, proto.Key(k))
	}
	for k := range joined {
		if !s.config[k] {
			out = append(out, proto.Key(k))
		}
	}
	return out
}

func (s *members) stats(now time.Time) MembershipStats {
	st := MembershipStats{Admit: AdmitMembers, Refused: s.refused.Load(), InvitesRefused: s.invitesRefused.Load(),
		Joined: s.joinedCount.Load(), Evicted: s.evicted.Load()}
	if s.open {
		st.Admit = AdmitOpen
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Members = len(s.config)
	for k := range s.joinedLocked() {
		if !s.config[k] {
			st.Members++
		}
	}
	if s.cl != nil {
		for _, iv := range s.cl.Membership().Invites {
			if iv.Uses > 0 && now.UnixNano() < iv.Expires {
				st.Invites++
			}
		}
		return st
	}
	for _, inv := range s.invites {
		if inv.Uses > 0 && now.Before(inv.Expires) {
			st.Invites++
		}
	}
	return st
}

// joinedLocked returns the members that joined: this manager's own, or
// the cluster's.
func (s *members) joinedLocked() map[keys.PublicKey]joinedMember {
	if s.cl == nil {
		return s.joined
	}
	ms := s.cl.Membership().Members
	out := make(map[keys.PublicKey]joinedMember, len(ms))
	for _, mb := range ms {
		k := mb.Key.PublicKey()
		out[k] = joinedMember{Key: k, Since: time.Unix(0, mb.Since), Invite: mb.Invite}
	}
	return out
}

// save persists joined members and invitations.
func (s *members) save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveLocked()
}

// saveLocked writes the members file atomically (temporary file, fsync,
// rename, fsync of the directory), mode 0600.
func (s *members) saveLocked() error {
	if s.path == "" || s.cl != nil { // a cluster keeps them in its log
		return nil
	}
	f := membersFile{Version: membersFileVersion, Members: []joinedMember{}, Invites: []invitation{}}
	for _, jm := range s.joined {
		f.Members = append(f.Members, jm)
	}
	slices.SortFunc(f.Members, func(a, b joinedMember) int { return cmpKey(a.Key, b.Key) })
	for _, inv := range s.invites {
		f.Invites = append(f.Invites, *inv)
	}
	slices.SortFunc(f.Invites, func(a, b invitation) int { return a.Expires.Compare(b.Expires) })
	f.Removed = []joinedMember{}
	for k, t := range s.removed {
		f.Removed = append(f.Removed, joinedMember{Key: k, Since: t})
	}
	slices.SortFunc(f.Removed, func(a, b joinedMember) int { return cmpKey(a.Key, b.Key) })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path, append(b, '\n'))
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename: already gone
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// admitNode decides whether the node on lc may register. A refused node
// gets a Welcome with the reason (the caller then closes the link); a node
// that just joined with an invitation is persisted and announced.
func (m *Manager) admitNode(lc *link.Conn, addr net.Addr, hello *proto.Hello, log *slog.Logger) bool {
	key := lc.Remote()
	src, _ := ratelimit.Source(addr)
	code, msg, joined := m.mem.admit(key, hello.Join, src, time.Now())
	if code != proto.CodeOK {
		if code == proto.CodeBadInvite {
			m.mem.invitesRefused.Add(1)
		} else {
			m.mem.refused.Add(1)
		}
		m.send(lc, &proto.Welcome{Version: proto.Version, Code: code, Msg: msg})
		log.Warn("node refused: not a member", "key", key, "code", code, "reason", msg)
		return false
	}
	if joined {
		if err := m.mem.save(); err != nil {
			log.Error("joined member not persisted: it must join again after a manager restart", "key", key, "err", err)
		}
		log.Info("node joined the mesh with an invitation", "key", key)
		m.broadcastMembers(&proto.Members{Add: []proto.Key{proto.Key(key)}})
	}
	return true
}

// welcome accepts a registered node and, if the manager admits members
// only, sends it the full member set. Changes broadcast meanwhile wait for
// ns.memMu, so they arrive after the full set.
func (m *Manager) welcome(ns *nodeState) error {
	ns.memMu.Lock()
	defer ns.memMu.Unlock()
	if err := m.send(ns.conn, &proto.Welcome{Version: proto.Version, Members: !m.mem.open}); err != nil {
		return err
	}
	if !m.mem.open {
		ks := m.mem.keys()
		total := uint32(len(ks))
		for full := true; full || len(ks) > 0; full = false {
			n := min(len(ks), proto.MaxMembers)
			msg := &proto.Members{Full: full, Add: ks[:n]}
			if full {
				msg.Total = total
			}
			if err := m.send(ns.conn, msg); err != nil {
				return err
			}
			ks = ks[n:]
		}
	}
	ns.memReady = true
	return nil
}

// broadcastMembers sends a change of the member set to every registered
// node that has its full set.
func (m *Manager) broadcastMembers(msg *proto.Members) {
	if m.mem.open {
		return
	}
	m.mu.Lock()
	nodes := make([]*nodeState, 0, len(m.nodes))
	for _, ns := range m.nodes {
		nodes = append(nodes, ns)
	}
	m.mu.Unlock()
	for _, ns := range nodes {
		ns.memMu.Lock()
		if ns.memReady {
			m.send(ns.conn, msg)
		}
		ns.memMu.Unlock()
	}
}

// Members lists the mesh's members (config members first). A manager that
// admits every key has none to list.
func (m *Manager) Members() []MemberInfo {
	out := m.mem.list()
	m.mu.Lock()
	for i := range out {
		out[i].Registered = m.nodes[out[i].Key] != nil
	}
	m.mu.Unlock()
	return out
}

// InvitationInfo is an invitation the manager knows (never its secret).
type InvitationInfo struct {
	ID      string
	Uses    int // left
	Expires time.Time
}

// Invitations lists the invitations the manager knows (outstanding, used
// up, or expired less than a week ago), by ID; in a cluster, the
// replicated ones.
func (m *Manager) Invitations() []InvitationInfo {
	var out []InvitationInfo
	if m.cl != nil {
		for _, iv := range m.cl.Membership().Invites {
			out = append(out, InvitationInfo{ID: iv.ID, Uses: iv.Uses, Expires: time.Unix(0, iv.Expires)})
		}
	} else {
		m.mem.mu.Lock()
		for _, iv := range m.mem.invites {
			out = append(out, InvitationInfo{ID: iv.ID, Uses: iv.Uses, Expires: iv.Expires})
		}
		m.mem.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b InvitationInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Invite makes an invitation good for uses joins within ttl (0: the
// default, DefaultInviteTTL) and persists it. The token is returned, never
// stored.
func (m *Manager) Invite(uses int, ttl time.Duration) (Invitation, error) {
	if ttl == 0 {
		ttl = DefaultInviteTTL
	}
	inv, err := m.mem.invite(uses, ttl, time.Now())
	if err != nil {
		return inv, err
	}
	m.log.Info("invitation created", "id", inv.ID, "uses", inv.Uses, "expires", inv.Expires.UTC().Format(time.RFC3339))
	return inv, nil
}

// Remove evicts a member that joined with an invitation: it is forgotten
// (persistently), its link to the manager closes, the routes it is an
// endpoint of are torn down (RouteDown to every hop), routes it relays are
// moved to other paths, and every node is told so that it drops its links
// to the key. Config members cannot be removed at runtime
// (ErrConfigMember).
func (m *Manager) Remove(k keys.PublicKey) error {
	if err := m.mem.remove(k); err != nil {
		return err
	}
	if m.cl != nil { // every manager evicts it when it applies the removal
		return nil
	}
	m.log.Warn("member removed", "key", k)
	m.evict(k)
	return nil
}

// onApplied follows the replicated membership (a cluster): every manager
// announces a join and evicts a removed member when it applies the
// entry, wherever it was made. Called on raft's goroutine: the work is
// queued.
func (m *Manager) onApplied(c *cluster.Command) {
	if c.Op != cluster.OpMemberJoin && c.Op != cluster.OpMemberDel && c.Op != cluster.OpMemberImport {
		return
	}
	select {
	case m.memQ <- c:
	default:
		m.log.Warn("membership change not announced to this manager's nodes: queue full", "op", c.Op, "key", c.Member.Key.PublicKey())
	}
}

// membershipWorker announces queued membership changes in log order.
func (m *Manager) membershipWorker() {
	for {
		select {
		case c := <-m.memQ:
			k := c.Member.Key.PublicKey()
			switch {
			case c.Op == cluster.OpMemberJoin:
				m.mem.joinedCount.Add(1)
				m.log.Info("node joined the mesh with an invitation", "key", k, "invite", c.Member.Invite)
				m.broadcastMembers(&proto.Members{Add: []proto.Key{proto.Key(k)}})
			case c.Op == cluster.OpMemberDel:
				m.mem.evicted.Add(1)
				m.log.Warn("member removed", "key", k)
				m.evict(k)
			case c.Op == cluster.OpMemberImport && c.Removed:
				m.log.Info("removed member imported from a members file", "key", k)
				m.evict(k)
			case c.Op == cluster.OpMemberImport:
				m.log.Info("member imported from a members file", "key", k)
				m.broadcastMembers(&proto.Members{Add: []proto.Key{proto.Key(k)}})
			}
		case <-m.life.Done():
			return
		}
	}
}

func (m *Manager) evict(k keys.PublicKey) {
	type down struct {
		id   uint64
		hops []keys.PublicKey
	}
	var downs []down
	var repairs []uint64
	conns := map[keys.PublicKey]*link.Conn{}
	m.mu.Lock()
	ns := m.nodes[k]
	if ns != nil {
		delete(m.nodes, k)
		m.g.RemoveNode(k)
	}
	// Its registration leaves the replicated directory too (the
	// leader's deregister will not: the node is no longer in m.nodes).
	m.replicate(&cluster.Command{Op: cluster.OpNodeDel, Key: proto.Key(k)})
	for id, r := range m.routes {
		switch {
		case r.src == k || r.dst == k:
			delete(m.routes, id)
			downs = append(downs, down{id, slices.Clone(r.path.Hops)})
			for _, h := range r.path.Hops {
				if o := m.nodes[h]; o != nil {
					conns[h] = o.conn
				}
			}
		case slices.Contains(r.path.Hops, k):
			repairs = append(repairs, id)
		}
	}
	m.mu.Unlock()
	if ns != nil {
		ns.conn.Close()
	}
	for _, d := range downs {
		msg := &proto.RouteDown{Route: d.id, Code: proto.CodeNotMember, Msg: fmt.Sprintf("%s was removed from the mesh", k.Short())}
		for _, h := range d.hops {
			if c := conns[h]; c != nil {
				m.send(c, msg)
			}
		}
	}
	for _, id := range repairs {
		m.wg.Go(func() { m.repair(id) })
	}
	m.broadcastMembers(&proto.Members{Del: []proto.Key{proto.Key(k)}})
}
