package shell

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/viscript/control"
	"github.com/skywire-mesh/skywire/viscript/control/controltest"
)

// TestStartReportsEarlyExit: an app that fails within the start check is a
// failed start with its exit status and last output, printed once.
func TestStartReportsEarlyExit(t *testing.T) {
	tstest.CheckLeaks(t)
	f := newFake()
	var out strings.Builder
	for i := 1; i <= 14; i++ {
		out.WriteString("line " + string(rune('a'+i-1)) + "\n")
	}
	f.SetStartExit(2, "exit status 2", []byte(out.String()), false)
	stdout, stderr, err := exec(t, f, "start node", false)
	if !errors.Is(err, control.ErrStartFailed) {
		t.Fatalf("err = %v, want ErrStartFailed", err)
	}
	if stdout != "" {
		t.Errorf("stdout = %q: a failed start printed success", stdout)
	}
	for _, want := range []string{"start node: app 4 exited within 20ms of starting (exit status 2)", "its last output (logs 4):\n  line e\n", "  line n\n"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "line d\n") {
		t.Errorf("more than %d lines shown:\n%s", startLogLines, stderr)
	}
	if n := strings.Count(stderr, "exited within"); n != 1 {
		t.Errorf("error printed %d times:\n%s", n, stderr)
	}

	// Restart policy: it is restarting, still a failed start.
	f = newFake()
	f.SetStartExit(1, "exit status 1", nil, true)
	_, stderr, err = exec(t, f, "start node", false)
	if !errors.Is(err, control.ErrStartFailed) || !strings.Contains(stderr, "(exit status 1; its restart policy restarts it); it printed nothing") {
		t.Fatalf("backoff: %v, %q", err, stderr)
	}

	// The catalog's start_secs sets the window.
	f = controltest.New(control.CatalogEntry{Name: "slow", StartWindowMS: 30000})
	f.SetStartExit(1, "exit status 1", nil, false)
	_, stderr, err = exec(t, f, "start slow", false)
	if !errors.Is(err, control.ErrStartFailed) || !strings.Contains(stderr, "exited within 30s of starting") {
		t.Fatalf("start_secs: %v, %q", err, stderr)
	}

	// A clean quick exit is not a failure.
	f = newFake()
	f.SetStartExit(0, "exit status 0", []byte("done\n"), false)
	stdout, _, err = exec(t, f, "start node", false)
	if err != nil || !strings.Contains(stdout, "started node: id 4, pid 1004 (it exited at once: exit status 0)") {
		t.Fatalf("clean exit: %v, %q", err, stdout)
	}

	// JSON: one object with the code.
	f = newFake()
	f.SetStartExit(3, "exit status 3", []byte("boom\n"), false)
	stdout, _, err = exec(t, f, "start node", true)
	var obj map[string]any
	if jerr := json.Unmarshal([]byte(stdout), &obj); err == nil || jerr != nil || obj["code"] != control.CodeStartFailed || !strings.Contains(obj["error"].(string), "boom") {
		t.Fatalf("json: %v, %q", err, stdout)
	}
}

// TestStartFlags: args after the name append to default_args; --replace
// and --force travel; a second copy is refused.
func TestStartFlags(t *testing.T) {
	f := newFake()
	if _, _, err := exec(t, f, "start node -x y; start node; start --force node; start --replace -f node --only", false); err == nil {
		t.Fatal("a second copy of node started without --force")
	}
	s := f.Starts()
	if len(s) != 4 || s[0].UseDefault || strings.Join(s[0].Args, " ") != "-x y" || !s[1].UseDefault || !s[2].Force || !s[3].Replace || !s[3].Force {
		t.Fatalf("requests %+v", s)
	}
	if _, errOut, err := exec(t, f, "start --frob node", false); !errors.Is(err, ErrUsage) || !strings.Contains(errOut, "start: unknown flag --frob") {
		t.Fatalf("unknown flag: %v %q", err, errOut)
	}
	// After the name, dashes belong to the app.
	f = newFake()
	if _, _, err := exec(t, f, "start echo --replace", false); err != nil || f.Starts()[0].Replace || strings.Join(f.Starts()[0].Args, " ") != "--replace" {
		t.Fatalf("flag after the app name was taken by start: %v %+v", err, f.Starts())
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		line, out, errOut string
		wantErr           error
	}{
		{line: "ping echo", errOut: "ping echo: 2 apps are named echo: 1 (running), 3 (running); give one ID", wantErr: ErrAmbiguous},
		{line: "logs node", out: ""},                        // the one (exited) node
		{line: "restart node", out: "restarted node: id 2"}, // by name, exited
		{line: "sd nosuch", errOut: "shutdown nosuch: no launched app is named nosuch", wantErr: control.ErrNoSuchApp},
		{line: "stop echo", errOut: "2 apps are named echo", wantErr: ErrAmbiguous},
		{line: "status echo", out: "1 echo: running, pid 1001, up 1h2m3s\n  signal:   yes\n"},
		{line: "status node", out: "2 node: exited\n  signal:   no\n  daemon:   yes\n  restarts: 3\n  exit:     exit status 2\n  args:     -\n"},
		{line: "status 3", out: "3 echo: running, pid 1003"},
		{line: "status", out: "ID  NAME  PID"},
		{line: "status nosuch", errOut: "status nosuch: no launched app is named nosuch", wantErr: control.ErrNoSuchApp},
		{line: "status 9", errOut: "status 9: no app with that ID", wantErr: control.ErrNoSuchApp},
	}
	for _, tt := range tests {
		out, errOut, err := exec(t, newFake(), tt.line, false)
		if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: err %v, want %v", tt.line, err, tt.wantErr)
		}
		if !strings.Contains(out, tt.out) || tt.errOut != "" && !strings.Contains(errOut, tt.errOut) {
			t.Errorf("%s: out %q err %q", tt.line, out, errOut)
		}
	}
	// A name with one live instance among exited ones picks the live one.
	f := newFake()
	if _, _, err := exec(t, f, "sd 1; ping echo", false); err == nil || !strings.Contains(err.Error(), "not a signal client") {
		t.Fatalf("ping echo with only 3 running went elsewhere: %v", err)
	}
}

// TestStartStopAll: start all starts what does not run, in after order;
// stop all stops every live app, newest first.
func TestStartStopAll(t *testing.T) {
	f := controltest.New(
		control.CatalogEntry{Name: "web", After: []string{"node"}},
		control.CatalogEntry{Name: "node", After: []string{"manager"}},
		control.CatalogEntry{Name: "manager"},
		control.CatalogEntry{Name: "already"},
	)
	f.AddApp(control.AppInfo{Name: "already", Pid: 10, State: control.StateRunning}, "")
	out, _, err := exec(t, f, "start all", false)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, s := range f.Starts() {
		order = append(order, s.Name)
	}
	if strings.Join(order, ",") != "manager,node,web" {
		t.Fatalf("start all order %v", order)
	}
	if !strings.Contains(out, "already: already running\n") || !strings.Contains(out, "started web: id 4") {
		t.Errorf("start all printed %q", out)
	}
	out, _, err = exec(t, f, "stop all", false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "shut down 4 (web)") || strings.Count(out, "shut down") != 4 {
		t.Errorf("stop all printed %q", out)
	}
	out, _, err = exec(t, f, "stop all", false)
	if err != nil || out != "no app is running\n" {
		t.Errorf("stop all with nothing running: %v %q", err, out)
	}
	// A failure does not stop the rest and makes the command fail, once.
	f.SetStartExit(1, "exit status 1", []byte("nope\n"), false)
	_, errOut, err := exec(t, f, "start all", false)
	if !errors.Is(err, control.ErrStartFailed) || strings.Count(errOut, "exited within") != 4 || !strings.Contains(errOut, "start all: 4 of 4 apps failed to start: already, manager, node, web") {
		t.Errorf("start all with failures: %v\n%s", err, errOut)
	}
	out, _, err = exec(t, f, "start all", true)
	if err == nil || strings.Count(out, "\n") != 1 {
		t.Errorf("start all --json: one object per command, got %q", out)
	}
}

func TestRemoveAndReload(t *testing.T) {
	f := newFake()
	if _, errOut, err := exec(t, f, "rm 1", false); !errors.Is(err, control.ErrAppRunning) || !strings.Contains(errOut, "still running") {
		t.Fatalf("rm of a running app: %v %q", err, errOut)
	}
	out, _, err := exec(t, f, "rm node", false)
	if err != nil || out != "removed 2 (node)\n" {
		t.Fatalf("rm node: %v %q", err, out)
	}
	f.SetExited(1, 0, "exit status 0", false)
	f.SetExited(3, 1, "exit status 1", false)
	out, _, err = exec(t, f, "rm all", false)
	if err != nil || out != "removed 1 (echo)\nremoved 3 (echo)\n" {
		t.Fatalf("rm all: %v %q", err, out)
	}
	if out, _, _ := exec(t, f, "rm all", false); out != "no exited apps to remove\n" {
		t.Fatalf("rm all again: %q", out)
	}
	if _, _, err := exec(t, f, "rm", false); !errors.Is(err, ErrUsage) {
		t.Fatalf("rm without args: %v", err)
	}

	out, _, err = exec(t, f, "reload", false)
	if err != nil || out != "catalog reloaded: no changes\n" {
		t.Fatalf("reload: %v %q", err, out)
	}
	f.SetCatalog(control.CatalogEntry{Name: "echo", Desc: "changed"}, control.CatalogEntry{Name: "new"})
	out, _, err = exec(t, f, "reload", false)
	if err != nil || !strings.HasPrefix(out, "catalog reloaded: added new; removed node; changed echo") {
		t.Fatalf("reload: %v %q", err, out)
	}
	var buf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f.SetCatalog(control.CatalogEntry{Name: "echo"})
	if err := Exec(ctx, f, "reload", Options{JSON: true, Out: &buf}); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(buf.String()); got != `{"cmd":"reload","ok":true,"added":[],"removed":["new"],"changed":["echo"],"admins_added":[],"admins_removed":[]}` {
		t.Errorf("reload --json: %s", got)
	}
}
