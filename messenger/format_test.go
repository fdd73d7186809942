package messenger

import (
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/keys"
)

// rawStruct fails t if out looks like a Go struct or a JSON blob printed
// as is (what `messenger conversations` printed before: %+v).
func rawStruct(t *testing.T, what, out string) {
	t.Helper()
	for _, bad := range []string{"{", "}", "map[", "&{", "\":"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s prints a raw struct or JSON (%q):\n%s", what, bad, out)
		}
	}
}

func TestWriteConversations(t *testing.T) {
	a, _ := keys.Generate()
	b, _ := keys.Generate()
	sent := time.Date(2026, 5, 1, 12, 30, 0, 0, time.Local)
	cs := []Conversation{
		{Peer: a.Public, Nick: "alice", Count: 3, Last: Message{Dir: "out", Text: "see you at\x1b[2J ten", State: "delivered", Sent: sent}},
		{Peer: b.Public, Name: "twin", NameClaims: 2, Count: 1, Last: Message{Dir: "in", Text: strings.Repeat("long ", 20), State: "received", Sent: sent}},
	}
	var out strings.Builder
	if err := WriteConversations(&out, cs); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	rawStruct(t, "conversations", s)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "PEER") {
		t.Fatalf("want a header and two rows:\n%s", s)
	}
	for _, want := range []string{a.Public.String(), "alice", "me: see you at", "✓✓", "2026-05-01 12:30", b.Public.String(), "…", "NAME", "twin (claimed by 2 nodes)"} {
		if !strings.Contains(s, want) {
			t.Errorf("conversations lack %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "\x1b") {
		t.Errorf("a peer's control characters reach the terminal:\n%q", s)
	}
	// Aligned: the count column starts at the same offset on both rows.
	if i, j := strings.Index(lines[1], " 3 "), strings.Index(lines[2], " 1 "); i < 0 || i != j {
		t.Errorf("columns not aligned:\n%s", s)
	}
}

// Names claimed by nodes show beside their keys; a name two nodes claim
// says so.
func TestWritePeersNames(t *testing.T) {
	a, _ := keys.Generate()
	b, _ := keys.Generate()
	c, _ := keys.Generate()
	d, _ := keys.Generate()
	now := time.Now()
	var out strings.Builder
	WritePeers(&out, []NodeEntry{
		{Key: a.Public, Name: "kitchen-pi", Since: now},
		{Key: b.Public, Name: "twin", Since: now},
		{Key: c.Public, Name: "TWIN", Since: now},
		{Key: d.Public, Since: now},
	}, now)
	s := out.String()
	rawStruct(t, "peers", s)
	for _, want := range []string{"NAME", a.Public.String() + "  kitchen-pi ", "twin (claimed by 2 nodes)", "TWIN (claimed by 2 nodes)"} {
		if !strings.Contains(s, want) {
			t.Errorf("peers lack %q:\n%s", want, s)
		}
	}
}
