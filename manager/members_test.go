package manager

import (
	"github.com/skywire-mesh/skywire/internal/tstest"

	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/link"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/keys"
)

// Regression (security issue "trust in the control plane"): a manager with
// a real identity and a default config admitted every key that reached its
// port. It must refuse a key that is not a member, saying why, and not
// register it. (Uses only API that existed before membership, so that it
// ran, and failed, on the old code.)
func TestDefaultConfigRefusesNonMember(t *testing.T) {
	tstest.CheckLeaks(t)
	cfg, ln := pipeConfig(t)
	m, stop := runNew(t, cfg, nil)
	defer stop()
	tm := &testManager{m, ln}
	lc := tm.connect(t, tstest.KeyPair(t))
	sendMsg(t, lc, &proto.Hello{Version: proto.Version, Addrs: []string{"203.0.113.9:7901"}})
	w, ok := recvMsg(t, lc).(*proto.Welcome)
	if !ok || w.Code == proto.CodeOK {
		t.Fatalf("welcome %#v: a key that is not a member registered", w)
	}
	if !strings.Contains(w.Msg, "not a member") || !strings.Contains(w.Msg, "skywire manager invite") {
		t.Fatalf("refusal %q does not say why and what to do", w.Msg)
	}
	<-lc.Done()
	if n := len(tm.Nodes()); n != 0 {
		t.Fatalf("%d nodes registered", n)
	}
}

type memberManager struct {
	*testManager
	logs *tstest.SyncBuffer
	cfg  Config
	stop func() // stops the manager and waits for it
}

func startMembers(t *testing.T, mod func(c *Config)) *memberManager {
	t.Helper()
	cfg, ln := pipeConfig(t)
	cfg.InstallTimeout = time.Second
	cfg.Admit = AdmitMembers
	if mod != nil {
		mod(&cfg)
	}
	logs := &tstest.SyncBuffer{}
	m, stop := runNew(t, cfg, slog.New(slog.NewTextHandler(logs, nil)))
	return &memberManager{testManager: &testManager{m, ln}, logs: logs, cfg: cfg, stop: stop}
}

// hello connects as kp with a join token and returns the welcome.
func (mm *memberManager) hello(t *testing.T, kp keys.KeyPair, join string) (*link.Conn, *proto.Welcome) {
	t.Helper()
	lc := mm.connect(t, kp)
	sendMsg(t, lc, &proto.Hello{Version: proto.Version, Join: join})
	w, ok := recvMsg(t, lc).(*proto.Welcome)
	if !ok {
		t.Fatalf("first answer is not welcome: %#v", w)
	}
	return lc, w
}

// join registers kp (with token join) and reads the full member set.
func (mm *memberManager) join(t *testing.T, kp keys.KeyPair, join string) (*link.Conn, []proto.Key) {
	t.Helper()
	lc, w := mm.hello(t, kp, join)
	if w.Code != proto.CodeOK || !w.Members {
		t.Fatalf("welcome %#v", w)
	}
	ms, ok := recvMsg(t, lc).(*proto.Members)
	if !ok || !ms.Full {
		t.Fatalf("members %#v", ms)
	}
	return lc, ms.Add
}

func refused(t *testing.T, lc *link.Conn, w *proto.Welcome, code proto.Code, want string) {
	t.Helper()
	if w.Code != code || !strings.Contains(w.Msg, want) {
		t.Fatalf("welcome %d %q, want code %d and %q", w.Code, w.Msg, code, want)
	}
	<-lc.Done()
}

func TestMembersAdmission(t *testing.T) {
	tstest.CheckLeaks(t)
	cfgMember, stranger := tstest.KeyPair(t), tstest.KeyPair(t)
	mm := startMembers(t, func(c *Config) { c.Members = []keys.PublicKey{cfgMember.Public} })

	lc, w := mm.hello(t, stranger, "")
	refused(t, lc, w, proto.CodeNotMember, "not a member of this mesh (ask the manager's operator for an invitation: skywire manager invite)")
	if st := mm.Stats().Membership; st.Refused != 1 || st.Admit != AdmitMembers || st.Members != 1 {
		t.Fatalf("stats %+v", st)
	}
	if !strings.Contains(mm.logs.String(), stranger.Public.String()) {
		t.Fatalf("the manager did not log the refused key:\n%s", mm.logs.String())
	}
	_, set := mm.join(t, cfgMember, "")
	if len(set) != 1 || set[0].PublicKey() != cfgMember.Public {
		t.Fatalf("member set %v", set)
	}
	if n := len(mm.Nodes()); n != 1 {
		t.Fatalf("%d nodes registered, want the config member", n)
	}
}

func TestInvitations(t *testing.T) {
	tstest.CheckLeaks(t)
	dir := t.TempDir()
	first := tstest.KeyPair(t)
	mm := startMembers(t, func(c *Config) {
		c.Members = []keys.PublicKey{first.Public}
		c.MembersFile = filepath.Join(dir, "members.json")
	})
	lfirst, _ := mm.join(t, first, "")

	inv, err := mm.Invite(1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proto.ParseInvite(inv.Token); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "members.json"))
	if err != nil || bytes.Contains(b, []byte(inv.Token[len(proto.InvitePrefix):])) {
		t.Fatalf("members file stores the token (or %v):\n%s", err, b)
	}

	joiner := tstest.KeyPair(t)
	lj, set := mm.join(t, joiner, inv.Token)
	if len(set) != 2 {
		t.Fatalf("member set after join: %v", set)
	}
	// The member already registered hears of the new one.
	if ms, ok := recvMsg(t, lfirst).(*proto.Members); !ok || ms.Full || len(ms.Add) != 1 || ms.Add[0].PublicKey() != joiner.Public {
		t.Fatalf("change %#v", ms)
	}
	// A member presenting its (now used up) token again is still a member.
	lj.Close()
	mm.join(t, joiner, inv.Token)

	// Used up.
	lc, w := mm.hello(t, tstest.KeyPair(t), inv.Token)
	refused(t, lc, w, proto.CodeBadInvite, "used up")
	// Expired.
	short, err := mm.Invite(1, time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	lc, w = mm.hello(t, tstest.KeyPair(t), short.Token)
	refused(t, lc, w, proto.CodeBadInvite, "expired")
	// Mangled, unknown, not a token at all.
	other, _ := mm.Invite(1, time.Hour)
	mangled := []byte(other.Token)
	if mangled[30] == '0' { // another hex digit: the check bytes catch it
		mangled[30] = '1'
	} else {
		mangled[30] = '0'
	}
	lc, w = mm.hello(t, tstest.KeyPair(t), string(mangled))
	refused(t, lc, w, proto.CodeBadInvite, "mangled")
	unknown, _ := proto.NewInvite()
	lc, w = mm.hello(t, tstest.KeyPair(t), unknown.String())
	refused(t, lc, w, proto.CodeBadInvite, "unknown")
	lc, w = mm.hello(t, tstest.KeyPair(t), "hello")
	refused(t, lc, w, proto.CodeBadInvite, proto.InvitePrefix)
	if st := mm.Stats().Membership; st.InvitesRefused != 5 || st.Joined != 1 || st.Invites != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Bad arguments.
	for _, tt := range []struct {
		uses int
		ttl  time.Duration
	}{{0, time.Hour}, {1, -time.Hour}, {1, MaxInviteTTL + time.Hour}} {
		if _, err := mm.Invite(tt.uses, tt.ttl); err == nil {
			t.Errorf("Invite(%d, %v) succeeded", tt.uses, tt.ttl)
		}
	}
}

// Failed join attempts are limited.
func TestInvitationAttemptsLimited(t *testing.T) {
	s, err := newMembers(Config{Admit: AdmitMembers})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	bad, _ := proto.NewInvite()
	attacker := netip.MustParsePrefix("192.0.2.1/32")
	honest := netip.MustParsePrefix("198.51.100.7/32")
	try := func(src netip.Prefix, at time.Time) string {
		_, msg, _ := s.admit(tstest.KeyPair(t).Public, bad.String(), src, at)
		return msg
	}
	for i := 0; i < joinBurst; i++ {
		if msg := try(attacker, now); !strings.Contains(msg, "unknown") {
			t.Fatalf("attempt %d: %s", i, msg)
		}
	}
	if msg := try(attacker, now); !strings.Contains(msg, "too many join attempts from your address") {
		t.Fatalf("attempt beyond the burst: %s", msg)
	}
	// Another source is not delayed by the flood.
	if msg := try(honest, now); !strings.Contains(msg, "unknown") {
		t.Fatalf("another source after the flood: %s", msg)
	}
	// Budget comes back with time.
	if msg := try(attacker, now.Add(time.Duration(float64(time.Second)/joinRate))); !strings.Contains(msg, "unknown") {
		t.Fatalf("after the refill time: %s", msg)
	}
	// Many sources together meet the backstop.
	later := now.Add(time.Hour)
	var last string
	for i := range joinBurstAll + 1 {
		last = try(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32), later)
	}
	if !strings.Contains(last, "too many join attempts at this manager") {
		t.Fatalf("attempt %d from as many sources: %s", joinBurstAll+1, last)
	}
}

func TestRemoveMember(t *testing.T) {
	tstest.CheckLeaks(t)
	dir := t.TempDir()
	a, b := tstest.KeyPair(t), tstest.KeyPair(t)
	file := filepath.Join(dir, "state", "members.json")
	mm := startMembers(t, func(c *Config) {
		c.Members = []keys.PublicKey{a.Public}
		c.MembersFile = file
	})
	la, _ := mm.join(t, a, "")
	inv, _ := mm.Invite(5, time.Hour)
	lb, _ := mm.join(t, b, inv.Token)
	if ms := recvMsg(t, la).(*proto.Members); len(ms.Add) != 1 {
		t.Fatalf("change %#v", ms)
	}
	// A route a -> b.
	sendMsg(t, la, &proto.Links{Links: []proto.LinkState{{Peer: proto.Key(b.Public), RTT: time.Millisecond}}})
	sendMsg(t, lb, &proto.Links{Links: []proto.LinkState{{Peer: proto.Key(a.Public), RTT: time.Millisecond}}})
	var route uint64
	deadline := time.Now().Add(30 * time.Second)
	for route == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no route a -> b")
		}
		sendMsg(t, la, &proto.RouteRequest{Req: 1, Dst: proto.Key(b.Public)})
		switch m := recvMsg(t, la).(type) {
		case *proto.Install:
			sendMsg(t, la, &proto.InstallAck{Req: m.Req})
			inb := recvMsg(t, lb).(*proto.Install)
			sendMsg(t, lb, &proto.InstallAck{Req: inb.Req})
			r := recvMsg(t, la).(*proto.RouteReply)
			if r.Code != proto.CodeOK {
				t.Fatalf("reply %#v", r)
			}
			route = r.Route
		case *proto.RouteReply: // the links were not both reported yet
			time.Sleep(10 * time.Millisecond)
		default:
			t.Fatalf("got %#v", m)
		}
	}

	if err := mm.Remove(a.Public); !errors.Is(err, ErrConfigMember) || !strings.Contains(err.Error(), "edit") {
		t.Fatalf("removing a config member: %v", err)
	}
	if err := mm.Remove(tstest.KeyPair(t).Public); !errors.Is(err, ErrNotMember) {
		t.Fatalf("removing a stranger: %v", err)
	}
	if err := mm.Remove(b.Public); err != nil {
		t.Fatal(err)
	}
	<-lb.Done() // its link to the manager closed
	if d, ok := recvMsg(t, la).(*proto.RouteDown); !ok || d.Route != route || d.Code != proto.CodeNotMember {
		t.Fatalf("route down %#v", d)
	}
	if ms, ok := recvMsg(t, la).(*proto.Members); !ok || len(ms.Del) != 1 || ms.Del[0].PublicKey() != b.Public {
		t.Fatalf("change %#v", ms)
	}
	if len(mm.Routes()) != 0 || len(mm.Nodes()) != 1 {
		t.Fatalf("routes %v nodes %v", mm.Routes(), mm.Nodes())
	}
	// The token it joined with still has uses, but b stays out.
	lc, w := mm.hello(t, b, inv.Token)
	refused(t, lc, w, proto.CodeNotMember, "removed")
	if got := mm.Members(); len(got) != 1 || got[0].Key != a.Public || got[0].How != "config" || !got[0].Registered {
		t.Fatalf("members %+v", got)
	}

	// A restart keeps joined and removed members (a file of mode 0600).
	c := tstest.KeyPair(t)
	mm.join(t, c, inv.Token)
	mm.stop()
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("members file: %v %v", fi, err)
	}
	mm2 := startMembers(t, func(cfg *Config) {
		*cfg = mm.cfg
		cfg.Listener = tstest.NewPipeListener()
	})
	mm2.ln = mm2.cfg.Listener.(*tstest.PipeListener)
	_, set := mm2.join(t, c, "")
	if !slices.ContainsFunc(set, func(k proto.Key) bool { return k.PublicKey() == c.Public }) || len(set) != 2 {
		t.Fatalf("set after restart %v", set)
	}
	lc, w = mm2.hello(t, b, inv.Token)
	refused(t, lc, w, proto.CodeNotMember, "removed")
}

func TestConfigMembers(t *testing.T) {
	id := tstest.KeyPair(t)
	for _, tt := range []struct {
		name string
		mod  func(c *Config)
		key  string
	}{
		{"admit", func(c *Config) { c.Admit = "friends" }, "admit"},
		{"members with open", func(c *Config) { c.Admit = AdmitOpen; c.Members = []keys.PublicKey{id.Public} }, "members"},
		{"empty member", func(c *Config) { c.Members = []keys.PublicKey{{}} }, "members[0]"},
	} {
		c := DefaultConfig()
		c.Identity = id
		tt.mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%s: %v, want an error naming %s", tt.name, err, tt.key)
		}
	}
	c := DefaultConfig()
	c.Identity = id
	if err := c.Validate(); err != nil || c.Admit != AdmitMembers {
		t.Fatalf("default admit %q (%v)", c.Admit, err)
	}
}
