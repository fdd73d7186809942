package shell

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/viscript/control"
	"github.com/skywire-mesh/skywire/viscript/control/controltest"
)

var catalog = controltest.Catalog()

// newFake returns a fake with three apps: 1 echo running and connected,
// 2 node exited, 3 echo running but not a signal client.
func newFake() *controltest.Fake {
	f := controltest.New(catalog...)
	f.AddApp(control.AppInfo{Name: "echo", Pid: 1001, State: control.StateRunning, Connected: true, UptimeS: 3723}, "local")
	f.AddApp(control.AppInfo{Name: "node", Pid: 1002, State: control.StateExited, Daemon: true, Restarts: 3, ExitCode: 2, ExitInfo: "exit status 2"}, "")
	f.AddApp(control.AppInfo{Name: "echo", Pid: 1003, State: control.StateRunning, UptimeS: 5}, "other")
	f.SetUsage(1, control.Usage{Pid: 1001, CPUPercent: 12.5, RSSBytes: 1 << 20, Threads: 4, FDs: 9, ReadBytes: 2048, WriteBytes: 10, UptimeS: 3723,
		Reported: map[string]uint64{"sessions": 2, "queue_bytes": 3 << 20}})
	f.AppendLog(1, []byte("hello from echo\n"))
	return f
}

// newFakeWith is newFake changed by setup, if not nil.
func newFakeWith(setup func(*controltest.Fake)) *controltest.Fake {
	f := newFake()
	if setup != nil {
		setup(f)
	}
	return f
}

func exec(t *testing.T, f control.Controller, line string, jsonMode bool) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A short start watch: the fake shows an app's end at the first List,
	// and the watch always looks once more when it ends.
	err := Exec(ctx, f, line, Options{JSON: jsonMode, Owner: "local", Out: &out, Err: &errOut, StartCheck: testStartCheck})
	return out.String(), errOut.String(), err
}

const testStartCheck = 20 * time.Millisecond

func TestCommandsText(t *testing.T) {
	tstest.CheckLeaks(t)
	tests := []struct {
		line    string
		setup   func(*controltest.Fake)
		out     []string // substrings of stdout
		errOut  string   // substring of stderr ("" = must be empty)
		wantErr error
		check   func(*testing.T, *controltest.Fake)
	}{
		{line: "help", out: []string{"commands:", "list_apps [--all] [la, ps]", "connect [pk:…|NODENAME|local]", "start [-f] [--replace] APP|all [ARGS...] [s]", "res_usage ID|NAME [ru]", "shutdown ID|NAME|all [sd, stop]", "logs ID|NAME [-f]", "quit [exit, q]", "ping ID|NAME", "status [ID|NAME]", "rm ID|NAME|all [remove]", "reload"}},
		{line: "help echo", out: []string{"echo: echo server\n", "path:         /bin/echo\n", "daemon:       no\n", `default args: -n "hi there"`, "restart:      no\n", "Says hi.\nTwice.\n"}},
		{line: "help node", out: []string{"daemon:       yes", "restart:      always", "path:         -", "default args: -"}},
		{line: "help ps", out: []string{"list_apps [--all]\n", "also: la, ps"}},
		{line: "help nope", errOut: `help: no app or command named "nope"`, wantErr: control.ErrUnknownApp},
		{line: "help a b", errOut: "usage: help [APP|COMMAND]", wantErr: ErrUsage},
		{line: "apps", out: []string{"NAME  DAEMON  DESC\n", "echo  no      echo server\n", "node  yes     mesh node\n"}},
		{line: "apps x", errOut: "usage: apps", wantErr: ErrUsage},
		{line: "start echo", out: []string{"started echo: id 4, pid 1004\n"}, check: func(t *testing.T, f *controltest.Fake) {
			s := f.Starts()[0]
			if !s.UseDefault || s.Args != nil || s.Owner != "local" {
				t.Errorf("start request %+v", s)
			}
		}},
		{line: `s echo a "b c" 'd;e'`, out: []string{"started echo: id 4"}, check: func(t *testing.T, f *controltest.Fake) {
			s := f.Starts()[0]
			if s.UseDefault || strings.Join(s.Args, "|") != "a|b c|d;e" {
				t.Errorf("start request %+v", s)
			}
		}},
		{line: "start", errOut: "usage: start [-f] [--replace] APP|all [ARGS...]", wantErr: ErrUsage},
		{line: "start nope", errOut: "no such app in the catalog", wantErr: control.ErrUnknownApp},
		{line: "la", out: []string{
			"ID  NAME  PID   STATE    UPTIME  SIGNAL  RESTARTS  EXIT\n",
			"1   echo  1001  running  1h2m3s  yes     0\n",
			"2   node  1002  exited   -       no      3         exit status 2\n",
			"3   echo  1003  running  5s      no      0\n"}},
		{line: "list_apps", out: []string{"1h2m3s"}},
		{line: "ps", out: []string{"exit status 2"}},
		{line: "la 1", errOut: "usage: list_apps", wantErr: ErrUsage},
		{line: "ping 1", out: []string{"pong from 1 (echo): 0.123 ms\n"}},
		{line: "ping 3", errOut: "ping 3: app 3 (echo) is not a signal client", wantErr: control.ErrNotSignalClient},
		{line: "ping 1", setup: func(f *controltest.Fake) { f.SetError(control.MethodPing, control.ErrTimeout) }, errOut: "ping 1: no answer within 2s", wantErr: control.ErrTimeout},
		{line: "ping 99", errOut: "no app with that ID", wantErr: control.ErrNoSuchApp},
		{line: "ping", errOut: "usage: ping ID|NAME", wantErr: ErrUsage},
		{line: "ping abc", errOut: `ping abc: no launched app is named abc`, wantErr: control.ErrNoSuchApp},
		{line: "ping 1x", errOut: `ping: ID "1x" is not a decimal number; usage: ping ID|NAME`, wantErr: ErrUsage},
		{line: "ping -1", errOut: "usage: ping ID|NAME", wantErr: ErrUsage},
		{line: "ping 1 2", errOut: "usage: ping ID|NAME", wantErr: ErrUsage},
		{line: "ping 18446744073709551616", errOut: "usage: ping ID|NAME", wantErr: ErrUsage},
		{line: "ru 1", out: []string{"app 1 (echo), pid 1001\n", "cpu:", "12.5%", "rss:", "1.0 MiB", "threads:", "4", "fds:", "9", "read:", "2.0 KiB", "written:", "10 B", "uptime:", "1h2m3s", "reported by the app:", "queue_bytes:", "3.0 MiB", "sessions:"}},
		{line: "res_usage 2", errOut: "app is not running", wantErr: control.ErrNotRunning},
		{line: "ru", errOut: "usage: res_usage ID|NAME", wantErr: ErrUsage},
		{line: "sd 1", out: []string{"shut down 1 (echo): signal (it exited after the signal-protocol shutdown request)\n"}},
		{line: "shutdown 1", setup: func(f *controltest.Fake) { f.SetStopStep(control.StopSIGKILL) }, out: []string{"shut down 1 (echo): sigkill (it had to be killed with SIGKILL)\n"}},
		{line: "sd 2", out: []string{"already-exited (it had already exited)"}},
		{line: "sd 42", errOut: "no app with that ID", wantErr: control.ErrNoSuchApp},
		{line: "shutdown x", errOut: "shutdown x: no launched app is named x", wantErr: control.ErrNoSuchApp},
		{line: "shutdown", errOut: "usage: shutdown ID|NAME|all", wantErr: ErrUsage},
		{line: "restart 2", out: []string{"restarted node: id 2, pid 2002\n"}},
		{line: "restart", errOut: "usage: restart ID|NAME", wantErr: ErrUsage},
		{line: "logs 1", out: []string{"hello from echo\n"}},
		{line: "logs 1 -x", errOut: "logs: unknown flag -x; usage: logs ID|NAME [-f]", wantErr: ErrUsage},
		{line: "logs", errOut: "usage: logs ID|NAME [-f]", wantErr: ErrUsage},
		{line: "logs 7", errOut: "no app with that ID", wantErr: control.ErrNoSuchApp},
		{line: "frob", errOut: "unknown command frob (try help)", wantErr: ErrUnknownCommand},
		{line: "quit", out: nil},
		{line: "exit", out: nil},
		{line: "q", out: nil},
		{line: "quit now", errOut: "usage: quit", wantErr: ErrUsage},
		{line: "", out: nil},
		{line: " ; ;", out: nil},
		{line: "la; ping 1", out: []string{"1h2m3s", "pong from 1 (echo)"}},
		{line: "la;frob;ping 1", out: []string{"1h2m3s", "pong from 1"}, errOut: "unknown command frob", wantErr: ErrUnknownCommand},
		{line: "ping 1; quit; frob", out: []string{"pong"}},
		{line: "ping 99; q; frob", errOut: "no app with that ID", wantErr: control.ErrNoSuchApp},
		{line: `start "echo`, errOut: "unterminated quote", wantErr: ErrUsage},
		{line: "la", setup: func(f *controltest.Fake) { f.SetError(control.MethodList, errors.New("socket gone")) }, errOut: "list_apps: socket gone", wantErr: ErrCommandFailed},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			f := newFakeWith(tt.setup)
			out, errOut, err := exec(t, f, tt.line, false)
			for _, s := range tt.out {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			if tt.out == nil && out != "" {
				t.Errorf("unexpected stdout %q", out)
			}
			if tt.errOut == "" && errOut != "" || !strings.Contains(errOut, tt.errOut) || strings.Contains(errOut, "frob") && !strings.Contains(tt.errOut, "frob") {
				t.Errorf("stderr = %q, want %q", errOut, tt.errOut)
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("err = %v", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			case tt.wantErr != nil && !errors.Is(err, ErrCommandFailed):
				t.Errorf("err = %v, not ErrCommandFailed", err)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

func decodeLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		objs = append(objs, m)
	}
	return objs
}

func TestCommandsJSON(t *testing.T) {
	tstest.CheckLeaks(t)
	tests := []struct {
		line  string
		setup func(*controltest.Fake)
		want  []map[string]any // expected fields per output object
	}{
		{line: "start echo", want: []map[string]any{{"cmd": "start", "ok": true, "id": 4.0, "pid": 1004.0, "name": "echo"}}},
		{line: "s echo x", want: []map[string]any{{"cmd": "start", "ok": true, "id": 4.0}}},
		{line: "la", want: []map[string]any{{"cmd": "la", "ok": true}}},
		{line: "list_apps", want: []map[string]any{{"cmd": "la", "ok": true}}},
		{line: "ps", want: []map[string]any{{"cmd": "la", "ok": true}}},
		{line: "ping 1", want: []map[string]any{{"cmd": "ping", "ok": true, "id": 1.0, "rtt_ms": 0.123}}},
		{line: "ping 3", want: []map[string]any{{"cmd": "ping", "ok": false, "code": "not_signal_client"}}},
		{line: "ping 1", setup: func(f *controltest.Fake) { f.SetError(control.MethodPing, control.ErrTimeout) },
			want: []map[string]any{{"cmd": "ping", "ok": false, "code": "timeout", "error": "ping 1: no answer within 2s"}}},
		{line: "ping", want: []map[string]any{{"cmd": "ping", "ok": false, "code": "usage"}}},
		{line: "ru 1", want: []map[string]any{{"cmd": "ru", "ok": true, "id": 1.0, "pid": 1001.0, "cpu_percent": 12.5, "rss_bytes": 1048576.0,
			"threads": 4.0, "fds": 9.0, "read_bytes": 2048.0, "write_bytes": 10.0, "uptime_s": 3723.0}}},
		{line: "res_usage 2", want: []map[string]any{{"cmd": "ru", "ok": false, "code": "not_running"}}},
		{line: "sd 1", want: []map[string]any{{"cmd": "sd", "ok": true, "id": 1.0, "step": "signal"}}},
		{line: "shutdown 9", want: []map[string]any{{"cmd": "sd", "ok": false, "code": "no_such_app"}}},
		{line: "restart 1", want: []map[string]any{{"cmd": "restart", "ok": true, "id": 1.0, "pid": 2001.0, "restarts": 1.0}}},
		{line: "apps", want: []map[string]any{{"cmd": "apps", "ok": true}}},
		{line: "help", want: []map[string]any{{"cmd": "help", "ok": true}}},
		{line: "help echo", want: []map[string]any{{"cmd": "help", "ok": true}}},
		{line: "logs 1", want: []map[string]any{{"cmd": "logs", "ok": true, "id": 1.0, "data": "hello from echo\n", "next": 16.0}}},
		{line: "frob", want: []map[string]any{{"cmd": "frob", "ok": false, "code": "unknown_command", "error": "unknown command frob (try help)"}}},
		{line: "la; ping 1; frob", want: []map[string]any{{"cmd": "la"}, {"cmd": "ping", "ok": true}, {"cmd": "frob", "ok": false}}},
		{line: "quit", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			out, errOut, _ := exec(t, newFakeWith(tt.setup), tt.line, true)
			if errOut != "" {
				t.Errorf("stderr in JSON mode: %q", errOut)
			}
			objs := decodeLines(t, out)
			if len(objs) != len(tt.want) {
				t.Fatalf("%d objects, want %d:\n%s", len(objs), len(tt.want), out)
			}
			for i, w := range tt.want {
				for k, v := range w {
					if objs[i][k] != v {
						t.Errorf("object %d: %s = %#v, want %#v\n%s", i, k, objs[i][k], v, out)
					}
				}
				if _, ok := objs[i]["error"]; ok == (objs[i]["ok"] == true) {
					t.Errorf("object %d: ok=%v with error field %v", i, objs[i]["ok"], ok)
				}
			}
		})
	}
	t.Run("la fields", func(t *testing.T) {
		out, _, _ := exec(t, newFake(), "la", true)
		if !strings.HasPrefix(out, `{"cmd":"la","ok":true,"apps":[`) {
			t.Errorf("key order: %s", out)
		}
		apps := decodeLines(t, out)[0]["apps"].([]any)
		a := apps[0].(map[string]any)
		for _, k := range []string{"id", "name", "pid", "state", "uptime_s", "connected", "restarts", "exit_info"} {
			if _, ok := a[k]; !ok {
				t.Errorf("app object lacks %q: %v", k, a)
			}
		}
		if a["uptime_s"] != 3723.0 || a["connected"] != true || apps[1].(map[string]any)["restarts"] != 3.0 {
			t.Errorf("app values: %v", apps)
		}
	})
	t.Run("empty list", func(t *testing.T) {
		out, _, _ := exec(t, controltest.New(), "la; apps", true)
		if !strings.Contains(out, `"apps":[]`) {
			t.Errorf("empty lists not []: %s", out)
		}
	})
}

func TestEmptyText(t *testing.T) {
	out, _, err := exec(t, controltest.New(), "la; apps", false)
	if err != nil || !strings.Contains(out, "no apps launched") || !strings.Contains(out, "catalog is empty") {
		t.Fatalf("out %q err %v", out, err)
	}
}

func TestRunScript(t *testing.T) {
	tstest.CheckLeaks(t)
	tests := []struct {
		name    string
		in      string
		out     []string
		wantErr bool
	}{
		{"all ok", "# comment\nla\n\nping 1\n", []string{"1h2m3s", "pong from 1"}, false},
		{"one fails", "la\nfrob\nping 1\n", []string{"1h2m3s", "pong from 1"}, true},
		{"quit stops", "ping 1\nquit\nfrob\n", []string{"pong"}, false},
		{"no trailing newline", "ping 1", []string{"pong"}, false},
		{"failure before quit", "ping 99\nexit\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := Run(context.Background(), newFake(), strings.NewReader(tt.in), Options{Out: &out, Err: &errOut})
			if tt.wantErr != errors.Is(err, ErrCommandFailed) {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			for _, s := range tt.out {
				if !strings.Contains(out.String(), s) {
					t.Errorf("out lacks %q: %s", s, out.String())
				}
			}
			if strings.Contains(out.String(), Prompt) {
				t.Error("prompt printed in non-interactive mode")
			}
		})
	}
	t.Run("file not a terminal", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "script")
		if err := os.WriteFile(p, []byte("la\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out bytes.Buffer
		if err := Run(context.Background(), newFake(), f, Options{Out: &out}); err != nil || !strings.Contains(out.String(), "1h2m3s") {
			t.Fatalf("err %v out %q", err, out.String())
		}
	})
}

// notifyBuffer is an io.Writer whose content tests can wait for.
type notifyBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newNotifyBuffer() *notifyBuffer { return &notifyBuffer{changed: make(chan struct{}, 1)} }

func (b *notifyBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (b *notifyBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the output holds n occurrences of s.
func (b *notifyBuffer) waitFor(t *testing.T, s string, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for strings.Count(b.String(), s) < n {
		select {
		case <-b.changed:
		case <-timeout:
			t.Fatalf("timed out waiting for %d× %q in:\n%s", n, s, b.String())
		}
	}
}

// follow runs line (a logs -f) on a fresh fake with opts, writing to a
// notifyBuffer every 5ms; stop cancels it and returns what Exec returned,
// failing the test if it does not end within 10s.
func follow(t *testing.T, line string, opts Options) (f *controltest.Fake, out *notifyBuffer, stop func() error) {
	t.Helper()
	tstest.CheckLeaks(t)
	f, out = newFake(), newNotifyBuffer()
	opts.Out, opts.FollowInterval = out, 5*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- Exec(ctx, f, line, opts) }()
	return f, out, func() error {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("logs -f did not stop on cancel")
			return nil
		}
	}
}

func TestLogsFollowStopsOnCancel(t *testing.T) {
	f, out, stop := follow(t, "logs 1 -f", Options{})
	out.waitFor(t, "hello from echo\n", 1)
	f.AppendLog(1, []byte("second line\n"))
	out.waitFor(t, "second line\n", 1)
	f.AppendLog(1, []byte("third\n"))
	out.waitFor(t, "third\n", 1)
	if err := stop(); err != nil {
		t.Fatalf("follow ended with %v", err)
	}
	if got := out.String(); got != "hello from echo\nsecond line\nthird\n" {
		t.Errorf("output %q", got)
	}
}

func TestLogsFollowJSON(t *testing.T) {
	f, out, stop := follow(t, "logs -f 1", Options{JSON: true})
	out.waitFor(t, "\n", 1)
	f.AppendLog(1, []byte("more\n"))
	out.waitFor(t, "\n", 2)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	objs := decodeLines(t, out.String())
	if len(objs) != 2 || objs[1]["data"] != "more\n" || objs[1]["next"] != 21.0 {
		t.Fatalf("objects %v", objs)
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want string // commands joined by " ; ", words by "|"
		err  bool
	}{
		{"la", "la", false},
		{"  la  ;  ping   1 ", "la ; ping|1", false},
		{`s echo "a b" 'c d' e\ f`, `s|echo|a b|c d|e f`, false},
		{`s echo "a;b" ';'`, `s|echo|a;b|;`, false},
		{`s echo "" ''`, `s|echo||`, false},
		{`s "esc \" \\ \n"`, `s|esc " \ \n`, false},
		{`s 'x`, "", true},
		{`s "x`, "", true},
		{";;;", "", false},
		{`trailing\`, `trailing`, false},
	}
	for _, tt := range tests {
		cmds, err := split(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("split(%q) err = %v", tt.in, err)
			continue
		}
		var parts []string
		for _, c := range cmds {
			parts = append(parts, strings.Join(c, "|"))
		}
		if got := strings.Join(parts, " ; "); got != tt.want {
			t.Errorf("split(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzExec(f *testing.F) {
	for _, s := range []string{"la", "s echo 'a b'", "ping 1; ru 1", `help "x`, "logs 1 -x", "sd 18446744073709551615", "\x00;\\",
		"start all; stop all; rm all", "status echo; ping echo; rm node", "start --replace --force echo x; reload",
		"connect " + nodeR + "; la; connect local; la --all", "connect pk:zz; connect; connect local x"} {
		f.Add(s)
	}
	fake := newFake()
	_, _, rem := remoteSetup()
	f.Fuzz(func(t *testing.T, line string) {
		if strings.Contains(line, "-f") || strings.Contains(line, "--follow") {
			return // follow runs until cancelled
		}
		// StartCheck off: the watch after start is timing, not parsing.
		_ = Exec(context.Background(), fake, line, Options{Out: io.Discard, StartCheck: -1})
		_ = Exec(context.Background(), fake, line, Options{JSON: true, Out: io.Discard, StartCheck: -1})
		_ = Exec(context.Background(), fake, line, Options{JSON: true, Out: io.Discard, StartCheck: -1, Remote: rem})
	})
}

func TestFormat(t *testing.T) {
	up := map[float64]string{0: "0s", 0.25: "250ms", 42: "42s", 60: "1m0s", 3723: "1h2m3s", 90061: "1d1h1m1s", -3: "0s"}
	for in, want := range up {
		if got := fmtUptime(in); got != want {
			t.Errorf("fmtUptime(%v) = %q, want %q", in, got, want)
		}
	}
	by := map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB", 1<<64 - 1: "16.0 EiB"}
	for in, want := range by {
		if got := fmtBytes(in); got != want {
			t.Errorf("fmtBytes(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestErrorTextExact(t *testing.T) {
	tests := map[string]string{
		"ping":       "usage: ping ID|NAME\n",
		"frob":       "unknown command frob (try help)\n",
		"ru 0x":      "res_usage: ID \"0x\" is not a decimal number; usage: res_usage ID|NAME\n",
		"ru echo":    "res_usage echo: 2 apps are named echo: 1 (running), 3 (running); give one ID\n",
		"ping 3":     "ping 3: app 3 (echo) is not a signal client (it never connected to viscript, so it cannot be pinged)\n",
		"logs 1 -z":  "logs: unknown flag -z; usage: logs ID|NAME [-f]\n",
		"sd":         "usage: shutdown ID|NAME|all\n",
		"la; la 2; ": "usage: list_apps [--all]\n",
	}
	for line, want := range tests {
		_, errOut, _ := exec(t, newFake(), line, false)
		if errOut != want {
			t.Errorf("%q: stderr %q, want %q", line, errOut, want)
		}
	}
}
