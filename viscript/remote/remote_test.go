package remote_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/viscript/control"
	"github.com/skywire-mesh/skywire/viscript/control/controltest"
	"github.com/skywire-mesh/skywire/viscript/remote"
)

// env is a fake mesh with a node serving a fake viscript on the remote
// port, and nodes to call from.
type env struct {
	t    *testing.T
	net  *fakemesh.Network
	srv  *remote.Server
	ctrl *controltest.Fake
	node *fakemesh.ServedNode // the served viscript's node
}

func newEnvOn(t *testing.T, n *fakemesh.Network, cfg remote.ServerConfig, admins ...*fakemesh.ServedNode) *env {
	t.Helper()
	e := &env{t: t, net: n, ctrl: controltest.New(control.CatalogEntry{Name: "web"})}
	e.node = fakemesh.ServeNode(t, n, "server")
	cfg.NodeSocket = e.node.Path
	for _, a := range admins {
		cfg.Admins = append(cfg.Admins, a.PublicKey())
	}
	e.srv = remote.NewServer(e.ctrl, cfg, tstest.Logger(t, "remote: "))
	tstest.RunUntilCleanup(t, "Run", e.srv.Run)
	return e
}

// newAdminEnv is newEnvOn on a new network, with one admin node.
func newAdminEnv(t *testing.T, cfg remote.ServerConfig) (*env, *fakemesh.ServedNode) {
	t.Helper()
	n := fakemesh.New()
	admin := fakemesh.ServeNode(t, n, "admin")
	return newEnvOn(t, n, cfg, admin), admin
}

// caller is a node with a Dialer.
func (e *env) caller(name string) (*fakemesh.ServedNode, *remote.Dialer) {
	nd := fakemesh.ServeNode(e.t, e.net, name)
	return nd, e.dialer(nd)
}

func (e *env) dialer(nd *fakemesh.ServedNode) *remote.Dialer {
	d := &remote.Dialer{NodeSocket: nd.Path}
	e.t.Cleanup(func() { d.Close() })
	return d
}

// dial waits until the server's port is up and connects.
func (e *env) dial(d *remote.Dialer) *control.Client {
	e.t.Helper()
	var c *control.Client
	tstest.WaitFor(e.t, "the remote port to accept", func() bool {
		var err error
		c, err = d.Dial(ctx(e.t), e.node.PublicKey())
		return err == nil
	})
	e.t.Cleanup(func() { c.Close() })
	return c
}

// waitClosed waits until a dial through d is refused as ErrNoViscript.
func (e *env) waitClosed(d *remote.Dialer, what string) {
	e.t.Helper()
	tstest.WaitFor(e.t, what, func() bool {
		_, err := d.Dial(ctx(e.t), e.node.PublicKey())
		return errors.Is(err, remote.ErrNoViscript)
	})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), tstest.Scaled(10*time.Second))
	t.Cleanup(cancel)
	return c
}

// TestAdminDrivesApps: an admin's stream carries the whole control
// protocol: start (owned by the stream's session), list, ping, logs,
// shutdown, and the session's apps are released when it ends.
func TestAdminDrivesApps(t *testing.T) {
	tstest.CheckLeaks(t)
	e, admin := newAdminEnv(t, remote.ServerConfig{})
	c := e.dial(e.dialer(admin))

	info, err := c.Start(ctx(t), control.StartRequest{Name: "web", UseDefault: true, Owner: "forged"})
	if err != nil {
		t.Fatal(err)
	}
	if owner := e.ctrl.Owner(info.ID); owner == "forged" || owner == "" {
		t.Errorf("owner %q: the server must name the owner, not the message", owner)
	}
	list, err := c.List(ctx(t))
	if err != nil || len(list) != 1 || list[0].Name != "web" || list[0].ID != info.ID {
		t.Fatalf("List = %v, %v", list, err)
	}
	sig := e.ctrl.AddApp(control.AppInfo{Name: "sig", State: control.StateRunning, Connected: true}, "")
	if _, err := c.Ping(ctx(t), sig); err != nil {
		t.Errorf("Ping: %v", err)
	}
	e.ctrl.AppendLog(info.ID, []byte("hello over the mesh\n"))
	chunk, err := c.Logs(ctx(t), info.ID, 0, 1024)
	if err != nil || string(chunk.Data) != "hello over the mesh\n" {
		t.Errorf("Logs = %q, %v", chunk.Data, err)
	}
	if _, err := c.Shutdown(ctx(t), 99); !errors.Is(err, control.ErrNoSuchApp) {
		t.Errorf("Shutdown of an unknown ID: %v, want ErrNoSuchApp across the mesh", err)
	}
	c.Close()
	select {
	case <-e.ctrl.ReleasedC():
	case <-time.After(tstest.Scaled(10 * time.Second)):
		t.Error("the owner of a closed mesh connection was not released")
	}
}

// TestStrangerRefused: a key that is not an admin gets ErrUnauthorized
// naming its key, and its stream is closed; the admin is unaffected.
func TestStrangerRefused(t *testing.T) {
	tstest.CheckLeaks(t)
	e, admin := newAdminEnv(t, remote.ServerConfig{})
	good := e.dial(e.dialer(admin))
	stranger, d := e.caller("stranger")
	c := e.dial(d)

	_, err := c.List(ctx(t))
	if !errors.Is(err, control.ErrUnauthorized) || !strings.Contains(err.Error(), stranger.PublicKey().String()) {
		t.Fatalf("stranger's List: %v; want ErrUnauthorized naming %s", err, stranger.PublicKey())
	}
	if _, err := c.List(ctx(t)); !errors.Is(err, control.ErrClosed) {
		t.Errorf("second request on the refused stream: %v, want ErrClosed", err)
	}
	if e.srv.Refused() == 0 {
		t.Error("refusal not counted")
	}
	if len(e.ctrl.Calls()) != 0 {
		t.Errorf("the stranger reached the controller: %v", e.ctrl.Calls())
	}
	if _, err := good.List(ctx(t)); err != nil {
		t.Errorf("admin after the refusal: %v", err)
	}
}

// TestRemovedAdminRefused: SetAdmins without the key refuses its next
// request on a connection opened while it was an admin, and closes it.
func TestRemovedAdminRefused(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	admin := fakemesh.ServeNode(t, n, "admin")
	other := fakemesh.ServeNode(t, n, "other")
	e := newEnvOn(t, n, remote.ServerConfig{}, admin, other)
	c := e.dial(e.dialer(admin))
	c2 := e.dial(e.dialer(other))
	if _, err := c.List(ctx(t)); err != nil {
		t.Fatal(err)
	}
	added, removed := e.srv.SetAdmins([]keys.PublicKey{other.PublicKey()})
	if len(added) != 0 || len(removed) != 1 || removed[0] != admin.PublicKey() {
		t.Errorf("SetAdmins = added %v removed %v", added, removed)
	}
	_, err := c.List(ctx(t))
	if !errors.Is(err, control.ErrUnauthorized) || !strings.Contains(err.Error(), admin.PublicKey().String()+" is no longer an admin") {
		t.Fatalf("removed admin's List on its open connection: %v", err)
	}
	if _, err := c.List(ctx(t)); !errors.Is(err, control.ErrClosed) {
		t.Errorf("after the refusal the connection must be closed: %v", err)
	}
	if _, err := c2.List(ctx(t)); err != nil {
		t.Errorf("the remaining admin: %v", err)
	}
}

// TestNoAdminsNoPort: with no admins nothing listens on the port (a
// dial is refused as ErrNoViscript); adding one opens it, removing the
// last closes it again.
func TestNoAdminsNoPort(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	e := newEnvOn(t, n, remote.ServerConfig{})
	admin, d := e.caller("admin")
	// Run may not have looked yet: the port must stay closed anyway.
	if _, err := d.Dial(ctx(t), e.node.PublicKey()); !errors.Is(err, remote.ErrNoViscript) {
		t.Fatalf("dial with no admins: %v, want ErrNoViscript", err)
	}
	e.srv.SetAdmins([]keys.PublicKey{admin.PublicKey()})
	c := e.dial(d)
	if _, err := c.List(ctx(t)); err != nil {
		t.Fatal(err)
	}
	e.srv.SetAdmins(nil)
	e.waitClosed(d, "the port to close with the last admin")
}

// TestMaxClients: connections beyond MaxClients are closed; the ones
// within keep working.
func TestMaxClients(t *testing.T) {
	tstest.CheckLeaks(t)
	e, admin := newAdminEnv(t, remote.ServerConfig{MaxClients: 2})
	d := e.dialer(admin)
	var open []*control.Client
	for range 2 {
		c := e.dial(d)
		if _, err := c.List(ctx(t)); err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	c, err := d.Dial(ctx(t), e.node.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.List(ctx(t)); !errors.Is(err, control.ErrClosed) {
		t.Errorf("third connection: %v, want it closed", err)
	}
	for _, c := range open {
		if _, err := c.List(ctx(t)); err != nil {
			t.Errorf("a connection within the cap: %v", err)
		}
	}
}

// TestBadInputClosesOneStream: garbage on one admin stream closes that
// stream only.
func TestBadInputClosesOneStream(t *testing.T) {
	tstest.CheckLeaks(t)
	e, admin := newAdminEnv(t, remote.ServerConfig{})
	good := e.dial(e.dialer(admin))
	app := fakemesh.ConnectApp(t, admin.Path, "raw", 0)
	for _, junk := range [][]byte{
		{0xff, 0xff, 0xff, 0xff},                  // a length over MaxFrame
		{0, 0, 0, 3, 0xc1, 0xc1, 0xc1},            // not msgpack
		{0, 0, 0, 5, 0x81, 0xa1, 'v', 0x05, 0xc0}, // a request of another version, and trailing bytes
	} {
		conn, err := app.Dial(ctx(t), e.node.PublicKey(), remote.DefaultPort)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(junk); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(tstest.Scaled(10 * time.Second)))
		buf := make([]byte, 4096)
		for {
			_, err := conn.Read(buf)
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
					t.Errorf("junk %x: the stream stayed open", junk)
				}
				break
			}
		}
		conn.Close()
	}
	if _, err := good.List(ctx(t)); err != nil {
		t.Errorf("the other stream after the junk: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// TestNodeComesLater: the server waits for its node's socket (viscript
// starts the node after itself) and registers once it is there; after
// the node restarts it registers again.
func TestNodeComesLater(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	admin := fakemesh.ServeNode(t, n, "admin")
	nd, err := n.NewNode()
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Close()
	sock := tstest.SocketDir(t) + "/node.sock"
	srv := remote.NewServer(controltest.New(), remote.ServerConfig{NodeSocket: sock, Admins: []keys.PublicKey{admin.PublicKey()}}, tstest.Logger(t, "remote: "))
	tstest.RunUntilCleanup(t, "Run", srv.Run)
	d := &remote.Dialer{NodeSocket: admin.Path}
	defer d.Close()
	for round := range 2 {
		_, stop := fakemesh.ServeAppsAt(t, nd, tstest.Logger(t, "node: "), sock)
		var c *control.Client
		tstest.WaitFor(t, "the port after the node came up", func() bool {
			c, err = d.Dial(ctx(t), nd.PublicKey())
			return err == nil
		})
		if _, err := c.List(ctx(t)); err != nil {
			t.Errorf("round %d: %v", round, err)
		}
		c.Close()
		stop()
		tstest.WaitFor(t, "the port to go with the node", func() bool {
			_, err := d.Dial(ctx(t), nd.PublicKey())
			return errors.Is(err, remote.ErrNoViscript)
		})
	}
}

// TestStrangersInFlightCapped: while MaxRefusing strangers' streams are
// being answered (held: they send nothing), the next stranger's stream
// is closed without an answer; once they are gone, strangers are answered
// again.
func TestStrangersInFlightCapped(t *testing.T) {
	tstest.CheckLeaks(t)
	t.Cleanup(remote.SetRefuseWait(time.Minute)) // restored after the server stops
	e, admin := newAdminEnv(t, remote.ServerConfig{})
	_ = e.dial(e.dialer(admin)) // the port is up
	_, d := e.caller("stranger")
	var held []*control.Client
	for range remote.MaxRefusing {
		c, err := d.Dial(ctx(t), e.node.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	tstest.WaitFor(t, "the held strangers to be counted", func() bool { return e.srv.Refused() >= remote.MaxRefusing })
	over, err := d.Dial(ctx(t), e.node.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := over.List(ctx(t)); !errors.Is(err, control.ErrClosed) {
		t.Errorf("a stranger over the cap: %v, want closed unanswered", err)
	}
	over.Close()
	for _, c := range held {
		c.Close()
	}
	tstest.WaitFor(t, "a stranger answered again", func() bool {
		c, err := d.Dial(ctx(t), e.node.PublicKey())
		if err != nil {
			return false
		}
		defer c.Close()
		_, err = c.List(ctx(t))
		return errors.Is(err, control.ErrUnauthorized)
	})
}

// TestLastAdminRemovedRefusedClearly: removing the last admin closes the
// port, and a request on a connection it had open is still answered with
// the refusal naming its key (not a bare end of stream).
func TestLastAdminRemovedRefusedClearly(t *testing.T) {
	tstest.CheckLeaks(t)
	t.Cleanup(remote.SetDrainWait(time.Minute)) // the check must not race the drain; restored after the server stops
	e, admin := newAdminEnv(t, remote.ServerConfig{})
	d := e.dialer(admin)
	c := e.dial(d)
	if _, err := c.List(ctx(t)); err != nil {
		t.Fatal(err)
	}
	e.srv.SetAdmins(nil)
	e.waitClosed(d, "the port to close")
	if _, err := c.List(ctx(t)); !errors.Is(err, control.ErrUnauthorized) || !strings.Contains(err.Error(), admin.PublicKey().String()) {
		t.Errorf("the open connection after the last admin went: %v", err)
	}
}

// Nodes (the dashboard's source of controllers): the zero key is the
// local controller; another key one connection, reused while it lives and
// dialed again after it was lost; a stranger gets the remote refusal.
func TestNodesKeepsOneConnectionPerNode(t *testing.T) {
	tstest.CheckLeaks(t)
	e, admin := newAdminEnv(t, remote.ServerConfig{})
	e.dial(e.dialer(admin)).Close() // the port is up
	local := controltest.New()
	nodes := &remote.Nodes{Local: local, Dialer: e.dialer(admin)}
	defer nodes.Close()

	if c, err := nodes.Controller(ctx(t), keys.PublicKey{}); err != nil || c != control.Controller(local) {
		t.Fatalf("zero key: %v, %v; want the local controller", c, err)
	}
	c1, err := nodes.Controller(ctx(t), e.node.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if list, err := c1.List(ctx(t)); err != nil || len(list) != 0 {
		t.Fatalf("List over the mesh: %v, %v", list, err)
	}
	if c2, err := nodes.Controller(ctx(t), e.node.PublicKey()); err != nil || c2 != c1 {
		t.Fatalf("second Controller: %v, %v; want the same connection", c2, err)
	}
	// The connection is lost: the next Controller dials again.
	c1.(*control.Client).Close()
	<-c1.(*control.Client).Done()
	c3, err := nodes.Controller(ctx(t), e.node.PublicKey())
	if err != nil || c3 == c1 {
		t.Fatalf("after a loss: %v, %v; want a new connection", c3, err)
	}
	if _, err := c3.List(ctx(t)); err != nil {
		t.Fatalf("List on the new connection: %v", err)
	}

	_, d := e.caller("stranger")
	strangers := &remote.Nodes{Local: local, Dialer: d}
	defer strangers.Close()
	c, err := strangers.Controller(ctx(t), e.node.PublicKey())
	if err == nil {
		_, err = c.List(ctx(t))
	}
	if !errors.Is(err, control.ErrUnauthorized) {
		t.Errorf("a stranger's List through Nodes: %v, want ErrUnauthorized", err)
	}
	nodes.Close()
	if _, err := nodes.Controller(ctx(t), e.node.PublicKey()); !errors.Is(err, remote.ErrNodesClosed) {
		t.Errorf("Controller after Close: %v, want ErrNodesClosed", err)
	}
}
