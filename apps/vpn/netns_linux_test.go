//go:build linux

package vpn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/keys"
)

// The root tests run the roles as helper processes (this test binary
// re-executed by `ip netns exec`) in network namespaces they create:
//
//	client ns: swc0 (vpn-client), d0 (a veth "uplink" with the default route)
//	server ns: sws0 (vpn-server), vs0 10.200.0.1/24 ─veth─ target ns: vt0 10.200.0.2/24
//
// The mesh between client and server is fakemesh in the test process:
// its app sockets are files, which every namespace reaches.

const (
	helperEnv    = "SKYWIRE_VPN_TEST_HELPER"
	helperCfgEnv = "SKYWIRE_VPN_TEST_CONFIG"
)

// TestVPNHelperProcess is not a test: it is the body of helper processes.
func TestVPNHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		t.Skip("helper process for the netns tests")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg := []byte(os.Getenv(helperCfgEnv))
	// SKYWIRE_VPN_TEST_CPUPROFILE=DIR writes DIR/ROLE-PID.prof: where a
	// helper's time goes, e.g. in BenchmarkNetnsIperf3 (docs/PERFORMANCE.md).
	if dir := os.Getenv("SKYWIRE_VPN_TEST_CPUPROFILE"); dir != "" && (role == "client" || role == "server") {
		if f, err := os.Create(fmt.Sprintf("%s/%s-%d.prof", dir, role, os.Getpid())); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	switch role {
	case "client":
		err = runJSONConfig(ctx, cfg, log, NewClient)
	case "server":
		err = runJSONConfig(ctx, cfg, log, NewServer)
	case "ping":
		err = icmpPing(string(cfg))
	case "echo":
		err = tcpEcho(ctx, string(cfg))
	case "tcpcheck":
		err = tcpCheck(string(cfg), 2<<20)
	case "udpecho":
		err = udpEcho(ctx, string(cfg))
	case "udpgso":
		err = udpGSOCheck(string(cfg))
	default:
		err = fmt.Errorf("unknown helper role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", role, err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	pprof.StopCPUProfile()
	os.Exit(0)
}

// listening opens a listener or socket with open, closes it when ctx is
// done, and tells the parent process (which waits for the line) that it
// is ready.
func listening[L io.Closer](ctx context.Context, open func() (L, error)) (L, error) {
	l, err := open()
	if err != nil {
		return l, err
	}
	context.AfterFunc(ctx, func() { l.Close() })
	fmt.Println("listening")
	return l, nil
}

// udpEcho echoes every UDP datagram to addr until ctx is done.
func udpEcho(ctx context.Context, addr string) error {
	c, err := listening(ctx, func() (net.PacketConn, error) { return net.ListenPacket("udp4", addr) })
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<16)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return nil
		}
		c.WriteTo(buf[:n], from)
	}
}

// udpGSOCheck sends 8 UDP datagrams of 1000 bytes to addr in one write
// with UDP_SEGMENT (a USO super-packet for the TUN device when it has
// USO) and waits for each one's echo, intact; it sends again up to 10
// times for the ones missing.
func udpGSOCheck(addr string) error {
	ra, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return err
	}
	c, err := net.DialUDP("udp4", nil, ra)
	if err != nil {
		return err
	}
	defer c.Close()
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, 1000) })
	if serr != nil {
		return fmt.Errorf("UDP_SEGMENT: %w", serr)
	}
	const n, size = 8, 1000
	msg := make([]byte, n*size)
	for i := range msg {
		msg[i] = byte(i * 13)
	}
	for k := range n {
		msg[k*size] = byte(k) // which datagram an echo is
	}
	got := map[int]bool{}
	buf := make([]byte, 1<<16)
	for try := 0; try < 10 && len(got) < n; try++ {
		if _, err := c.Write(msg); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		for len(got) < n {
			m, err := c.Read(buf)
			if err != nil {
				break
			}
			i := int(buf[0])
			if m != size || i >= n || !bytes.Equal(buf[:m], msg[i*size:(i+1)*size]) {
				return fmt.Errorf("echo of %d bytes does not match a datagram sent", m)
			}
			got[i] = true
		}
	}
	if len(got) < n {
		return fmt.Errorf("%d of %d datagrams echoed", len(got), n)
	}
	return nil
}

// icmpPing sends ICMP echo requests to dst until one is answered (5 tries).
func icmpPing(dst string) error {
	c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return err
	}
	defer c.Close()
	to := &net.IPAddr{IP: net.ParseIP(dst)}
	id := uint16(os.Getpid())
	for seq := uint16(1); seq <= 5; seq++ {
		msg := make([]byte, 8+32)
		msg[0] = 8 // echo request
		binary.BigEndian.PutUint16(msg[4:], id)
		binary.BigEndian.PutUint16(msg[6:], seq)
		copy(msg[8:], "skywire vpn netns test ping....")
		binary.BigEndian.PutUint16(msg[2:], checksum(msg))
		if _, err := c.WriteTo(msg, to); err != nil {
			return fmt.Errorf("send echo: %w", err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			buf := make([]byte, 1500)
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break // timeout: next try
			}
			b := buf[:n]
			if n >= 8 && b[0] == 0 && binary.BigEndian.Uint16(b[4:]) == id && from.String() == dst {
				return nil
			}
		}
	}
	return fmt.Errorf("no echo reply from %s", dst)
}

// tcpEcho echoes every connection to addr until ctx is done.
func tcpEcho(ctx context.Context, addr string) error {
	ln, err := listening(ctx, func() (net.Listener, error) { return net.Listen("tcp4", addr) })
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

// tcpCheck sends n random bytes to an echo server and checks they come back.
func tcpCheck(addr string, n int) error {
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	data := make([]byte, n)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		c.(*net.TCPConn).CloseWrite()
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("echo of %d bytes came back as %d different bytes", n, len(got))
	}
	return nil
}

// netns is a test's set of namespaces.
type netns struct {
	t      testing.TB
	prefix string
}

func needRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("netns test skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("netns test needs root (CAP_NET_ADMIN); CI runs it as root")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("netns test needs /dev/net/tun: %v", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("netns test needs iproute2's ip command (scripts/deps.sh installs it)")
	}
}

func newNetns(t testing.TB) *netns {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	n := &netns{t: t, prefix: "swtest-" + hex.EncodeToString(b)}
	probe := n.prefix + "-p"
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		t.Skipf("netns test needs `ip netns`: %v: %s", err, out)
	}
	exec.Command("ip", "netns", "del", probe).Run()
	return n
}

func (n *netns) name(s string) string { return n.prefix + "-" + s }

// add creates namespace s; cleanup deletes it (with every device in it).
func (n *netns) add(s string) string {
	name := n.name(s)
	n.must("ip", "netns", "add", name)
	n.t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			n.t.Errorf("delete netns %s: %v: %s", name, err, out)
		}
	})
	n.must("ip", "-n", name, "link", "set", "lo", "up")
	return name
}

func (n *netns) run(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

func (n *netns) must(args ...string) string {
	n.t.Helper()
	out, err := n.run(args...)
	if err != nil {
		n.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// helper is a helper process.
type helper struct {
	cmd  *exec.Cmd
	done chan error
	out  *logSink
}

// start runs the helper role in namespace ns.
func (n *netns) start(ns, role string, cfg any) *helper {
	n.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		n.t.Fatal(err)
	}
	var cfgText string
	if s, ok := cfg.(string); ok {
		cfgText = s
	} else {
		b, err := json.Marshal(cfg)
		if err != nil {
			n.t.Fatal(err)
		}
		cfgText = string(b)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^TestVPNHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, helperCfgEnv+"="+cfgText)
	sink := newLogSink(n.t, role+": ")
	cmd.Stdout, cmd.Stderr = sink, sink
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	h := &helper{cmd: cmd, done: make(chan error, 1), out: sink}
	go func() { h.done <- cmd.Wait() }()
	n.t.Cleanup(func() {
		select {
		case err := <-h.done:
			h.done <- err
		default:
			cmd.Process.Kill()
			<-h.done
		}
	})
	return h
}

// stop sends SIGTERM and waits for the helper's exit.
func (h *helper) stop(t testing.TB) error {
	t.Helper()
	h.cmd.Process.Signal(syscall.SIGTERM)
	return h.wait(t, 15*time.Second)
}

func (h *helper) wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case err := <-h.done:
		h.done <- err
		return err
	case <-time.After(d):
		t.Fatalf("helper %s did not exit in %v; output:\n%s", h.cmd.Args, d, h.out)
		return nil
	}
}

// waitOutput waits until the helper printed s.
func (h *helper) waitOutput(t testing.TB, s string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(h.out.String(), s) {
		select {
		case err := <-h.done:
			t.Fatalf("helper %v exited (%v) before printing %q:\n%s", h.cmd.Args, err, s, h.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("helper %v did not print %q in 15s:\n%s", h.cmd.Args, s, h.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testMesh is the mesh between the two roles of a netns test: app
// sockets, keys, and a way to take the client's node away.
type testMesh struct {
	srvSock, cliSock string
	srvKey, cliKey   keys.PublicKey
	stopClientNode   func()
}

// One test body, two meshes: fakemesh, and real nodes with a relay; each
// with TUN offloads on (TCP super-packets cross whole) and forced off.
func TestNetnsTunnel(t *testing.T) {
	needRoot(t)
	for _, mode := range []string{"on", "off"} {
		t.Run("offload="+mode, func(t *testing.T) {
			t.Setenv(offloadEnv, mode)
			netnsTunnelMeshes(t)
		})
	}
}

func netnsTunnelMeshes(t *testing.T) {
	t.Run("fakemesh", func(t *testing.T) {
		mesh := fakemesh.New()
		srvKey, cliKey := tstest.KeyPair(t).Public, tstest.KeyPair(t).Public
		srvNode, cliNode := newMeshNode(t, mesh, srvKey), newMeshNode(t, mesh, cliKey)
		netnsTunnel(t, testMesh{srvNode.path, cliNode.path, srvKey, cliKey, cliNode.stop})
	})
	t.Run("relay", func(t *testing.T) {
		m := meshtest.New(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3), TCP: true})
		m.WaitReady()
		srvSock, _ := serveApps(t, m, 0)
		cliSock, stop := serveApps(t, m, 2)
		netnsTunnel(t, testMesh{srvSock, cliSock, m.Nodes[0].Keys.Public, m.Nodes[2].Keys.Public, stop})
	})
}

// tunnel is a running VPN between namespaces: the client's, the server's
// and a target network behind the server.
type tunnel struct {
	n                       *netns
	nsC, nsS, nsT           string
	client, server          *helper
	ccfg                    ClientConfig
	routesBefore, fwdBefore string
}

// startTunnel creates the namespaces and starts a server and a client
// over tm with the given client routes:
//
//	client ns: swc0 (vpn-client), d0 (a veth "uplink" with the default route)
//	server ns: sws0 (vpn-server), vs0 10.200.0.1/24 ─veth─ target ns: vt0 10.200.0.2/24
func startTunnel(t testing.TB, tm testMesh, routes ...string) *tunnel {
	return startTunnelMTU(t, tm, 0, routes...)
}

// startTunnelMTU is startTunnel with the server's MTU (0: the default).
// The roles' devices have offloads unless the environment turns them off
// (offloadEnv=off); the log lines must say which.
func startTunnelMTU(t testing.TB, tm testMesh, mtu int, routes ...string) *tunnel {
	n := newNetns(t)
	nsC, nsS, nsT := n.add("c"), n.add("s"), n.add("t")
	// Target network behind the server.
	vs, vt := n.prefix+"s", n.prefix+"t" // 14 bytes: within IFNAMSIZ
	n.must("ip", "link", "add", vs, "netns", nsS, "type", "veth", "peer", "name", vt, "netns", nsT)
	n.must("ip", "-n", nsS, "addr", "add", "10.200.0.1/24", "dev", vs)
	n.must("ip", "-n", nsS, "link", "set", vs, "up")
	n.must("ip", "-n", nsT, "addr", "add", "10.200.0.2/24", "dev", vt)
	n.must("ip", "-n", nsT, "link", "set", vt, "up")
	n.must("ip", "-n", nsT, "route", "add", "10.77.0.0/24", "via", "10.200.0.1")
	// The client's "uplink": a veth pair with the default route, so
	// "everything" has a route to keep a mesh peer on.
	n.must("ip", "-n", nsC, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	n.must("ip", "-n", nsC, "addr", "add", "192.0.2.10/24", "dev", "d0")
	n.must("ip", "-n", nsC, "link", "set", "d1", "up")
	n.must("ip", "-n", nsC, "link", "set", "d0", "up")
	n.must("ip", "-n", nsC, "route", "add", "default", "via", "192.0.2.1")
	tu := &tunnel{n: n, nsC: nsC, nsS: nsS, nsT: nsT}
	tu.routesBefore = n.must("ip", "-n", nsC, "route", "show")
	tu.fwdBefore = n.must("ip", "netns", "exec", nsS, "cat", "/proc/sys/net/ipv4/ip_forward")

	scfg := DefaultServerConfig()
	scfg.NodeSocket, scfg.Tun, scfg.StateDir = tm.srvSock, "sws0", t.TempDir()
	scfg.Allow = append(scfg.Allow, tm.cliKey)
	scfg.AllowDestinations = []string{"10.200.0.0/24"} // the target network, private
	scfg.Keepalive = tstest.Scaled(2 * time.Second)    // see testServerConfig
	if mtu != 0 {
		scfg.MTU = mtu
	}
	wantOffload := `offload="on`
	if os.Getenv(offloadEnv) == "off" {
		wantOffload = `offload="off`
	}
	tu.server = n.start(nsS, "server", scfg)
	tu.server.waitOutput(t, "serving")
	if !strings.Contains(tu.server.out.String(), wantOffload) {
		t.Fatalf("server log does not say %s:\n%s", wantOffload, tu.server.out)
	}

	ccfg := DefaultClientConfig()
	ccfg.NodeSocket, ccfg.Server, ccfg.Tun = tm.cliSock, tm.srvKey, "swc0"
	ccfg.Routes = routes
	ccfg.Exclude = []string{"198.51.100.7:7901"}
	ccfg.RetryMax = time.Second
	ccfg.StatsFile = filepath.Join(t.TempDir(), "client-stats.json")
	tu.ccfg = ccfg
	tu.client = n.start(nsC, "client", ccfg)
	tu.client.waitOutput(t, "tunnel up")
	if !strings.Contains(tu.client.out.String(), wantOffload) {
		t.Fatalf("client log does not say %s:\n%s", wantOffload, tu.client.out)
	}
	return tu
}

func netnsTunnel(t *testing.T, tm testMesh) {
	tu := startTunnel(t, tm, "everything")
	n, nsC, nsS, nsT := tu.n, tu.nsC, tu.nsS, tu.nsT
	client, server, ccfg := tu.client, tu.server, tu.ccfg
	routesBefore, fwdBefore := tu.routesBefore, tu.fwdBefore

	routes := n.must("ip", "-n", nsC, "route", "show")
	for _, want := range []string{"0.0.0.0/1 dev swc0", "128.0.0.0/1 dev swc0", "198.51.100.7 via 192.0.2.1 dev d0", "10.77.0.0/24 dev swc0"} {
		if !strings.Contains(routes, want) {
			t.Errorf("client routes lack %q:\n%s", want, routes)
		}
	}
	link := n.must("ip", "-n", nsC, "link", "show", "swc0")
	if !strings.Contains(link, fmt.Sprintf("mtu %d", DefaultMTU)) {
		t.Errorf("client device: %s; want mtu %d", link, DefaultMTU)
	}

	t.Run("ping", func(t *testing.T) {
		if p, err := exec.LookPath("ping"); err == nil {
			if out, err := n.run("ip", "netns", "exec", nsC, p, "-c", "3", "-i", "0.2", "-W", "2", "10.200.0.2"); err != nil {
				t.Fatalf("ping: %v\n%s", err, out)
			}
		}
		if err := n.start(nsC, "ping", "10.200.0.2").wait(t, 15*time.Second); err != nil {
			t.Fatalf("ICMP echo from the client namespace to the target: %v", err)
		}
	})
	// The server's own pool address is the exit host: refused by the
	// default destination policy, answered "administratively prohibited".
	t.Run("refused", func(t *testing.T) {
		p, err := exec.LookPath("ping")
		if err != nil {
			t.Skip("ping not installed")
		}
		out, err := n.run("ip", "netns", "exec", nsC, p, "-c", "1", "-W", "10", "10.77.0.1")
		if err == nil || !strings.Contains(out, "Packet filtered") {
			t.Fatalf("ping the server's pool address: %v\n%s\nwant it refused with ICMP \"Packet filtered\"", err, out)
		}
	})
	// Path MTU discovery across the tunnel: the tunnel's MTU (16,342) is
	// larger than the target network's (1,500), so a packet with DF set
	// that fits the tunnel but not the target link must come back as ICMP
	// "fragmentation needed, mtu 1500" from the exit (carried back
	// through the tunnel), not vanish; after it, the client's kernel
	// knows the path MTU and a packet that fits passes.
	t.Run("pmtu", func(t *testing.T) {
		p, err := exec.LookPath("ping")
		if err != nil {
			t.Skip("ping not installed")
		}
		out, err := n.run("ip", "netns", "exec", nsC, p, "-c", "1", "-W", "10", "-M", "do", "-s", "3000", "10.200.0.2")
		if err == nil || !strings.Contains(out, "mtu = 1500") {
			t.Fatalf("ping -M do -s 3000 past the exit: %v\n%s\nwant ICMP \"Frag needed and DF set (mtu = 1500)\"", err, out)
		}
		if route := n.must("ip", "-n", nsC, "route", "get", "10.200.0.2"); !strings.Contains(route, "mtu 1500") {
			t.Errorf("client's route to the target after the ICMP answer:\n%s\nwant the learned path MTU 1500", route)
		}
		if out, err := n.run("ip", "netns", "exec", nsC, p, "-c", "1", "-W", "10", "-M", "do", "-s", "1472", "10.200.0.2"); err != nil {
			t.Fatalf("ping -M do -s 1472 (a 1,500-byte packet) past the exit: %v\n%s", err, out)
		}
	})
	// UDP written with UDP_SEGMENT: with USO the client's device reads
	// one super-packet; each datagram must arrive, and come back, intact.
	t.Run("udp gso", func(t *testing.T) {
		echo := n.start(nsT, "udpecho", "10.200.0.2:7778")
		echo.waitOutput(t, "listening")
		if err := n.start(nsC, "udpgso", "10.200.0.2:7778").wait(t, 40*time.Second); err != nil {
			t.Fatalf("UDP_SEGMENT datagrams through the tunnel: %v", err)
		}
		echo.stop(t)
	})
	t.Run("tcp", func(t *testing.T) {
		echo := n.start(nsT, "echo", "10.200.0.2:7777")
		echo.waitOutput(t, "listening")
		start := time.Now()
		if err := n.start(nsC, "tcpcheck", "10.200.0.2:7777").wait(t, 40*time.Second); err != nil {
			t.Fatalf("2 MiB TCP echo through the tunnel: %v", err)
		}
		t.Logf("2 MiB each way through the tunnel in %v (helper start included)", time.Since(start).Round(time.Millisecond))
		echo.stop(t)
	})
	// SIGTERM: the client removes its device and every route it added.
	if err := client.stop(t); err != nil {
		t.Fatalf("client exit: %v\n%s", err, client.out)
	}
	// With offloads, the kernel's TCP super-packets crossed whole.
	var sf StatsFile
	if b, err := os.ReadFile(ccfg.StatsFile); err != nil || json.Unmarshal(b, &sf) != nil || len(sf.Tunnels) != 1 {
		t.Fatalf("client stats file: %v\n%s", err, b)
	}
	st := sf.Tunnels[0]
	t.Logf("client: %d packets out in %d super-packets, %d in in %d", st.PacketsOut, st.GSOOut, st.PacketsIn, st.GSOIn)
	if on := os.Getenv(offloadEnv) != "off"; on != (st.GSOOut > 0) {
		t.Errorf("client sent %d GSO datagrams with offloads %v", st.GSOOut, on)
	}
	if out, err := n.run("ip", "-n", nsC, "link", "show", "swc0"); err == nil {
		t.Errorf("swc0 still exists after SIGTERM:\n%s", out)
	}
	if after := n.must("ip", "-n", nsC, "route", "show"); after != routesBefore {
		t.Errorf("client routes after stop:\n%s\nwant as before:\n%s", after, routesBefore)
	}

	// The node goes away: the client stops and cleans up too.
	// Another port: the node may not have released the first one yet.
	ccfg.Port++
	client = n.start(nsC, "client", ccfg)
	client.waitOutput(t, "tunnel up")
	tm.stopClientNode()
	if err := client.wait(t, 15*time.Second); err == nil || !strings.Contains(client.out.String(), appnet.ErrNodeLost.Error()) {
		t.Errorf("client after its node went away: exit %v; want an error naming %q:\n%s", err, appnet.ErrNodeLost, client.out)
	}
	if out, err := n.run("ip", "-n", nsC, "link", "show", "swc0"); err == nil {
		t.Errorf("swc0 still exists after the node went away:\n%s", out)
	}
	if after := n.must("ip", "-n", nsC, "route", "show"); after != routesBefore {
		t.Errorf("client routes after the node went away:\n%s\nwant as before:\n%s", after, routesBefore)
	}

	// The server restores forwarding and removes its device.
	if err := server.stop(t); err != nil {
		t.Fatalf("server exit: %v\n%s", err, server.out)
	}
	if out, err := n.run("ip", "-n", nsS, "link", "show", "sws0"); err == nil {
		t.Errorf("sws0 still exists after SIGTERM:\n%s", out)
	}
	if fwd := n.must("ip", "netns", "exec", nsS, "cat", "/proc/sys/net/ipv4/ip_forward"); fwd != fwdBefore {
		t.Errorf("server ip_forward %q after stop, was %q", fwd, fwdBefore)
	}
}

// TestNetnsExit checks the nftables masquerade of an exit server: the
// table exists while it runs and is gone after SIGTERM.
func TestNetnsExit(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft (nftables) not installed")
	}
	n := newNetns(t)
	nsS := n.add("s")
	mesh := fakemesh.New()
	srvNode := newMeshNode(t, mesh, tstest.KeyPair(t).Public)
	cfg := DefaultServerConfig()
	cfg.NodeSocket, cfg.Tun, cfg.StateDir, cfg.AllowAll, cfg.Exit = srvNode.path, "sws0", t.TempDir(), true, true
	server := n.start(nsS, "server", cfg)
	server.waitOutput(t, "serving")
	table := n.must("ip", "netns", "exec", nsS, "nft", "list", "table", "ip", "skywire_vpn_sws0")
	if !strings.Contains(table, "masquerade") || !strings.Contains(table, "10.77.0.0/24") {
		t.Errorf("nft table of the exit:\n%s", table)
	}
	if err := server.stop(t); err != nil {
		t.Fatalf("server exit: %v\n%s", err, server.out)
	}
	if out, err := n.run("ip", "netns", "exec", nsS, "nft", "list", "table", "ip", "skywire_vpn_sws0"); err == nil {
		t.Errorf("nft table left after stop:\n%s", out)
	}
}

// runJSONConfig makes a role with newRole from the JSON config cfg and
// runs it until ctx is done.
func runJSONConfig[C any, R interface{ Run(context.Context) error }](ctx context.Context, cfg []byte, log *slog.Logger, newRole func(C, *slog.Logger, ...Option) (R, error)) error {
	var c C
	if err := json.Unmarshal(cfg, &c); err != nil {
		return err
	}
	r, err := newRole(c, log)
	if err != nil {
		return err
	}
	return r.Run(ctx)
}
