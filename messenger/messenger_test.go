package messenger

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/messenger/internal/chatwire"
)

// ctxT bounds a whole test (the browser test's flow included) so that a
// hang ends it; it is a backstop, never the check, so it is generous
// enough for a loaded 2-core machine.
func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(2*time.Minute))
	tb.Cleanup(cancel)
	return ctx
}

func TestMessagesBothWays(t *testing.T) {
	_, na, nb, a, b := daemonPair(t)
	wa, wb := watch(t, a.cfg), watch(t, b.cfg)
	ctx := ctxT(t)

	m, err := Send(ctx, a.cfg, nb.key().String(), "hello b")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.ID) != 32 || m.Dir != "out" || m.Peer != nb.key() {
		t.Errorf("Send returned %+v", m)
	}
	wb.waitMessages(t, na.key().String(), "b receives", func(ms []Message) bool { return count(ms, "in", "hello b", "received") == 1 })
	wa.waitMessages(t, "", "a's message delivered", func(ms []Message) bool { return count(ms, "out", "hello b", "delivered") == 1 })

	// b names a and answers by nickname.
	if err := SetNick(ctx, b.cfg, na.key().String(), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := Send(ctx, b.cfg, "alice", "hi alice ✓"); err != nil {
		t.Fatal(err)
	}
	ms := wa.waitMessages(t, nb.key().String(), "a receives", func(ms []Message) bool { return count(ms, "in", "hi alice ✓", "") == 1 })
	if ms[1].Peer != nb.key() {
		t.Errorf("sender = %v, want b", ms[1].Peer)
	}
	msb, err := Read(ctx, b.cfg, "alice")
	if err != nil || len(msb) != 2 || msb[0].Nick != "alice" {
		t.Errorf("b's conversation with alice = %s, %v", dump(msb), err)
	}
	cs, err := Conversations(ctx, b.cfg)
	if err != nil || len(cs) != 1 || cs[0].Nick != "alice" || cs[0].Count != 2 {
		t.Errorf("conversations = %+v, %v", cs, err)
	}
}

func TestRecipientOfflineThenBack(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	na, nb := newNode(t, n, "a"), newNode(t, n, "b")
	a := startDaemon(t, "a", testConfig(t, na))
	bcfg := testConfig(t, nb)
	b := startDaemon(t, "b", bcfg)
	b.stop(t) // b's node is up, its messenger is not: dials are refused
	wa := watch(t, a.cfg)
	ctx := ctxT(t)
	for i := range 3 {
		if _, err := Send(ctx, a.cfg, nb.key().String(), fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Let a few retries fail.
	a.logs.WaitFor(t, "delivery failed; will retry", tstest.WaitTimeout)
	ms, _ := Read(ctx, a.cfg, "")
	if count(ms, "out", "m0", "pending") != 1 {
		t.Fatalf("m0 not pending while b is offline: %s", dump(ms))
	}
	startDaemon(t, "b2", bcfg)
	wb := watch(t, bcfg)
	wa.waitMessages(t, "", "all delivered", func(ms []Message) bool {
		return count(ms, "out", "m0", "delivered")+count(ms, "out", "m1", "delivered")+count(ms, "out", "m2", "delivered") == 3
	})
	got := wb.waitMessages(t, "", "b has them", func(ms []Message) bool { return len(ms) == 3 })
	for i, m := range got {
		if m.Text != fmt.Sprintf("m%d", i) || m.Dir != "in" {
			t.Errorf("b's message %d = %q %s, want m%d in order", i, m.Text, m.Dir, i)
		}
	}
}

func TestSenderRestartedWithOutbox(t *testing.T) {
	n, na, nb, a, b := daemonPair(t)
	acfg := a.cfg
	n.Partition(na.key(), nb.key())
	ctx := ctxT(t)
	for i := range 3 {
		if _, err := Send(ctx, a.cfg, nb.key().String(), fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	a.logs.WaitFor(t, "no route", tstest.WaitTimeout)
	a.stop(t) // the outbox is only on disk now
	n.Heal(na.key(), nb.key())
	wb := watch(t, b.cfg)
	startDaemon(t, "a2", acfg)
	wa := watch(t, acfg)
	wb.waitMessages(t, "", "b receives the outbox", func(ms []Message) bool { return len(ms) >= 3 })
	wa.waitMessages(t, "", "delivered", func(ms []Message) bool {
		return count(ms, "out", "m0", "delivered")+count(ms, "out", "m1", "delivered")+count(ms, "out", "m2", "delivered") == 3
	})
	ms, _ := Read(ctx, b.cfg, "")
	if len(ms) != 3 {
		t.Errorf("b has %d messages, want exactly 3: %s", len(ms), dump(ms))
	}
}

// exchange sends msg on conn and returns the ack code.
func exchange(t *testing.T, conn interface {
	Write([]byte) (int, error)
}, br *bufio.Reader, msg *chatwire.Msg) chatwire.Code {
	t.Helper()
	if err := chatwire.Write(conn, msg); err != nil {
		t.Fatal(err)
	}
	m, err := chatwire.Read(br)
	if err != nil {
		t.Fatalf("read ack: %v", err)
	}
	ack, ok := m.(*chatwire.Ack)
	if !ok || ack.ID != msg.ID {
		t.Fatalf("got %+v, want the ack of %x", m, msg.ID)
	}
	return ack.Code
}

func TestReceiverChecks(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	nm, nb := newNode(t, n, "mallory"), newNode(t, n, "b")
	bcfg := testConfig(t, nb)
	bcfg.RateBurst = 3
	bcfg.RateLimit = 0.001
	b := startDaemon(t, "b", bcfg)
	conn, _ := rawConn(t, nm, nb.key())
	br := bufio.NewReader(conn)
	if err := chatwire.Write(conn, &chatwire.Hello{Version: chatwire.Version}); err != nil {
		t.Fatal(err)
	}
	h, err := chatwire.Read(br)
	if err != nil || h.(*chatwire.Hello).MaxText != uint32(bcfg.MaxMessage) {
		t.Fatalf("hello: %+v %v", h, err)
	}
	other, _ := keys.Generate()
	self, to := [32]byte(nm.key()), [32]byte(nb.key())
	tests := []struct {
		name string
		msg  chatwire.Msg
		want chatwire.Code
	}{
		{"ok", chatwire.Msg{ID: [16]byte{1}, From: self, To: to, Text: "one"}, chatwire.CodeOK},
		{"duplicate", chatwire.Msg{ID: [16]byte{1}, From: self, To: to, Text: "one again"}, chatwire.CodeDuplicate},
		{"forged sender", chatwire.Msg{ID: [16]byte{2}, From: other.Public, To: to, Text: "I am someone else"}, chatwire.CodeForged},
		{"wrong recipient", chatwire.Msg{ID: [16]byte{3}, From: self, To: other.Public, Text: "x"}, chatwire.CodeWrongPeer},
		{"too large", chatwire.Msg{ID: [16]byte{4}, From: self, To: to, Text: strings.Repeat("x", bcfg.MaxMessage+1)}, chatwire.CodeTooLarge},
		{"not utf-8", chatwire.Msg{ID: [16]byte{5}, From: self, To: to, Text: "bad \xff"}, chatwire.CodeBadUTF8},
		{"max size ok", chatwire.Msg{ID: [16]byte{6}, From: self, To: to, Text: strings.Repeat("é", bcfg.MaxMessage/2)}, chatwire.CodeOK},
		{"third ok", chatwire.Msg{ID: [16]byte{7}, From: self, To: to, Text: "three"}, chatwire.CodeOK},
		{"rate limited", chatwire.Msg{ID: [16]byte{8}, From: self, To: to, Text: "four"}, chatwire.CodeRateLimited},
	}
	for _, tt := range tests {
		if got := exchange(t, conn, br, &tt.msg); got != tt.want {
			t.Errorf("%s: ack %v, want %v", tt.name, got, tt.want)
		}
	}
	ms, err := Read(ctxT(t), b.cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[0].Text != "one" || ms[2].Text != "three" {
		t.Errorf("b stored %s, want one, max, three", dump(ms))
	}
	if !strings.Contains(b.logs.String(), "sender is not the session") {
		t.Error("forged message not logged")
	}

	// Another key is not affected by mallory's empty bucket.
	nc := newNode(t, n, "carol")
	conn2, _ := rawConn(t, nc, nb.key())
	br2 := bufio.NewReader(conn2)
	chatwire.Write(conn2, &chatwire.Hello{Version: chatwire.Version})
	chatwire.Read(br2)
	if got := exchange(t, conn2, br2, &chatwire.Msg{ID: [16]byte{8}, From: nc.key(), To: to, Text: "from carol"}); got != chatwire.CodeOK {
		t.Errorf("carol's message: %v, want ok", got)
	}

	// Garbage closes that stream only.
	conn.Write([]byte{0xff, 0xff, 0xff, 0xff})
	if _, err := chatwire.Read(br); err == nil {
		t.Error("stream still open after an oversized frame")
	}
	if got := exchange(t, conn2, br2, &chatwire.Msg{ID: [16]byte{9}, From: nc.key(), To: to, Text: "still here"}); got != chatwire.CodeOK {
		t.Errorf("carol after mallory's garbage: %v", got)
	}
}

func TestSendErrors(t *testing.T) {
	a := soloDaemon(t)
	ctx := ctxT(t)
	other, _ := keys.Generate()
	pk := other.Public.String()
	tests := []struct {
		name, to, text string
		want           error
	}{
		{"too large", pk, strings.Repeat("x", a.cfg.MaxMessage+1), ErrTooLarge},
		{"not utf-8", pk, "\xc3\x28", ErrInvalidUTF8},
		{"empty", pk, "", ErrEmpty},
		{"unknown nickname", "nobody", "hi", ErrUnknownPeer},
	}
	for _, tt := range tests {
		_, err := Send(ctx, a.cfg, tt.to, tt.text)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
		var ae *APIError
		if tt.want != ErrInvalidUTF8 && (!errors.As(err, &ae) || ae.Op != "send") {
			t.Errorf("%s: err %v is not an *APIError of send", tt.name, err)
		}
	}
	if err := SetNick(ctx, a.cfg, pk, "bad name"); !errors.Is(err, ErrBadNick) {
		t.Errorf("bad nickname: %v", err)
	}
	if ms, _ := Read(ctx, a.cfg, ""); len(ms) != 0 {
		t.Errorf("refused messages were stored: %s", dump(ms))
	}
	a.stop(t)
	if _, err := Send(ctx, a.cfg, pk, "hi"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("daemon stopped: err = %v, want ErrNotRunning", err)
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	a := soloDaemon(t)
	err := Run(ctxT(t), a.cfg, nil)
	if !errors.Is(err, ErrRunning) {
		t.Errorf("second daemon: %v, want ErrRunning", err)
	}
}

// TestDuplicateAfterRestart is a lost ack: the recipient stored a message,
// the ack never arrived, the recipient restarted, and the sender sends the
// message again. The recipient acknowledges it as a duplicate and keeps
// one copy.
func TestDuplicateAfterRestart(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	nm, nb := newNode(t, n, "m"), newNode(t, n, "b")
	bcfg := testConfig(t, nb)
	b := startDaemon(t, "b", bcfg)
	msg := chatwire.Msg{ID: [16]byte{42}, From: nm.key(), To: nb.key(), Text: "once"}
	send := func() chatwire.Code {
		conn, cli := rawConn(t, nm, nb.key())
		defer cli.Close()
		defer conn.Close()
		br := bufio.NewReader(conn)
		chatwire.Write(conn, &chatwire.Hello{Version: chatwire.Version})
		if _, err := chatwire.Read(br); err != nil {
			t.Fatal(err)
		}
		return exchange(t, conn, br, &msg)
	}
	if got := send(); got != chatwire.CodeOK {
		t.Fatalf("first: %v", got)
	}
	b.stop(t)
	startDaemon(t, "b2", bcfg)
	if got := send(); got != chatwire.CodeDuplicate {
		t.Errorf("after restart: %v, want duplicate", got)
	}
	ms, err := Read(ctxT(t), bcfg, "")
	if err != nil || len(ms) != 1 {
		t.Errorf("b has %s, %v; want one message", dump(ms), err)
	}
}

// TestNodeRestart: the node goes away and comes back; the messenger
// registers again and delivers what was queued meanwhile.
func TestNodeRestart(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	mn, err := n.NewNode()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	path := filepath.Join(tstest.SocketDir(t), "node.sock")
	serve := func() func() {
		_, stop := fakemesh.ServeAppsAt(t, mn, tstest.VerboseLogger(t, "a node: "), path)
		return stop
	}
	stopNode := serve()
	nb := newNode(t, n, "b")
	acfg := testConfig(t, &node{mesh: mn, path: path})
	a := startDaemon(t, "a", acfg)
	b := startDaemon(t, "b", testConfig(t, nb))
	wb := watch(t, b.cfg)
	stopNode()
	a.logs.WaitFor(t, "node connection lost", tstest.WaitTimeout)
	ctx := ctxT(t)
	if _, err := Send(ctx, acfg, nb.key().String(), "queued while the node was down"); err != nil {
		t.Fatal(err)
	}
	if s, err := SelfInfo(ctx, acfg); err != nil || s.Registered {
		t.Errorf("self while the node is down = %+v, %v", s, err)
	}
	stopNode = serve()
	defer stopNode()
	wb.waitMessages(t, "", "delivery after the node came back", func(ms []Message) bool {
		return count(ms, "in", "queued while the node was down", "") == 1
	})
	a.stop(t)
}
