package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/cli/rolectl"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/node"
)

// The VPN end to end, every piece a real process:
//
//	client ns            host loopback                    server ns          target ns
//	vpn-client ── a — b — c — d — e (skywire node) ── vpn-server ─ veth ─ 10.200.0.2
//	  swc0            \_______/                          sws0
//
// The nodes stay on the host's loopback as in newMesh; the two VPN roles
// run in namespaces the test creates (`ip netns exec`) and reach their
// nodes' app sockets through the file system. The client routes the
// target's prefix into the tunnel; the server forwards it to the veth.

const (
	vpnTargetNet  = "10.200.0.0/24"
	vpnServerSide = "10.200.0.1"
	vpnTarget     = "10.200.0.2"
	vpnPool       = "10.77.0.0/24"
	vpnClientTun  = "swc0"
	vpnServerTun  = "sws0"
)

// vpnNeeds skips the test, naming what is missing, unless it can create
// namespaces and TUN devices and run ping and iperf3.
func vpnNeeds(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("VPN namespace test skipped in -short mode")
	}
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (CAP_NET_ADMIN)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		missing = append(missing, "/dev/net/tun")
	}
	for _, p := range []string{"ip", "ss", "ping", "iperf3"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p+" (scripts/deps.sh installs it)")
		}
	}
	if len(missing) > 0 {
		t.Skipf("the VPN test needs %s", strings.Join(missing, ", "))
	}
}

// vpnNet is a test's namespaces and veth pair.
type vpnNet struct {
	t      *testing.T
	prefix string
	spaces []string
	veths  []string // host-namespace names that must not exist afterwards
}

func cmdOutput(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

func (n *vpnNet) must(args ...string) string {
	n.t.Helper()
	out, err := cmdOutput(args...)
	if err != nil {
		n.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// newVPNNet creates the client, server and target namespaces and the
// veth between server and target; t.Cleanup deletes them even when the
// test fails.
func newVPNNet(t *testing.T) (n *vpnNet, nsC, nsS, nsT string) {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	n = &vpnNet{t: t, prefix: "swe2e" + hex.EncodeToString(b)} // 11 bytes: room for a suffix within IFNAMSIZ
	t.Cleanup(n.remove)
	add := func(s string) string {
		name := n.prefix + "-" + s
		if out, err := cmdOutput("ip", "netns", "add", name); err != nil {
			t.Skipf("the VPN test needs `ip netns add`: %v: %s", err, out)
		}
		n.spaces = append(n.spaces, name)
		n.must("ip", "-n", name, "link", "set", "lo", "up")
		return name
	}
	nsC, nsS, nsT = add("c"), add("s"), add("t")
	vs, vt := n.prefix+"s", n.prefix+"t"
	n.veths = []string{vs, vt}
	// Created straight into the namespaces: the host never holds them.
	n.must("ip", "link", "add", vs, "netns", nsS, "type", "veth", "peer", "name", vt, "netns", nsT)
	n.must("ip", "-n", nsS, "addr", "add", vpnServerSide+"/24", "dev", vs)
	n.must("ip", "-n", nsS, "link", "set", vs, "up")
	n.must("ip", "-n", nsT, "addr", "add", vpnTarget+"/24", "dev", vt)
	n.must("ip", "-n", nsT, "link", "set", vt, "up")
	n.must("ip", "-n", nsT, "route", "add", vpnPool, "via", vpnServerSide)
	return n, nsC, nsS, nsT
}

// remove kills whatever still runs in the namespaces and deletes them.
// It runs again harmlessly after the test body removed them.
func (n *vpnNet) remove() {
	for _, ns := range n.spaces {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
			continue
		}
		if out, err := cmdOutput("ip", "netns", "pids", ns); err == nil {
			for _, f := range strings.Fields(out) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if out, err := cmdOutput("ip", "netns", "del", ns); err != nil {
			n.t.Errorf("delete netns %s: %v: %s", ns, err, out)
		}
	}
}

// vpnProc is a VPN role running in a namespace.
type vpnProc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startIn runs `skywire ROLE` with the mesh's config in namespace ns.
func (m *mesh) startIn(ns, role string) *vpnProc {
	m.t.Helper()
	p := &vpnProc{name: role, log: filepath.Join(m.dir, role+".log"), done: make(chan struct{})}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.t.Fatal(err)
	}
	defer logf.Close()
	// ip netns exec enters the namespace and execs: the pid is skywire's.
	p.cmd = exec.Command("ip", "netns", "exec", ns, skywireBin, "--config", m.config, "--log-level", "debug", role)
	p.cmd.Env = append(os.Environ(), "SKYWIRE_SIGNAL_ADDR=", "SKYWIRE_STATE_DIR=")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	m.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if m.t.Failed() {
			if b, err := os.ReadFile(p.log); err == nil {
				m.t.Logf("%s.log:\n%s", role, tail(b, 3000))
			}
		}
	})
	return p
}

func (p *vpnProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitLog waits until the role logged s.
func (p *vpnProc) waitLog(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if b, _ := os.ReadFile(p.log); strings.Contains(string(b), s) {
			return
		}
		if p.exited() {
			b, _ := os.ReadFile(p.log)
			t.Fatalf("%s exited (%v) before logging %q:\n%s", p.name, p.err, s, tail(b, 3000))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within %v", p.name, s, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *vpnProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			b, _ := os.ReadFile(p.log)
			t.Errorf("%s exited with %v after SIGTERM:\n%s", p.name, p.err, tail(b, 3000))
		}
	case <-time.After(15 * time.Second):
		t.Errorf("%s did not exit within 15 s of SIGTERM", p.name)
	}
}

// vpnStats reads `skywire vpn-client stats`.
func (m *mesh) vpnStats() (in, out uint64, err error) {
	b, err := m.cmd("vpn-client", "stats").Output()
	if err != nil {
		return 0, 0, err
	}
	var st struct {
		BytesIn  uint64 `json:"bytes_in"`
		BytesOut uint64 `json:"bytes_out"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, 0, fmt.Errorf("vpn-client stats printed %q: %w", b, err)
	}
	return st.BytesIn, st.BytesOut, nil
}

// iperfResult is the part of `iperf3 --json` the test reads.
type iperfResult struct {
	Intervals []struct {
		Sum struct {
			Start, End    float64
			Bytes         uint64
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum"`
	} `json:"intervals"`
	End struct {
		SumSent struct {
			Retransmits int `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         uint64
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// iperf runs an iperf3 client in ns against the target for secs seconds;
// during, if set, runs while it does (in the test goroutine).
func iperf(t *testing.T, ns string, secs int, during func()) iperfResult {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "iperf3", "--json", "-c", vpnTarget, "-t", strconv.Itoa(secs),
		"-i", "0.2", "--connect-timeout", "5000")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if during != nil {
		during()
	}
	err := waitCmd(t, cmd, time.Duration(secs)*time.Second+30*time.Second, fmt.Sprintf("iperf3 -t %d", secs), "; stderr ", &errb)
	var r iperfResult
	if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil || err != nil || r.Error != "" {
		t.Fatalf("iperf3 client → %s: %v (%v, %q); output:\n%s%s", vpnTarget, err, jerr, r.Error, tail(out.Bytes(), 2000), errb.String())
	}
	return r
}

// TestVPN: ping and iperf3 from a client namespace to a target behind a
// vpn-server three relays away, a relay killed mid-iperf3, and nothing
// left behind; with TUN offloads (TCP super-packets cross the mesh whole)
// and with them forced off (SKYWIRE_VPN_OFFLOAD=off).
func TestVPN(t *testing.T) {
	vpnNeeds(t)
	for _, mode := range []string{"on", "off"} {
		t.Run("offload="+mode, func(t *testing.T) {
			t.Setenv("SKYWIRE_VPN_OFFLOAD", mode)
			testVPN(t, mode)
		})
	}
}

func testVPN(t *testing.T, offload string) {
	start := time.Now()
	n, nsC, nsS, nsT := newVPNNet(t)
	m := newMeshWith(t, func(k map[string]string) string {
		return fmt.Sprintf(`[vpn_client]
node = "a"
server = %q
tun = %q
routes = [%q]
retry_max = "1s"

[vpn_server]
node = "e"
tun = %q
pool = %q
allow = [%q]
forward = true
keepalive = "1s"
allow_destinations = [%q]  # the target network is private: refused unless opened
`, k["e"], vpnClientTun, vpnTargetNet, vpnServerTun, vpnPool, k["a"], vpnTargetNet)
	})
	for _, nd := range []string{"a", "e"} {
		m.waitNode(nd)
	}
	if p := m.waitRoute("a", "e", 4); p.Hops[2].String() != m.keys["c"] {
		t.Fatalf("route a→e does not go through c: %v", p.Hops)
	}
	// The roles keep their state in the test's state directory, and
	// nowhere else: not in the root default /var/lib/skywire.
	sysBefore := dirSnapshot(sysVPNState)
	routesBefore := n.must("ip", "-n", nsC, "route", "show")
	fwdBefore := n.must("ip", "netns", "exec", nsS, "cat", "/proc/sys/net/ipv4/ip_forward")

	server := m.startIn(nsS, "vpn-server")
	server.waitLog(t, "serving", 20*time.Second)
	leases := filepath.Join(m.state, "vpn", "leases.json")
	server.waitLog(t, logAttr("leases", leases), 20*time.Second) // on the "serving" line
	client := m.startIn(nsC, "vpn-client")
	client.waitLog(t, "tunnel up", 30*time.Second)
	for _, p := range []*vpnProc{server, client} {
		p.waitLog(t, `offload="`+offload, 5*time.Second)
	}
	if routes := n.must("ip", "-n", nsC, "route", "show"); !strings.Contains(routes, vpnTargetNet+" dev "+vpnClientTun) {
		t.Fatalf("client namespace has no route to %s through %s:\n%s", vpnTargetNet, vpnClientTun, routes)
	}
	if fwd := n.must("ip", "netns", "exec", nsS, "cat", "/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(fwd) != "1" {
		t.Errorf("server namespace ip_forward = %q while vpn-server runs with forward = true", fwd)
	}
	t.Logf("mesh and tunnel up after %v", time.Since(start).Round(time.Millisecond))

	iperfSrv := exec.Command("ip", "netns", "exec", nsT, "iperf3", "-s", "-B", vpnTarget)
	if err := iperfSrv.Start(); err != nil {
		t.Fatal(err)
	}
	iperfDone := make(chan struct{})
	go func() { iperfSrv.Wait(); close(iperfDone) }()
	defer func() {
		iperfSrv.Process.Kill()
		<-iperfDone
	}()

	// ping: the first echo may race the server's first look at the
	// client; a few tries.
	var pingOut string
	var pingErr error
	for i := 0; i < 3; i++ {
		if pingOut, pingErr = cmdOutput("ip", "netns", "exec", nsC, "ping", "-c", "3", "-i", "0.2", "-W", "2", vpnTarget); pingErr == nil {
			break
		}
	}
	if pingErr != nil {
		t.Fatalf("ping %s from the client namespace across the mesh: %v\n%s", vpnTarget, pingErr, pingOut)
	}
	t.Logf("ping through three relays:\n%s", lastLines(pingOut, 2))

	// The iperf3 server may not listen yet: wait for it in its namespace.
	tstest.WaitFor(t, "iperf3 -s to listen", func() bool {
		return strings.Contains(n.must("ip", "netns", "exec", nsT, "ss", "-Htln"), vpnTarget+":5201")
	})

	r := iperf(t, nsC, 5, nil)
	if r.End.SumReceived.Bytes == 0 {
		t.Fatalf("iperf3 through the tunnel: nothing received")
	}
	t.Logf("iperf3 client → target through three relays, 5 s: %.1f Mbit/s", r.End.SumReceived.BitsPerSecond/1e6)
	if in, out, err := m.vpnStats(); err != nil || out < r.End.SumReceived.Bytes || in == 0 {
		t.Errorf("vpn-client stats after iperf3: in %d, out %d, %v; want out ≥ %d and in > 0", in, out, err, r.End.SumReceived.Bytes)
	}

	// A relay killed mid-iperf3: once traffic flows, kill -9 c; the mesh
	// repairs a→e over the detour b—d and the transfer carries on.
	var killedAt time.Duration
	const killSecs = 10
	r = iperf(t, nsC, killSecs, func() {
		t0 := time.Now()
		_, base, err := m.vpnStats()
		if err != nil {
			t.Fatalf("vpn-client stats: %v", err)
		}
		// Traffic flows (1 MiB more through the tunnel) and a few
		// intervals went by: then c dies with the session crossing it.
		for {
			_, out, err := m.vpnStats()
			if err == nil && out >= base+(1<<20) && time.Since(t0) >= 2*time.Second {
				break
			}
			if time.Since(t0) > killSecs*time.Second/2 {
				t.Fatalf("no traffic through the tunnel in %v of iperf3", time.Since(t0))
			}
			time.Sleep(50 * time.Millisecond)
		}
		var rs []node.RouteInfo
		if err := rolectl.Get(context.Background(), m.ctl("c"), "/routes", &rs); err != nil || len(rs) == 0 {
			t.Errorf("relay c has no forwarding rule (%v): the tunnel does not cross it", err)
		}
		killedAt = time.Since(t0)
		m.kill("c", syscall.SIGKILL)
	})
	if p := m.waitRoute("a", "e", 3); p.Hops[2].String() != m.keys["d"] {
		t.Errorf("after c died the route is %v, want a-b-d-e", p.Hops)
	}
	// The intervals after the kill: traffic must resume and be flowing
	// at the end.
	// (iperf3's clock starts a little after t0: the kill falls within
	// the interval that starts at or just before killedAt.)
	var before, after uint64
	var stalled, longest float64 // zero-byte intervals after the kill
	for _, iv := range r.Intervals {
		if iv.Sum.End <= killedAt.Seconds() {
			before += iv.Sum.Bytes
			continue
		}
		after += iv.Sum.Bytes
		if iv.Sum.Bytes == 0 {
			stalled += iv.Sum.End - iv.Sum.Start
			longest = max(longest, stalled)
		} else {
			stalled = 0
		}
	}
	if len(r.Intervals) == 0 || before == 0 || after == 0 || r.Intervals[len(r.Intervals)-1].Sum.Bytes == 0 {
		t.Fatalf("traffic did not resume after c was killed at %.1f s: %d bytes before, %d after; intervals %+v", killedAt.Seconds(), before, after, r.Intervals)
	}
	t.Logf("iperf3 with c killed at %.1f s of %d: %.1f Mbit/s overall, %d MB before the kill, %d MB after, longest stall %.1f s, %d TCP retransmits, last interval %.1f Mbit/s",
		killedAt.Seconds(), killSecs, r.End.SumReceived.BitsPerSecond/1e6, before>>20, after>>20, longest, r.End.SumSent.Retransmits, r.Intervals[len(r.Intervals)-1].Sum.BitsPerSecond/1e6)
	if out, err := cmdOutput("ip", "netns", "exec", nsC, "ping", "-c", "2", "-i", "0.2", "-W", "2", vpnTarget); err != nil {
		t.Errorf("ping over the detour: %v\n%s", err, out)
	}

	// Stop everything: the roles on SIGTERM remove their devices and
	// routes and restore forwarding.
	iperfSrv.Process.Kill()
	<-iperfDone
	client.stop(t)
	server.stop(t)
	if out, err := cmdOutput("ip", "-n", nsC, "link", "show", vpnClientTun); err == nil {
		t.Errorf("%s still exists after vpn-client stopped:\n%s", vpnClientTun, out)
	}
	if after := n.must("ip", "-n", nsC, "route", "show"); after != routesBefore {
		t.Errorf("client namespace routes after vpn-client stopped:\n%s\nwant as before:\n%s", after, routesBefore)
	}
	if out, err := cmdOutput("ip", "-n", nsS, "link", "show", vpnServerTun); err == nil {
		t.Errorf("%s still exists after vpn-server stopped:\n%s", vpnServerTun, out)
	}
	if fwd := n.must("ip", "netns", "exec", nsS, "cat", "/proc/sys/net/ipv4/ip_forward"); fwd != fwdBefore {
		t.Errorf("server namespace ip_forward %q after stop, was %q", fwd, fwdBefore)
	}
	if b, err := os.ReadFile(leases); err != nil || !strings.Contains(string(b), m.keys["a"]) {
		t.Errorf("vpn-server's leases in the state directory: %v %s; want the client's lease", err, b)
	}
	if after := dirSnapshot(sysVPNState); !maps.Equal(after, sysBefore) {
		t.Errorf("%s changed while the test ran (its state must stay in %s): before %v, after %v", sysVPNState, m.state, sysBefore, after)
	}
	for _, ns := range n.spaces {
		if pids := strings.TrimSpace(n.must("ip", "netns", "pids", ns)); pids != "" {
			t.Errorf("processes left in namespace %s: %s", ns, pids)
		}
	}
	n.remove()
	n.spaces = nil
	if list := n.must("ip", "netns", "list"); strings.Contains(list, n.prefix) {
		t.Errorf("namespaces left behind:\n%s", list)
	}
	links := n.must("ip", "-o", "link", "show")
	for _, dev := range append([]string{vpnClientTun, vpnServerTun}, n.veths...) {
		if strings.Contains(links, " "+dev+":") || strings.Contains(links, " "+dev+"@") {
			t.Errorf("device %s left in the host namespace:\n%s", dev, links)
		}
	}
	if routes := n.must("ip", "route", "show"); strings.Contains(routes, vpnTargetNet) || strings.Contains(routes, vpnPool) {
		t.Errorf("host routes mention the test's prefixes:\n%s", routes)
	}
	if left := procsWith(m.config, "vpn-"); len(left) > 0 {
		t.Errorf("VPN processes left running: %v", left)
	}
	t.Logf("whole test %v", time.Since(start).Round(time.Millisecond))
}

// sysVPNState is where vpn-server kept its leases whatever the state
// directory, before the roles' state-dir rules applied to it.
const sysVPNState = "/var/lib/skywire/vpn"

// dirSnapshot maps each entry of dir to its size, mode, inode and
// modification time (nil if dir cannot be read): two snapshots differ if a
// file was added, removed or rewritten.
func dirSnapshot(dir string) map[string]string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	snap := map[string]string{}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		var ino uint64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		snap[e.Name()] = fmt.Sprintf("%d %v %d %v", fi.Size(), fi.Mode(), ino, fi.ModTime().UnixNano())
	}
	return snap
}

// procsWith lists the processes whose command line contains every one
// of the strings.
func procsWith(subs ...string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || zombie(pid) {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		all := true
		for _, s := range subs {
			all = all && strings.Contains(cmdline, s)
		}
		if all {
			out = append(out, fmt.Sprintf("%d: %s", pid, cmdline))
		}
	}
	return out
}

func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(strings.TrimSpace(s)))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestVPNNeedsRoot: without CAP_NET_ADMIN (as root: with the capability
// dropped from the bounding set by setpriv; as another user: as is), both
// VPN roles exit at once saying they need root for the TUN device — not a
// permission error on a state file, not a retry loop.
func TestVPNNeedsRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode")
	}
	var wrap []string
	if os.Geteuid() == 0 {
		p, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("as root this test needs setpriv (util-linux) to drop CAP_NET_ADMIN")
		}
		wrap = []string{p, "--bounding-set", "-net_admin"}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "skywire.toml")
	err := os.WriteFile(cfg, []byte(fmt.Sprintf(`[viscript]
state_dir = %q

[vpn_server]
allow_all = true

[vpn_client]
server = %q
`, filepath.Join(dir, "state"), tstest.KeyPair(t).Public)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"vpn-server", "vpn-client"} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		args := append(append([]string{}, wrap...), skywireBin, "--config", cfg, role)
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "SKYWIRE_STATE_DIR=", "SKYWIRE_SIGNAL_ADDR=", "SKYWIRE_NODE_SOCKET=")
		out, err := cmd.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut {
			t.Fatalf("%s without CAP_NET_ADMIN did not exit within 60 s:\n%s", role, out)
		}
		const want = "needs root (CAP_NET_ADMIN) for the TUN device"
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("%s without CAP_NET_ADMIN: %v\n%s\nwant a failure saying %q", role, err, out, want)
		}
	}
	// The check comes first: no state directory, no control socket.
	if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
		t.Errorf("the roles made their state directory before finding they cannot run")
	}
}

// logAttr is key=value as the roles' text logs write it (slog quotes a
// value with spaces or '=', which a subtest's temp dir name can have).
func logAttr(key, value string) string {
	var b strings.Builder
	h := slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey {
			return slog.Attr{}
		}
		return a
	}})
	slog.New(h).Info("", key, value)
	return strings.TrimSpace(b.String())
}
