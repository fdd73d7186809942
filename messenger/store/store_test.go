package store

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/keys"
)

func key(b byte) keys.PublicKey {
	var k keys.PublicKey
	for i := range k {
		k[i] = b
	}
	return k
}

func open(t *testing.T, dir string, log *slog.Logger) *Store {
	t.Helper()
	s, err := Open(dir, log)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, nil)
	alice, bob := key(1), key(2)
	now := time.Unix(1700000000, 0)
	m1, err := s.AddOutgoing(alice, "hello alice", now)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := s.AddOutgoing(bob, "hello bob", now)
	if err != nil {
		t.Fatal(err)
	}
	in := Message{ID: ID{9}, Peer: alice, Text: "hi back", Sent: now.Add(time.Second), Stored: now.Add(2 * time.Second)}
	if _, added, err := s.AddIncoming(in); err != nil || !added {
		t.Fatalf("AddIncoming = %v, %v", added, err)
	}
	if _, err := s.SetState(alice, m1.ID, Delivered, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetNick(bob, "bob"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, dir, nil)
	if got := s.Pending(alice); len(got) != 0 {
		t.Errorf("alice outbox = %v, want empty", got)
	}
	if got := s.Pending(bob); len(got) != 1 || got[0].ID != m2.ID || got[0].Text != "hello bob" {
		t.Errorf("bob outbox = %+v", got)
	}
	if got := s.OutboxPeers(); len(got) != 1 || got[0] != bob {
		t.Errorf("OutboxPeers = %v", got)
	}
	if m, ok := s.Get(alice, m1.ID, Out); !ok || m.State != Delivered {
		t.Errorf("m1 = %+v %v, want delivered", m, ok)
	}
	if !s.HasIncoming(alice, ID{9}) {
		t.Error("dedup set lost the received ID")
	}
	if s.HasIncoming(bob, ID{9}) {
		t.Error("dedup is per peer: bob never sent ID 9")
	}
	if _, added, _ := s.AddIncoming(in); added {
		t.Error("duplicate accepted after reopen")
	}
	if p, ok := s.Lookup("bob"); !ok || p != bob {
		t.Errorf("Lookup(bob) = %v %v", p, ok)
	}
	msgs := s.Messages(&alice, 0, 0)
	if len(msgs) != 2 || msgs[0].Text != "hello alice" || msgs[1].Text != "hi back" || msgs[1].Dir != In {
		t.Errorf("alice conversation = %+v", msgs)
	}
	if !msgs[1].Sent.Equal(in.Sent) {
		t.Errorf("sent time %v, want %v", msgs[1].Sent, in.Sent)
	}
	all := s.Messages(nil, msgs[0].Seq, 0)
	if len(all) != 2 {
		t.Errorf("messages after seq %d = %d, want 2", msgs[0].Seq, len(all))
	}
	convs := s.Conversations()
	if len(convs) != 2 || convs[0].Peer != alice || convs[1].Nick != "bob" {
		t.Errorf("conversations = %+v", convs)
	}
}

// TestTornWrite cuts the log at every byte of its last record, as a crash
// mid-write would, and checks that Open keeps the records before it,
// truncates the rest with a log line, and appends after it.
func TestTornWrite(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, nil)
	first, err := s.AddOutgoing(key(1), "first", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	st, _ := os.Stat(path)
	good := st.Size()
	if _, err := s.AddOutgoing(key(1), strings.Repeat("x", 100), time.Now()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for cut := good + 1; cut < int64(len(full)); cut++ {
		if err := os.WriteFile(path, full[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		s, err := Open(dir, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatalf("cut %d: open: %v", cut, err)
		}
		got := s.Pending(key(1))
		if len(got) != 1 || got[0].ID != first.ID {
			t.Fatalf("cut %d: outbox = %+v, want only the first message", cut, got)
		}
		if !strings.Contains(logs.String(), "truncating log") {
			t.Fatalf("cut %d: no log line about the truncation: %q", cut, logs.String())
		}
		if _, err := s.AddOutgoing(key(1), "after", time.Now()); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = open(t, dir, nil)
		if got := s.Pending(key(1)); len(got) != 2 || got[1].Text != "after" {
			t.Fatalf("cut %d: after re-append, outbox = %+v", cut, got)
		}
		s.Close()
	}
}

func TestCorruptRecords(t *testing.T) {
	tests := []struct {
		name   string
		mangle func(b []byte, firstLen int) []byte
		want   int // messages left
	}{
		{"crc of second record", func(b []byte, n int) []byte { b[n+4] ^= 0xff; return b }, 1},
		{"body of second record", func(b []byte, n int) []byte { b[len(b)-1] ^= 0x55; return b }, 1},
		{"zero length", func(b []byte, n int) []byte { copy(b[n:], []byte{0, 0, 0, 0}); return b }, 1},
		{"huge length", func(b []byte, n int) []byte { copy(b[n:], []byte{0xff, 0xff, 0xff, 0xff}); return b }, 1},
		{"garbage appended", func(b []byte, n int) []byte { return append(b, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7) }, 2},
		{"zeros appended", func(b []byte, n int) []byte { return append(b, make([]byte, 4096)...) }, 2},
		{"first record bad", func(b []byte, n int) []byte { b[8] = 99; return b }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, nil)
			path := filepath.Join(dir, FileName)
			s.AddOutgoing(key(1), "one", time.Now())
			st, _ := os.Stat(path)
			s.AddOutgoing(key(1), "two", time.Now())
			s.Close()
			b, _ := os.ReadFile(path)
			os.WriteFile(path, tt.mangle(b, int(st.Size())), 0o600)
			s = open(t, dir, nil)
			if got := s.Pending(key(1)); len(got) != tt.want {
				t.Errorf("%d messages left, want %d", len(got), tt.want)
			}
		})
	}
}

func TestDedupAndStates(t *testing.T) {
	s := open(t, t.TempDir(), nil)
	peer := key(3)
	in := Message{ID: ID{1}, Peer: peer, Text: "a", Dir: Out, State: Failed}
	m, added, err := s.AddIncoming(in)
	if err != nil || !added || m.Dir != In || m.State != Received {
		t.Fatalf("AddIncoming = %+v %v %v", m, added, err)
	}
	in.Text = "changed"
	if m, added, _ := s.AddIncoming(in); added || m.Text != "a" {
		t.Errorf("duplicate: added=%v text=%q", added, m.Text)
	}
	if _, err := s.SetState(peer, ID{1}, Delivered, ""); err == nil {
		t.Error("SetState of a received message (no such outgoing) succeeded")
	}
	out, _ := s.AddOutgoing(peer, "x", time.Now())
	m, err = s.SetState(peer, out.ID, Failed, "refused")
	if err != nil || m.State != Failed || m.Reason != "refused" {
		t.Errorf("SetState = %+v %v", m, err)
	}
	if len(s.Pending(peer)) != 0 {
		t.Error("failed message still in the outbox")
	}
}

func TestNicks(t *testing.T) {
	s := open(t, t.TempDir(), nil)
	tests := []struct {
		name string
		ok   bool
	}{
		{"alice", true}, {"Ålice-2", true}, {"", false}, {"a b", false}, {"a\tb", false},
		{strings.Repeat("n", MaxNick+1), false}, {"pk:x", false}, {key(5).Hex(), false}, {"\xff", false},
	}
	for _, tt := range tests {
		if err := s.SetNick(key(1), tt.name); (err == nil) != tt.ok && tt.name != "" {
			t.Errorf("SetNick(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err := ValidNick(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidNick(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	s.SetNick(key(1), "alice")
	s.SetNick(key(2), "alice") // moves the name
	if s.Nick(key(1)) != "" || s.Nick(key(2)) != "alice" {
		t.Errorf("nicks = %v", s.Nicks())
	}
	s.SetNick(key(2), "")
	if _, ok := s.Lookup("alice"); ok {
		t.Error("removed nickname still found")
	}
}

func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, nil)
	peer := key(4)
	var last Message
	for i := 0; i < 700; i++ {
		m, err := s.AddOutgoing(peer, "m", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if i < 699 {
			s.SetState(peer, m.ID, Delivered, "")
			s.SetNick(key(5), "n"+string(rune('a'+i%26)))
		}
		last = m
	}
	s.Close()
	path := filepath.Join(dir, FileName)
	before, _ := os.Stat(path)
	s = open(t, dir, nil)
	after, _ := os.Stat(path)
	if after.Size() >= before.Size() {
		t.Errorf("not compacted: %d -> %d bytes", before.Size(), after.Size())
	}
	if p := s.Pending(peer); len(p) != 1 || p[0].ID != last.ID {
		t.Errorf("outbox after compaction = %d messages", len(p))
	}
	if got := len(s.Messages(&peer, 0, 0)); got != 700 {
		t.Errorf("%d messages after compaction, want 700", got)
	}
	if s.Nick(key(5)) == "" {
		t.Error("nickname lost by compaction")
	}
	s.AddOutgoing(peer, "after", time.Now())
	s.Close()
	s = open(t, dir, nil)
	if got := len(s.Messages(&peer, 0, 0)); got != 701 {
		t.Errorf("%d messages after compaction and append, want 701", got)
	}
}

func TestParseID(t *testing.T) {
	id, _ := NewID()
	if got, err := ParseID(id.String()); err != nil || got != id {
		t.Errorf("round trip: %v %v", got, err)
	}
	for _, s := range []string{"", "zz", strings.Repeat("g", 32), strings.Repeat("a", 31)} {
		if _, err := ParseID(s); err == nil {
			t.Errorf("ParseID(%q) succeeded", s)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	var seeds [][]byte
	m := Message{ID: ID{1}, Peer: key(1), Dir: Out, Text: "hi", Sent: time.Unix(1, 0)}
	b, _ := appendRecord(nil, recMessage, toDisk(&m))
	seeds = append(seeds, b)
	b, _ = appendRecord(nil, recState, diskState{ID: ID{1}, State: 1})
	seeds = append(seeds, b)
	b, _ = appendRecord(nil, recNick, diskNick{Name: "x"})
	seeds = append(seeds, b, nil, []byte{0, 0, 0, 1, 0, 0, 0, 0, 9})
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := parseRecord(b)
		if err != nil {
			return
		}
		if n > len(b) || n < recHeaderLen+1 {
			t.Fatalf("length %d of %d bytes", n, len(b))
		}
		// What decodes re-encodes to something that decodes the same way.
		var v any
		switch r.typ {
		case recMessage:
			v = r.msg
		case recState:
			v = r.state
		case recNick:
			v = r.nick
		}
		enc, err := appendRecord(nil, r.typ, v)
		if err != nil {
			return
		}
		r2, _, err := parseRecord(enc)
		if err != nil || r2.typ != r.typ || r2.msg != r.msg || r2.state != r.state || r2.nick != r.nick {
			t.Fatalf("re-encoded record differs: %+v vs %+v (%v)", r, r2, err)
		}
	})
}

func writeFile(dir string, b []byte) error {
	return os.WriteFile(filepath.Join(dir, FileName), b, 0o600)
}

func TestSecondOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, nil)
	if _, err := Open(dir, nil); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open: %v, want ErrLocked", err)
	}
	s.Close()
	s2 := open(t, dir, nil)
	s2.Close()
}
