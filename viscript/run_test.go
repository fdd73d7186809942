package viscript

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/viscript/control"
)

// freeTCPAddr returns a loopback address that was free a moment ago.
func freeTCPAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRunControlSockets(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	e.cfg.ControlTCP = freeTCPAddr(t)
	e.cfg.ControlToken = "s3cret"
	s := e.open()
	stop := e.run(s)
	ctx := context.Background()

	fi, err := os.Stat(s.ControlPath())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode: %v %v", fi, err)
	}

	c, err := control.Dial(ctx, "unix", s.ControlPath(), "")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := c.Start(ctx, control.StartRequest{Name: "sleep", UseDefault: true})
	if err != nil {
		t.Fatalf("Start over socket: %v", err)
	}
	daemon, err := c.Start(ctx, control.StartRequest{Name: "sleepd", UseDefault: true})
	if err != nil {
		t.Fatalf("Start over socket: %v", err)
	}
	e.procs.add(plain.Pid)
	e.procs.add(daemon.Pid)
	if _, err := c.Start(ctx, control.StartRequest{Name: "nope"}); !errors.Is(err, control.ErrUnknownApp) {
		t.Fatalf("unknown app over socket: %v", err)
	}
	cat, err := c.Catalog(ctx)
	if err != nil || len(cat) != len(e.cfg.Apps) || cat[0].Name > cat[1].Name {
		t.Fatalf("Catalog: %v %v", cat, err)
	}

	// TCP needs the token.
	bad, err := control.Dial(ctx, "tcp", e.cfg.ControlTCP, "wrong")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.List(ctx); !errors.Is(err, control.ErrUnauthorized) {
		t.Errorf("List with a wrong token: %v", err)
	}
	bad.Close()
	good, err := control.Dial(ctx, "tcp", e.cfg.ControlTCP, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	list, err := good.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List over TCP: %v %v", list, err)
	}
	good.Close()

	// The session ends: its non-daemon app is stopped, the daemon stays.
	c.Close()
	tstest.WaitFor(t, "owner released", func() bool {
		return appInfo(t, s, plain.ID).State == control.StateExited
	})
	if a := appInfo(t, s, daemon.ID); a.State != control.StateRunning {
		t.Fatalf("daemon after session end: %+v", a)
	}
	stop()
	if _, err := os.Stat(s.ControlPath()); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
	// The lock is released: a new viscript can take over.
	s2 := e.open()
	if a := appInfo(t, s2, daemon.ID); a.State != control.StateRunning {
		t.Errorf("daemon not re-adopted: %+v", a)
	}
}

func TestRunStaleSockets(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	e.mkStateDir()
	// A socket file left by a viscript that died.
	ln, err := net.Listen("unix", e.cfg.StateDir+"/"+controlSock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	s := e.open()
	e.run(s)
	c, err := control.Dial(context.Background(), "unix", s.ControlPath(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.List(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownDeadlineKills(t *testing.T) {
	e, s := openEnv(t)
	info := e.start(s, "ignoreterm", "") // stop_timeout 2s
	tstest.WaitFor(t, "helper ready", func() bool {
		c, _ := s.Logs(context.Background(), info.ID, 0, 100)
		return len(c.Data) > 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := s.Shutdown(ctx, info.ID)
	if err != nil || res.Step != control.StopSIGKILL {
		t.Fatalf("Shutdown: %+v %v", res, err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("Shutdown took %s despite a 200ms deadline", d)
	}
}
