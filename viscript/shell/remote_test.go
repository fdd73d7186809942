package shell

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/viscript/control"
	"github.com/skywire-mesh/skywire/viscript/control/controltest"
)

const (
	nodeR = "pk:1111111111111111111111111111111111111111111111111111111111111111"
	nodeX = "pk:2222222222222222222222222222222222222222222222222222222222222222" // refuses
	nodeY = "pk:3333333333333333333333333333333333333333333333333333333333333333" // unreachable
)

// fakeRemote serves fakes by target; each Connect gets a Done channel
// the test may close (the connection is lost).
type fakeRemote struct {
	mu      sync.Mutex
	nodes   map[string]control.Controller
	dialErr map[string]error
	dials   map[string]int
	done    []chan struct{}
}

func newFakeRemote() *fakeRemote {
	return &fakeRemote{nodes: map[string]control.Controller{}, dialErr: map[string]error{}, dials: map[string]int{}}
}

func (r *fakeRemote) Connect(ctx context.Context, target string) (*Conn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dials[target]++
	if err := r.dialErr[target]; err != nil {
		return nil, err
	}
	c, ok := r.nodes[target]
	if !ok {
		return nil, fmt.Errorf("connect %s: no route", target)
	}
	done := make(chan struct{})
	r.done = append(r.done, done)
	return &Conn{Ctrl: c, Node: target, Close: func() error { return nil }, Done: done}, nil
}

func (r *fakeRemote) Nodes(ctx context.Context) ([]string, error) {
	return []string{nodeR, nodeX, nodeY}, nil
}

// lose closes the Done of every connection made so far.
func (r *fakeRemote) lose() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.done {
		close(d)
	}
	r.done = nil
}

func (r *fakeRemote) dialed(target string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dials[target]
}

// remoteSetup is a local fake, a remote node R with one app "web", a
// node X that refuses us and a node Y that cannot be reached.
func remoteSetup() (*controltest.Fake, *controltest.Fake, *fakeRemote) {
	local := newFake()
	r := controltest.New(control.CatalogEntry{Name: "web"})
	r.AddApp(control.AppInfo{Name: "web", Pid: 4242, State: control.StateRunning, Connected: true, UptimeS: 60}, "")
	r.AppendLog(1, []byte("web log\n"))
	x := controltest.New()
	x.SetError(control.MethodList, &control.RemoteError{Code: control.CodeUnauthorized, Msg: "unauthorized: pk:me is not an admin"})
	rem := newFakeRemote()
	rem.nodes[nodeR] = r
	rem.nodes[nodeX] = x
	return local, r, rem
}

func execRemote(t *testing.T, local control.Controller, rem Remote, line string, o Options) ([]map[string]any, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	o.JSON, o.Out, o.Err, o.Remote, o.StartCheck = true, &out, &errOut, rem, testStartCheck
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Exec(ctx, local, line, o)
	var rs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l == "" {
			continue
		}
		var r map[string]any
		if jerr := json.Unmarshal([]byte(l), &r); jerr != nil {
			t.Fatalf("not JSON: %q", l)
		}
		rs = append(rs, r)
	}
	return rs, errOut.String(), err
}

// TestConnectRunsCommandsThere: after connect, commands run on that
// node's controller; connect local comes back.
func TestConnectRunsCommandsThere(t *testing.T) {
	tstest.CheckLeaks(t)
	local, r, rem := remoteSetup()
	rs, _, err := execRemote(t, local, rem, "connect "+nodeR+"; la; ping web; connect; connect local; la", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 6 || rs[0]["node"] != nodeR || rs[3]["node"] != nodeR || rs[4]["node"] != LocalTarget {
		t.Fatalf("results %v", rs)
	}
	if apps := fmt.Sprint(rs[1]["apps"]); !strings.Contains(apps, "web") || strings.Contains(apps, "echo") {
		t.Errorf("la after connect lists %s, want R's web only", apps)
	}
	if !strings.Contains(fmt.Sprint(rs[5]["apps"]), "echo") {
		t.Errorf("la after connect local: %v", rs[5])
	}
	if !strings.Contains(strings.Join(r.Calls(), ","), control.MethodPing) {
		t.Errorf("ping did not reach R: %v", r.Calls())
	}
}

// TestConnectRefused: a node that refuses us fails connect with its
// reason (the code travels); the shell stays where it was.
func TestConnectRefused(t *testing.T) {
	tstest.CheckLeaks(t)
	local, _, rem := remoteSetup()
	rs, _, err := execRemote(t, local, rem, "connect "+nodeX+"; la; connect pk:nonsense", Options{})
	if !errors.Is(err, ErrCommandFailed) || len(rs) != 3 {
		t.Fatalf("err %v results %v", err, rs)
	}
	if rs[0]["ok"] != false || rs[0]["code"] != control.CodeUnauthorized || !strings.Contains(rs[0]["error"].(string), "not an admin") {
		t.Errorf("connect to a refusing node: %v", rs[0])
	}
	if !strings.Contains(fmt.Sprint(rs[1]["apps"]), "echo") {
		t.Errorf("after a failed connect la must run locally: %v", rs[1])
	}
	if rs[2]["ok"] != false {
		t.Errorf("connect to an unknown node: %v", rs[2])
	}
	// Without a way to the mesh connect says so.
	rs, _, _ = execRemote(t, local, nil, "connect "+nodeR, Options{})
	rs[0]["remote"] = nil
	if rs[0]["ok"] != false || !strings.Contains(rs[0]["error"].(string), "not available") {
		t.Errorf("connect with no Remote: %v", rs[0])
	}
}

// TestOptionsConnect: the --node form: the shell starts on the remote
// node and has no local viscript to come back to.
func TestOptionsConnect(t *testing.T) {
	tstest.CheckLeaks(t)
	_, _, rem := remoteSetup()
	rs, _, err := execRemote(t, nil, rem, "la; connect local", Options{Connect: nodeR})
	if !errors.Is(err, ErrCommandFailed) || len(rs) != 2 {
		t.Fatalf("err %v results %v", err, rs)
	}
	if !strings.Contains(fmt.Sprint(rs[0]["apps"]), "web") || rs[1]["code"] != "usage" {
		t.Errorf("results %v", rs)
	}
	rs, _, err = execRemote(t, nil, rem, "la", Options{Connect: nodeX})
	if !errors.Is(err, ErrCommandFailed) || len(rs) != 1 || rs[0]["cmd"] != "connect" || rs[0]["code"] != control.CodeUnauthorized {
		t.Errorf("--node of a refusing node: %v %v", err, rs)
	}
}

// TestReconnectAfterLoss: a lost connection is made again before the
// next command.
func TestReconnectAfterLoss(t *testing.T) {
	tstest.CheckLeaks(t)
	local, _, rem := remoteSetup()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sh, err := newShell(ctx, local, Options{JSON: true, Out: &out, Remote: rem}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer sh.close()
	for i, line := range []string{"connect " + nodeR, "la", "la"} {
		if err := sh.exec(ctx, line); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if i == 1 {
			rem.lose()
		}
	}
	if n := rem.dialed(nodeR); n != 2 {
		t.Errorf("%d dials of R, want 2 (the second after the loss)", n)
	}
}

// lossyLogs fails one Logs call (the first after arm) with ErrClosed, as
// a control.Client does when its stream ends.
type lossyLogs struct {
	*controltest.Fake
	rem  *fakeRemote
	mu   sync.Mutex
	arm  bool
	fail int
}

func (l *lossyLogs) Logs(ctx context.Context, id uint64, offset int64, max int) (control.LogChunk, error) {
	l.mu.Lock()
	fail := l.arm
	l.arm = false
	if fail {
		l.fail++
	}
	l.mu.Unlock()
	if fail {
		l.rem.lose()
		return control.LogChunk{}, fmt.Errorf("control logs: %w: EOF", control.ErrClosed)
	}
	return l.Fake.Logs(ctx, id, offset, max)
}

// TestLogsFollowRecovers: logs -f on a remote node whose connection is
// lost connects again and goes on from the same offset: every line once.
func TestLogsFollowRecovers(t *testing.T) {
	tstest.CheckLeaks(t)
	local, r, rem := remoteSetup()
	lossy := &lossyLogs{Fake: r, rem: rem}
	rem.nodes[nodeR] = lossy
	var out, errOut tstest.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Exec(ctx, local, "connect "+nodeR+"; logs 1 -f", Options{Out: &out, Err: &errOut, Remote: rem, FollowInterval: 5 * time.Millisecond})
	}()
	tstest.WaitFor(t, "the first lines", func() bool { return strings.Contains(out.String(), "web log\n") })
	r.AppendLog(1, []byte("line 2\n"))
	tstest.WaitFor(t, "line 2", func() bool { return strings.Contains(out.String(), "line 2\n") })
	lossy.mu.Lock()
	lossy.arm = true
	lossy.mu.Unlock()
	r.AppendLog(1, []byte("line 3\n"))
	tstest.WaitFor(t, "line 3 after the loss", func() bool { return strings.Contains(out.String(), "line 3\n") })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if lossy.fail != 1 || rem.dialed(nodeR) != 2 {
		t.Errorf("%d losses, %d dials; want 1 and 2", lossy.fail, rem.dialed(nodeR))
	}
	if got := out.String(); !strings.Contains(got, "web log\nline 2\nline 3\n") || strings.Count(got, "line 2") != 1 {
		t.Errorf("followed output %q: every line once, in order", got)
	}
	if e := errOut.String(); !strings.Contains(e, "lost the connection to "+nodeR) || !strings.Contains(e, "again; following on") {
		t.Errorf("stderr %q does not tell about the loss and the recovery", e)
	}
}

// TestListAll: la --all lists the local apps and those of every node
// that lets us in with a NODE column; the others are named with why.
func TestListAll(t *testing.T) {
	tstest.CheckLeaks(t)
	local, _, rem := remoteSetup()
	rs, _, err := execRemote(t, local, rem, "la --all", Options{})
	if err != nil || len(rs) != 1 {
		t.Fatalf("%v %v", err, rs)
	}
	nodes, _ := rs[0]["nodes"].([]any)
	if len(nodes) != 4 {
		t.Fatalf("nodes %v, want local, R, X, Y", nodes)
	}
	want := []struct {
		node, code string
		ok         bool
	}{{LocalTarget, "", true}, {nodeR, "", true}, {nodeX, control.CodeUnauthorized, false}, {nodeY, control.CodeInternal, false}}
	for i, w := range want {
		n := nodes[i].(map[string]any)
		if n["node"] != w.node || n["ok"] != w.ok || (w.code != "" && n["code"] != w.code) {
			t.Errorf("node %d: %v, want %+v", i, n, w)
		}
	}

	var out, errOut bytes.Buffer
	if err := Exec(context.Background(), local, "la --all", Options{Out: &out, Err: &errOut, Remote: rem}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, s := range []string{"NODE", "local", "pk:11111111…", "web", "echo", nodeX + ": refused:", nodeY + ": unreachable:"} {
		if !strings.Contains(text, s) {
			t.Errorf("la --all text lacks %q:\n%s", s, text)
		}
	}
}
