package appnet_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

const helperEnv = "APPNET_TEST_HELPER_SOCKET"

// TestHelperApp is the app process of TestAppProcessKilled; it runs only
// when the parent test starts it.
func TestHelperApp(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process only")
	}
	ctx := context.Background()
	c, err := appnet.Connect(ctx, path, "doomed", 7)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("registered")
	conn, _, err := c.Accept(ctx)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	conn.Write([]byte("hi"))
	fmt.Println("accepted")
	select {} // until killed
}

// TestAppProcessKilled: an app process killed with SIGKILL releases its
// port and its streams, and the node keeps serving.
func TestAppProcessKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	a, b := newNode(t, n, "a"), newNode(t, n, "b")
	peer := b.connect(t, "peer", 0)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperApp$")
	cmd.Env = append(os.Environ(), helperEnv+"="+a.path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	lines := bufio.NewScanner(out)
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() || strings.TrimSpace(lines.Text()) != want {
			t.Fatalf("helper said %q (%v), want %q", lines.Text(), lines.Err(), want)
		}
	}
	expect("registered")
	apps := a.srv.Apps()
	if len(apps) != 1 || apps[0].PID != cmd.Process.Pid {
		t.Fatalf("Apps() = %+v, want doomed with the helper's pid %d (from SO_PEERCRED)", apps, cmd.Process.Pid)
	}
	ctx := ctxT(t, 10*time.Second)
	conn, err := peer.Dial(ctx, a.mesh.PublicKey(), 7)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	expect("accepted")
	buf := make([]byte, 2)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("read %q, %v", buf, err)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if rest, err := io.ReadAll(conn); err != nil || len(rest) != 0 {
		t.Fatalf("stream of the killed app: read %q, %v; want EOF", rest, err)
	}
	tstest.WaitFor(t, "the killed app to leave", func() bool { return len(a.srv.Apps()) == 0 })
	again := a.connect(t, "successor", 7)
	if again.Port() != 7 {
		t.Fatal("port not reused")
	}
}
