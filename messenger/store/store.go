// Package store keeps the messenger's state on disk: messages of every
// conversation with their delivery state (so the outbox is the set of
// outgoing messages not yet delivered), the IDs of received messages
// (the dedup set) and the address book of nicknames.
//
// The store is one append-only log file, messages.log, in the state
// directory; every record carries its length and a CRC32C, and each append
// is fsynced before the call returns. Open replays the log into memory; a
// torn or corrupt record (a crash mid-write) and everything after it is
// truncated with a logged warning. When most records are superseded state
// changes, Open rewrites the log compactly (write a new file, fsync,
// rename).
package store

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/skywire-mesh/skywire/keys"
)

// FileName is the log's name in the state directory.
const FileName = "messages.log"

// MaxNick bounds a nickname in bytes.
const MaxNick = 64

// Errors.
var (
	ErrClosed   = errors.New("store closed")
	ErrNotFound = errors.New("message not found")
	ErrTooLarge = errors.New("record too large")
	ErrBadNick  = errors.New("bad nickname")
	// ErrLocked is returned by Open when another process has the store
	// open.
	ErrLocked = errors.New("store in use by another process")
)

// ID is a message's random 128-bit identifier.
type ID [16]byte

// NewID returns a random ID.
func NewID() (ID, error) {
	var id ID
	if _, err := rand.Read(id[:]); err != nil {
		return ID{}, fmt.Errorf("new message id: %w", err)
	}
	return id, nil
}

// String is the ID in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses the hex form of an ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return ID{}, fmt.Errorf("parse message id: want %d hex digits, got %d characters", 2*len(id), len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return ID{}, fmt.Errorf("parse message id: %w", err)
	}
	return id, nil
}

// Direction says who wrote a message.
type Direction uint8

// Directions.
const (
	Out Direction = 1 // written here, to Peer
	In  Direction = 2 // received from Peer
)

func (d Direction) String() string {
	switch d {
	case Out:
		return "out"
	case In:
		return "in"
	}
	return fmt.Sprintf("direction(%d)", d)
}

// State is a message's delivery state.
type State uint8

// States. An outgoing message is Pending (in the outbox) until the
// recipient acknowledges it (Delivered) or refuses it for good (Failed).
// Received messages are Received.
const (
	Pending   State = 0
	Delivered State = 1
	Failed    State = 2
	Received  State = 3
)

func (s State) String() string {
	switch s {
	case Pending:
		return "pending"
	case Delivered:
		return "delivered"
	case Failed:
		return "failed"
	case Received:
		return "received"
	}
	return fmt.Sprintf("state(%d)", s)
}

// Message is one chat message.
type Message struct {
	Seq    uint64         // local order, assigned by the store (not persisted; stable within a run)
	ID     ID             // random, chosen by the author
	Peer   keys.PublicKey // the other side: recipient of Out, author of In
	Dir    Direction
	Text   string
	Sent   time.Time // when the author wrote it (the author's clock)
	Stored time.Time // when it was stored here
	State  State
	Reason string // why it failed (Failed only)
}

// Conversation summarises the messages with one peer.
type Conversation struct {
	Peer  keys.PublicKey
	Nick  string
	Count int
	Last  Message
}

type msgKey struct {
	peer keys.PublicKey
	id   ID
	dir  Direction
}

// Store is the messenger's state. Its methods are safe for concurrent use.
type Store struct {
	log  *slog.Logger
	path string

	mu      sync.Mutex
	f       *os.File                      // guarded by mu; nil after Close
	buf     []byte                        // guarded by mu
	seq     uint64                        // guarded by mu
	msgs    map[msgKey]*Message           // guarded by mu
	byPeer  map[keys.PublicKey][]*Message // guarded by mu; in Seq order
	nicks   map[keys.PublicKey]string     // guarded by mu
	records int                           // guarded by mu; records in the file
}

// Open opens (creating it if needed, mode 0700) the store in dir.
func Open(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Store{
		log: log, path: filepath.Join(dir, FileName),
		msgs: map[msgKey]*Message{}, byPeer: map[keys.PublicKey][]*Message{}, nicks: map[keys.PublicKey]string{},
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("open store %s: %w", s.path, err)
	}
	if err := s.replay(f); err != nil {
		f.Close()
		return nil, err
	}
	s.f = f
	if live := len(s.msgs) + len(s.nicks); s.records > 1024 && s.records > 2*live {
		if err := s.compactLocked(); err != nil {
			// The old log is intact; compaction is only an optimisation.
			s.log.Warn("store compaction failed", "err", err)
		}
	}
	return s, nil
}

// replay reads the whole log into memory, truncating it at the first bad
// record.
func (s *Store) replay(f *os.File) error {
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("open store: read %s: %w", s.path, err)
	}
	off := 0
	for off < len(data) {
		r, n, err := parseRecord(data[off:])
		if err != nil {
			s.log.Warn("store: truncating log at a bad record (torn write from a crash, or corruption)",
				"file", s.path, "offset", off, "dropped_bytes", len(data)-off, "err", err)
			if err := f.Truncate(int64(off)); err != nil {
				return fmt.Errorf("open store: truncate %s: %w", s.path, err)
			}
			if err := f.Sync(); err != nil {
				return fmt.Errorf("open store: sync %s: %w", s.path, err)
			}
			break
		}
		s.applyLocked(r)
		s.records++
		off += n
	}
	if _, err := f.Seek(int64(off), io.SeekStart); err != nil {
		return fmt.Errorf("open store: seek: %w", err)
	}
	return nil
}

// applyLocked applies one record to the in-memory state.
func (s *Store) applyLocked(r record) {
	switch r.typ {
	case recMessage:
		m := fromDisk(r.msg)
		k := msgKey{m.Peer, m.ID, m.Dir}
		if old := s.msgs[k]; old != nil {
			seq := old.Seq
			*old = m
			old.Seq = seq
			return
		}
		s.seq++
		m.Seq = s.seq
		p := &m
		s.msgs[k] = p
		s.byPeer[m.Peer] = append(s.byPeer[m.Peer], p)
	case recState:
		k := msgKey{keys.PublicKey(r.state.Peer), r.state.ID, Direction(r.state.Dir)}
		if m := s.msgs[k]; m != nil {
			m.State, m.Reason = State(r.state.State), r.state.Reason
		}
	case recNick:
		if r.nick.Name == "" {
			delete(s.nicks, r.nick.Peer)
		} else {
			s.nicks[r.nick.Peer] = r.nick.Name
		}
	}
}

// appendLocked writes one record and fsyncs.
func (s *Store) appendLocked(typ byte, v any) error {
	if s.f == nil {
		return ErrClosed
	}
	var err error
	s.buf, err = appendRecord(s.buf[:0], typ, v)
	if err != nil {
		return err
	}
	if _, err := s.f.Write(s.buf); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", s.path, err)
	}
	s.records++
	return nil
}

// Close closes the log file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// AddOutgoing stores a new outgoing message (state Pending: it is in the
// outbox) and returns it.
func (s *Store) AddOutgoing(peer keys.PublicKey, text string, now time.Time) (Message, error) {
	id, err := NewID()
	if err != nil {
		return Message{}, err
	}
	m := Message{ID: id, Peer: peer, Dir: Out, Text: text, Sent: now, Stored: now, State: Pending}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.appendLocked(recMessage, toDisk(&m)); err != nil {
		return Message{}, fmt.Errorf("store outgoing message: %w", err)
	}
	s.applyLocked(record{typ: recMessage, msg: toDisk(&m)})
	return *s.msgs[msgKey{peer, id, Out}], nil
}

// AddIncoming stores a message received from m.Peer with state Received.
// It returns false, and stores nothing, if a message with the same ID from
// the same peer was stored before (a duplicate delivery).
func (s *Store) AddIncoming(m Message) (Message, bool, error) {
	m.Dir, m.State, m.Reason = In, Received, ""
	s.mu.Lock()
	defer s.mu.Unlock()
	k := msgKey{m.Peer, m.ID, In}
	if old := s.msgs[k]; old != nil {
		return *old, false, nil
	}
	if err := s.appendLocked(recMessage, toDisk(&m)); err != nil {
		return Message{}, false, fmt.Errorf("store incoming message: %w", err)
	}
	s.applyLocked(record{typ: recMessage, msg: toDisk(&m)})
	return *s.msgs[k], true, nil
}

// HasIncoming reports whether a message with id from peer was stored.
func (s *Store) HasIncoming(peer keys.PublicKey, id ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.msgs[msgKey{peer, id, In}] != nil
}

// SetState records a new delivery state of the outgoing message id to
// peer. It returns the updated message.
func (s *Store) SetState(peer keys.PublicKey, id ID, st State, reason string) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := msgKey{peer, id, Out}
	m := s.msgs[k]
	if m == nil {
		return Message{}, fmt.Errorf("set state of %s: %w", id, ErrNotFound)
	}
	d := diskState{ID: id, Peer: peer, Dir: uint8(Out), State: uint8(st), Reason: reason, At: time.Now().UnixNano()}
	if err := s.appendLocked(recState, d); err != nil {
		return Message{}, fmt.Errorf("set state of %s: %w", id, err)
	}
	s.applyLocked(record{typ: recState, state: d})
	return *m, nil
}

// Get returns the outgoing (dir Out) or received (dir In) message id of
// peer.
func (s *Store) Get(peer keys.PublicKey, id ID, dir Direction) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.msgs[msgKey{peer, id, dir}]
	if m == nil {
		return Message{}, false
	}
	return *m, true
}

// Pending returns the outbox for peer: its outgoing Pending messages in
// the order they were written.
func (s *Store) Pending(peer keys.PublicKey) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.byPeer[peer] {
		if m.Dir == Out && m.State == Pending {
			out = append(out, *m)
		}
	}
	return out
}

// OutboxPeers returns the peers with pending outgoing messages.
func (s *Store) OutboxPeers() []keys.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []keys.PublicKey
	for p, ms := range s.byPeer {
		if slices.ContainsFunc(ms, func(m *Message) bool { return m.Dir == Out && m.State == Pending }) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b keys.PublicKey) int { return strings.Compare(string(a[:]), string(b[:])) })
	return out
}

// Messages returns the messages with peer (all peers if peer is nil) whose
// Seq is above after, oldest first; limit > 0 keeps only the newest limit.
func (s *Store) Messages(peer *keys.PublicKey, after uint64, limit int) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	add := func(ms []*Message) {
		for _, m := range ms {
			if m.Seq > after {
				out = append(out, *m)
			}
		}
	}
	if peer != nil {
		add(s.byPeer[*peer])
	} else {
		for _, ms := range s.byPeer {
			add(ms)
		}
		slices.SortFunc(out, func(a, b Message) int { return cmp.Compare(a.Seq, b.Seq) })
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// Conversations returns one entry per peer with messages, most recent
// first.
func (s *Store) Conversations() []Conversation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Conversation, 0, len(s.byPeer))
	for p, ms := range s.byPeer {
		if len(ms) == 0 {
			continue
		}
		out = append(out, Conversation{Peer: p, Nick: s.nicks[p], Count: len(ms), Last: *ms[len(ms)-1]})
	}
	slices.SortFunc(out, func(a, b Conversation) int { return cmp.Compare(b.Last.Seq, a.Last.Seq) })
	return out
}

// ValidNick reports whether name can be a nickname: 1 to MaxNick bytes of
// UTF-8 without control characters or spaces, and not a public key.
func ValidNick(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrBadNick)
	case len(name) > MaxNick:
		return fmt.Errorf("%w: longer than %d bytes", ErrBadNick, MaxNick)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not UTF-8", ErrBadNick)
	case strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("%w: spaces and control characters are not allowed", ErrBadNick)
	case strings.HasPrefix(name, "pk:"):
		return fmt.Errorf("%w: must not start with \"pk:\"", ErrBadNick)
	}
	if _, err := keys.ParsePublicKey(name); err == nil {
		return fmt.Errorf("%w: looks like a public key", ErrBadNick)
	}
	return nil
}

// SetNick sets peer's nickname; an empty name removes it. A name another
// peer has is taken from it.
func (s *Store) SetNick(peer keys.PublicKey, name string) error {
	if name != "" {
		if err := ValidNick(name); err != nil {
			return fmt.Errorf("set nickname: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, n := range s.nicks {
		if n == name && p != peer {
			if err := s.appendLocked(recNick, diskNick{Peer: p}); err != nil {
				return fmt.Errorf("set nickname: %w", err)
			}
			delete(s.nicks, p)
		}
	}
	if s.nicks[peer] == name {
		return nil
	}
	d := diskNick{Peer: peer, Name: name}
	if err := s.appendLocked(recNick, d); err != nil {
		return fmt.Errorf("set nickname: %w", err)
	}
	s.applyLocked(record{typ: recNick, nick: d})
	return nil
}

// Nick returns peer's nickname ("" if none).
func (s *Store) Nick(peer keys.PublicKey) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nicks[peer]
}

// Nicks returns a copy of the address book.
func (s *Store) Nicks() map[keys.PublicKey]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[keys.PublicKey]string, len(s.nicks))
	for k, v := range s.nicks {
		out[k] = v
	}
	return out
}

// Lookup finds the peer with nickname name.
func (s *Store) Lookup(name string) (keys.PublicKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, n := range s.nicks {
		if n == name {
			return p, true
		}
	}
	return keys.PublicKey{}, false
}

// compactLocked rewrites the log with one record per live message and
// nickname.
func (s *Store) compactLocked() error {
	tmp := s.path + ".compact"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("compact: %w", err)
	}
	// Lock the new file before it takes the log's name, so that no other
	// process can open it unlocked.
	if err := lockFile(f); err != nil {
		return fail(err)
	}
	var all []*Message
	for _, ms := range s.byPeer {
		all = append(all, ms...)
	}
	slices.SortFunc(all, func(a, b *Message) int { return cmp.Compare(a.Seq, b.Seq) })
	var buf []byte
	n := 0
	for _, m := range all {
		if buf, err = appendRecord(buf, recMessage, toDisk(m)); err != nil {
			return fail(err)
		}
		n++
	}
	for p, name := range s.nicks {
		if buf, err = appendRecord(buf, recNick, diskNick{Peer: p, Name: name}); err != nil {
			return fail(err)
		}
		n++
	}
	if _, err := f.Write(buf); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fail(err)
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		d.Sync()
		d.Close()
	}
	s.f.Close()
	s.f = f
	s.log.Info("store compacted", "records_before", s.records, "records_after", n)
	s.records = n
	return nil
}
