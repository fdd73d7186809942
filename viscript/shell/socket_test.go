package shell

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/viscript/control"
	"github.com/skywire-mesh/skywire/viscript/control/controltest"
)

// TestOverControlSocket runs the shell against a control.Client, as a
// shell in another process does.
func TestOverControlSocket(t *testing.T) {
	tstest.CheckLeaks(t)
	fake := newFake()
	_, path := controltest.Serve(t, fake, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := control.Dial(ctx, "unix", path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	out := newNotifyBuffer()
	err = Exec(ctx, c, "start echo; ping 1; ping 3; ru 1; logs 1; sd 4", Options{JSON: true, Owner: "ignored-remotely", Out: out})
	if !errors.Is(err, ErrCommandFailed) || !errors.Is(err, control.ErrNotSignalClient) {
		t.Fatalf("err = %v", err)
	}
	objs := decodeLines(t, out.String())
	wantCmds := []string{"start", "ping", "ping", "ru", "logs", "sd"}
	if len(objs) != len(wantCmds) {
		t.Fatalf("got %d objects:\n%s", len(objs), out.String())
	}
	for i, w := range wantCmds {
		if objs[i]["cmd"] != w {
			t.Errorf("object %d cmd %v, want %s", i, objs[i]["cmd"], w)
		}
	}
	if objs[2]["code"] != "not_signal_client" || objs[1]["rtt_ms"] != 0.123 || objs[5]["step"] != "signal" {
		t.Errorf("objects:\n%s", out.String())
	}
	if o := fake.Owner(4); o == "" || o == "ignored-remotely" || !strings.HasPrefix(o, "ctl-") {
		t.Errorf("owner over the socket = %q", o)
	}
}
