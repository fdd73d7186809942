package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/cli/config"
	"github.com/skywire-mesh/skywire/internal/cli/rolectl"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/node"
)

// mesh is a manager and nodes a..e, each a separate skywire process, all
// from one config file:
//
//	a — b — c — d — e      (the line: a stream a→e crosses three relays)
//	     \_______/         (a detour b—d, made costly with link_cost)
type mesh struct {
	t      *testing.T
	dir    string
	config string
	state  string
	procs  map[string]*exec.Cmd
	keys   map[string]string
	addrs  map[string]string // listen addresses of the manager and nodes
}

var meshNodes = []string{"a", "b", "c", "d", "e"}

// Listen addresses for the processes a test starts are handed out here.
// Ports the kernel hands out for ":0" come from the ephemeral range, which
// outgoing connections also take their source ports from: on a busy machine
// one may take the port between this check and the node's bind. So ports
// come from below the ephemeral range (32768 on Linux), one after another
// (two nodes of one test never get the same port, as they could when each
// was drawn at random), on a loopback address drawn once per test process
// from 127.0.0.0/8 (a second `make test` running beside this one uses
// another address, so their ports cannot collide either).
var (
	portMu   sync.Mutex
	portHost = fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), rand.IntN(256), 1+rand.IntN(254))
	portNext = 20000 + rand.IntN(12000)
)

// freePort returns a loopback address, checked free, for a process to
// listen on later.
func freePort(t *testing.T) string {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for i := 0; i < 200; i++ {
		portNext++
		if portNext >= 32000 {
			portNext = 20000
		}
		addr := net.JoinHostPort(portHost, strconv.Itoa(portNext))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr
	}
	t.Fatalf("no free port in 20000-32000 on %s", portHost)
	return ""
}

func newMesh(t *testing.T) *mesh { return newMeshWith(t, nil) }

// newMeshWith is newMesh with more config: extra gets the node keys and
// returns TOML to append.
func newMeshWith(t *testing.T, extra func(keys map[string]string) string) *mesh {
	t.Helper()
	return newMeshNamed(t, nil, extra)
}

// newMeshNamed is newMeshWith with a [node] name for the nodes names lists.
func newMeshNamed(t *testing.T, names map[string]string, extra func(keys map[string]string) string) *mesh {
	t.Helper()
	dir := t.TempDir()
	m := &mesh{t: t, dir: dir, config: filepath.Join(dir, "skywire.toml"), state: filepath.Join(dir, "state"),
		procs: map[string]*exec.Cmd{}, keys: map[string]string{}}
	addr := map[string]string{"manager": freePort(t)}
	m.addrs = addr
	for _, n := range append([]string{"manager"}, meshNodes...) {
		m.keys[n] = config.DemoKeyPair("e2e-" + n).Public.String()
		if n != "manager" {
			addr[n] = freePort(t)
		}
	}
	peer := func(n string) string { return fmt.Sprintf("{ public_key = %q, addr = %q }", m.keys[n], addr[n]) }
	var b strings.Builder
	fmt.Fprintf(&b, "[viscript]\nstate_dir = %q\n\n[manager]\nidentity = \"demo:e2e-manager\"\nlisten_addr = %q\n\n", m.state, addr["manager"])
	links := map[string][]string{"a": {"b"}, "b": {"c", "d"}, "c": {"d"}, "d": {"e"}}
	for _, n := range meshNodes {
		fmt.Fprintf(&b, "[nodes.%s]\nidentity = \"demo:e2e-%s\"\nlisten_addr = %q\nmanagers = [%s]\n", n, n, addr[n], peer("manager"))
		if names[n] != "" {
			fmt.Fprintf(&b, "name = %q\n", names[n])
		}
		var ps []string
		for _, p := range links[n] {
			ps = append(ps, peer(p))
		}
		fmt.Fprintf(&b, "peers = [%s]\n", strings.Join(ps, ", "))
		switch n { // the detour costs more than the two links it bypasses
		case "b":
			fmt.Fprintf(&b, "link_cost = { %q = \"50ms\" }\n", m.keys["d"])
		case "d":
			fmt.Fprintf(&b, "link_cost = { %q = \"50ms\" }\n", m.keys["b"])
		}
		b.WriteString("\n")
	}
	if extra != nil {
		b.WriteString(extra(m.keys))
	}
	if err := os.WriteFile(m.config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.cleanup)
	m.start("manager", "manager")
	for _, n := range meshNodes {
		m.start(n, "node", "--profile", n)
	}
	return m
}

func (m *mesh) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(skywireBin, append([]string{"--config", m.config}, args...)...)
	cmd.Env = append(os.Environ(), "SKYWIRE_SIGNAL_ADDR=", "SKYWIRE_STATE_DIR=")
	return cmd
}

func (m *mesh) start(name string, args ...string) {
	m.t.Helper()
	cmd := m.cmd(append([]string{"--log-level", "debug"}, args...)...)
	startLogged(m.t, cmd, filepath.Join(m.dir, name+".log"))
	m.procs[name] = cmd
}

func (m *mesh) kill(name string, sig syscall.Signal) {
	m.t.Helper()
	cmd := m.procs[name]
	cmd.Process.Signal(sig)
	cmd.Wait()
	delete(m.procs, name)
}

func (m *mesh) cleanup() {
	for name := range m.procs {
		m.procs[name].Process.Kill()
		m.procs[name].Wait()
	}
	if m.t.Failed() {
		for _, n := range append([]string{"manager"}, meshNodes...) {
			if b, err := os.ReadFile(filepath.Join(m.dir, n+".log")); err == nil {
				m.t.Logf("%s.log:\n%s", n, tail(b, 3000))
			}
		}
	}
}

func (m *mesh) ctl(n string) string { return filepath.Join(m.state, "node-"+n+".ctl") }

// waitNode waits until node n answers on its control socket.
func (m *mesh) waitNode(n string) {
	m.t.Helper()
	tstest.WaitFor(m.t, "node "+n+" to answer on its control socket", func() bool {
		var st node.Status
		return rolectl.Get(context.Background(), m.ctl(n), "/status", &st) == nil
	})
}

// waitRoute waits until a's manager offers a path to e of the given number
// of links, and returns it.
func (m *mesh) waitRoute(from, to string, links int) node.PathInfo {
	m.t.Helper()
	var p node.PathInfo
	var err error
	defer func() {
		if m.t.Failed() {
			m.t.Logf("last route %s→%s: %+v, %v", from, to, p, err)
		}
	}()
	waitLong(m.t, fmt.Sprintf("a %d-link route %s→%s", links, from, to), func() bool {
		// A short limit per query, retried: not the check.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err = rolectl.Get(ctx, m.ctl(from), "/route?to="+m.keys[to], &p)
		return err == nil && len(p.Per) == links
	})
	return p
}

// transfer streams size bytes from a to e with `skywire nc`, calling
// during(sent) as the bytes go out, and checks that e received exactly
// what a sent.
func (m *mesh) transfer(size int64, during func(sent int64)) {
	m.t.Helper()
	recv := m.cmd("nc", "--profile", "e", "-l", "9000")
	recv.Stdin = nil // /dev/null: e sends nothing back
	out, recvErr := startPiped(m.t, recv, recv.StdoutPipe)
	defer recv.Process.Kill()
	type result struct {
		n   int64
		sum string
		err error
	}
	got := make(chan result, 1)
	go func() {
		h := sha256.New()
		n, err := io.Copy(h, out)
		got <- result{n, hex.EncodeToString(h.Sum(nil)), err}
	}()
	send, in, sendErr := m.ncToE("9000")
	defer send.Process.Kill()
	want := sendRandom(m.t, in, sendErr, 1, size, during)
	select {
	case r := <-got:
		if r.err != nil || r.n != size || r.sum != want {
			m.t.Fatalf("received %d bytes (sha256 %s, err %v); sent %d (sha256 %s); receiver said %s", r.n, r.sum, r.err, size, want, recvErr)
		}
	case <-time.After(120 * time.Second):
		m.t.Fatalf("transfer did not finish within 120 s after the last byte was sent; receiver said %s, sender %s", recvErr, sendErr)
	}
	waitExit(m.t, send, "sender nc", sendErr)
	waitExit(m.t, recv, "receiver nc", recvErr)
}

// ncToE waits until the `nc -l` started on node e has registered with
// it, then starts `skywire nc` from node a to e's port: it returns the
// sender, its stdin and its stderr so far. The caller kills it.
func (m *mesh) ncToE(port string) (*exec.Cmd, io.WriteCloser, *strings.Builder) {
	m.t.Helper()
	tstest.WaitFor(m.t, "nc -l to register with node e", func() bool {
		var apps []struct{ Name string }
		return rolectl.Get(context.Background(), m.ctl("e"), "/apps", &apps) == nil && len(apps) > 0
	})
	send := m.cmd("nc", "--profile", "a", m.keys["e"], port)
	in, sendErr := startPiped(m.t, send, send.StdinPipe)
	return send, in, sendErr
}

// waitExit waits for cmd to exit and fails the test if it did not exit 0,
// with what it wrote to stderr (nil: not captured).
func waitExit(t *testing.T, cmd *exec.Cmd, what string, stderr fmt.Stringer) {
	t.Helper()
	if err := waitCmd(t, cmd, 20*time.Second, what); err != nil {
		said := "(stderr not captured)"
		if stderr != nil {
			said = stderr.String()
		}
		t.Errorf("%s exited with %v; it said: %s", what, err, said)
	}
}

const bulk = 200 << 20

// TestMeshStreamThreeRelays: 200 MB from a to e through b, c and d.
func TestMeshStreamThreeRelays(t *testing.T) {
	m := newMesh(t)
	p := m.waitRoute("a", "e", 4)
	if p.Hops[2].String() != m.keys["c"] {
		t.Fatalf("route a→e does not go through c: %v", p.Hops)
	}
	m.transfer(bulk, nil)

	// What people run to look at the mesh works on it.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "status", "--profile", "a"}, m.keys["a"]},
		{[]string{"node", "links", "--profile", "b"}, m.keys["c"]},
		{[]string{"node", "routes", "--profile", "c"}, "ROUTE"},
		{[]string{"node", "sessions", "--profile", "a"}, m.keys["e"]},
		{[]string{"node", "apps", "--profile", "e", "--json"}, "["},
		{[]string{"manager", "nodes"}, m.keys["d"]},
		{[]string{"manager", "routes"}, "ROUTE"},
		{[]string{"route", "--profile", "a", m.keys["e"]}, "4 links"},
		{[]string{"ping", "--profile", "a", "-c", "2", "-i", "100ms", m.keys["e"]}, "2 received"},
	} {
		out, err := m.cmd(tt.args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), tt.want) {
			t.Errorf("skywire %s: %v, output lacks %q:\n%s", strings.Join(tt.args, " "), err, tt.want, out)
		}
	}
	var rs []node.RouteInfo
	if err := rolectl.Get(context.Background(), m.ctl("c"), "/routes", &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs) == 0 {
		t.Error("relay c has no forwarding rule: the stream did not cross it")
	}
}

// TestMeshRelayKilled: kill -9 the middle relay mid-transfer; the route is
// repaired through the detour and every byte arrives once.
func TestMeshRelayKilled(t *testing.T) {
	m := newMesh(t)
	m.waitRoute("a", "e", 4)
	killed := false
	m.transfer(bulk, func(sent int64) {
		if !killed && sent >= bulk/4 {
			killed = true
			m.kill("c", syscall.SIGKILL)
		}
	})
	if p := m.waitRoute("a", "e", 3); p.Hops[2].String() != m.keys["d"] {
		t.Errorf("after c died the route is %v, want a-b-d-e", p.Hops)
	}
}

// TestMeshManagerRestart: the manager goes away mid-transfer and comes
// back; established routes keep forwarding and the transfer is not
// interrupted.
func TestMeshManagerRestart(t *testing.T) {
	m := newMesh(t)
	m.waitRoute("a", "e", 4)
	var stopped, restarted bool
	m.transfer(bulk, func(sent int64) {
		switch {
		case !stopped && sent >= bulk/4:
			stopped = true
			m.kill("manager", syscall.SIGKILL)
		case stopped && !restarted && sent >= bulk/2:
			restarted = true
			m.start("manager", "manager")
		}
	})
	// The nodes registered again: the manager answers route requests.
	m.waitRoute("a", "e", 4)
}

// sendRandom writes size bytes of a seeded PRNG stream to in (a sender's
// stdin), calling during (if not nil) with the count after each chunk,
// closes in and returns the hex SHA-256 of what it wrote.
func sendRandom(t *testing.T, in io.WriteCloser, sendErr fmt.Stringer, seed uint64, size int64, during func(sent int64)) string {
	t.Helper()
	h := sha256.New()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	buf := make([]byte, 64<<10)
	var sent int64
	for sent < size {
		for i := 0; i+8 <= len(buf); i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], rng.Uint64())
		}
		chunk := buf[:min(int64(len(buf)), size-sent)]
		if _, err := in.Write(chunk); err != nil {
			t.Fatalf("writing to the sender after %d bytes: %v; it said %s", sent, err, sendErr)
		}
		h.Write(chunk)
		sent += int64(len(chunk))
		if during != nil {
			during(sent)
		}
	}
	in.Close()
	return hex.EncodeToString(h.Sum(nil))
}
