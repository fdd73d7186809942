//go:build linux

package vpn

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
)

// The VPN figures, measured as root in namespaces the benchmarks
// create (make bench runs them; without root they skip):
//
//	go test -run '^$' -bench Netns ./apps/vpn
//
// The mesh is real nodes linked over loopback TCP in the benchmark's
// process; vpn-client and vpn-server are processes in their namespaces.
// On a 2-core machine everything (three nodes, both roles, iperf3 at both
// ends and the kernel's forwarding) shares the same two cores.

// BenchmarkNetnsIperf3 is iperf3 TCP throughput from the client namespace
// to the target through the VPN over meshes with 0, 1 and 3 relays, with
// TUN offloads on and forced off, at tunnel MTU 1500 and at the default
// MTU, against the same namespaces routed by the kernel without skywire,
// interleaved in the same run:
//
//	tunnel: client ns ─swc0─ mesh (relays+2 nodes) ─ sws0─ server ns ─veth─ target ns  (10.200.0.2)
//	plain:  client ns ─────────────veth───────────────── server ns ─veth─ target ns  (10.202.0.2)
//
// Besides Mbit/s it reports inner-TCP retransmissions per 100 segments
// sent (retrans-%) and the CPU time of skywire (the nodes and both roles,
// not iperf3 or the kernel's forwarding) per Gbit/s moved
// (skywire-cpu-s/Gbit: CPU-seconds per gigabit), split into the nodes'
// (this process: the benchmark's own share is idle while iperf3 runs) and
// the two roles' (nodes-cpu-s/Gbit, roles-cpu-s/Gbit).
func BenchmarkNetnsIperf3(b *testing.B) {
	for _, relays := range []int{0, 1, 3} {
		for _, mode := range []string{"on", "off"} {
			for _, mtu := range []int{benchMTU, DefaultMTU} {
				b.Run(fmt.Sprintf("relays=%d/offload=%s/mtu=%d", relays, mode, mtu), func(b *testing.B) {
					b.Setenv(offloadEnv, mode)
					benchIperf3(b, relays, mtu)
				})
			}
		}
	}
}

// benchIperf3 is one BenchmarkNetnsIperf3 case: b.N iperf3 runs through
// the tunnel, each followed by one over the plain path.
func benchIperf3(b *testing.B, relays, mtu int) {
	tu, iperf := iperfTunnel(b, relays, mtu)
	nodes := []int{os.Getpid()}
	roles := []int{tu.client.cmd.Process.Pid, tu.server.cmd.Process.Pid}
	b.ResetTimer()
	var tunnel, plain, nodeCPU, roleCPU float64
	var retrans, segs int
	for range b.N {
		n0, r0 := cpuSeconds(b, nodes), cpuSeconds(b, roles)
		r := tu.iperf3(b, iperf, "10.200.0.2")
		nodeCPU += cpuSeconds(b, nodes) - n0
		roleCPU += cpuSeconds(b, roles) - r0
		tunnel += r.mbps
		retrans += r.retrans
		segs += r.segments
		plain += tu.iperf3(b, iperf, "10.202.0.2").mbps
	}
	tu.report(b, tunnel, "tunnel-Mbit/s", plain, "plain-Mbit/s")
	b.ReportMetric(100*float64(retrans)/float64(max(segs, 1)), "retrans-%")
	gbits := tunnel / 1000 * iperfSeconds
	b.ReportMetric((nodeCPU+roleCPU)/gbits, "skywire-cpu-s/Gbit")
	b.ReportMetric(nodeCPU/gbits, "nodes-cpu-s/Gbit")
	b.ReportMetric(roleCPU/gbits, "roles-cpu-s/Gbit")
}

// BenchmarkNetnsIperf3UDP is the UDP rate through the VPN (tunnel MTU
// 1500, offloads as the environment says) that loses under 1% of the
// datagrams, over meshes with 0, 1 and 3 relays, against the same search
// over the plain path in the same run. The search doubles the offered
// rate from 10 Mbit/s until 1% or more is lost, then halves the interval
// between the last rate that held and the first that did not four times;
// the figure is what the receiver got at the best rate that held.
// Datagrams carry 1,400 bytes (1,428 on the wire: no fragments at 1500).
func BenchmarkNetnsIperf3UDP(b *testing.B) {
	for _, relays := range []int{0, 1, 3} {
		b.Run(fmt.Sprintf("relays=%d", relays), func(b *testing.B) {
			tu, iperf := iperfTunnel(b, relays, benchMTU)
			b.ResetTimer()
			var tunnel, plain float64
			for range b.N {
				tunnel += tu.udpRate(b, iperf, "10.200.0.2")
				plain += tu.udpRate(b, iperf, "10.202.0.2")
			}
			tu.report(b, tunnel, "udp-Mbit/s", plain, "plain-udp-Mbit/s")
		})
	}
}

// report ends an iperf3 benchmark of the tunnel against the plain path:
// it stops the timer and both roles (stopped, not killed: a profiled
// helper, SKYWIRE_VPN_TEST_CPUPROFILE, writes its profile), then reports
// the mean of tunnel and of plain (sums over b.N runs) in their units and
// the tunnel's as a percentage of the plain path's.
func (tu *tunnel) report(b *testing.B, tunnel float64, tunnelUnit string, plain float64, plainUnit string) {
	b.StopTimer()
	tu.client.stop(b)
	tu.server.stop(b)
	b.ReportMetric(tunnel/float64(b.N), tunnelUnit)
	b.ReportMetric(plain/float64(b.N), plainUnit)
	b.ReportMetric(100*tunnel/plain, "%-of-plain")
}

// iperfTunnel is the benchmarks' set-up: a tunnel at tunnel MTU mtu over
// a mesh with relays relays, the plain path beside it, and an iperf3 server in
// the target namespace, listening. It returns the iperf3 binary.
func iperfTunnel(b *testing.B, relays, mtu int) (*tunnel, string) {
	needRoot(b)
	iperf, err := exec.LookPath("iperf3")
	if err != nil {
		b.Skip("iperf3 not installed (scripts/deps.sh installs it)")
	}
	tu := startTunnelMTU(b, relayMesh(b, relays), mtu, "10.200.0.0/24")
	tu.addPlainPath(b)
	srv := exec.Command("ip", "netns", "exec", tu.nsT, iperf, "-s")
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	tu.waitListening(b, tu.nsT, 5201)
	return tu, iperf
}

// udpRate searches the highest offered UDP rate to dst that loses under
// 1% (BenchmarkNetnsIperf3UDP) and returns what the receiver got at it,
// in Mbit/s (0 if even 10 Mbit/s lost more).
func (tu *tunnel) udpRate(tb testing.TB, iperf, dst string) float64 {
	const maxLoss, ceiling = 1.0, 20000
	good, bad := 0.0, 0.0
	var got float64
	for rate := 10.0; rate <= ceiling; rate *= 2 {
		recv, lost := tu.iperf3UDP(tb, iperf, dst, rate)
		if lost >= maxLoss {
			bad = rate
			break
		}
		good, got = rate, recv
	}
	if bad == 0 || good == 0 {
		return got
	}
	for range 4 {
		rate := (good + bad) / 2
		if recv, lost := tu.iperf3UDP(tb, iperf, dst, rate); lost < maxLoss {
			good, got = rate, recv
		} else {
			bad = rate
		}
	}
	tb.Logf("udp → %s: %.0f Mbit/s offered held under %.0f%% loss", dst, good, maxLoss)
	return got
}

// iperf3UDP offers rate Mbit/s of 1,400-byte UDP datagrams from the
// client namespace to dst for 2 s and returns the received Mbit/s and
// the percentage lost.
func (tu *tunnel) iperf3UDP(tb testing.TB, iperf, dst string, rate float64) (mbps, lost float64) {
	r := tu.runIperf3(tb, iperf, dst, func(r *iperf3JSON) bool { return r.End.SumReceived.Packets > 0 },
		"-u", "-l", "1400", "-t", "2", "-b", fmt.Sprintf("%.0fM", rate))
	return r.End.SumReceived.BitsPerSecond / 1e6, r.End.SumReceived.LostPercent
}

// benchMTU is the tunnel MTU the throughput benchmarks measure first:
// the common Internet MTU, so that the figures compare with other VPNs'.
const benchMTU = 1500

// BenchmarkNetnsRTT is the ping round trip from the client namespace to the
// target through the VPN over meshes with no relay and with one, and over
// the plain path: relays=1 minus relays=0 is what a relay adds.
func BenchmarkNetnsRTT(b *testing.B) {
	for _, relays := range []int{0, 1} {
		b.Run(fmt.Sprintf("relays=%d", relays), func(b *testing.B) {
			needRoot(b)
			ping := needPing(b)
			tu := startTunnel(b, relayMesh(b, relays), "10.200.0.0/24")
			b.ResetTimer()
			var sum float64
			for range b.N {
				sum += tu.pingAvg(b, ping, "10.200.0.2")
			}
			b.ReportMetric(sum/float64(b.N), "rtt-µs")
		})
	}
	b.Run("plain", func(b *testing.B) {
		needRoot(b)
		ping := needPing(b)
		tu := startTunnel(b, relayMesh(b, 0), "10.200.0.0/24")
		tu.addPlainPath(b)
		b.ResetTimer()
		var sum float64
		for range b.N {
			sum += tu.pingAvg(b, ping, "10.202.0.2")
		}
		b.ReportMetric(sum/float64(b.N), "rtt-µs")
	})
}

// relayMesh is a line of relays+2 nodes over loopback TCP; the server's
// node is at one end, the client's at the other.
func relayMesh(tb testing.TB, relays int) testMesh {
	nodes := relays + 2
	m := meshtest.New(tb, meshtest.Options{Nodes: nodes, Links: meshtest.Line(nodes), TCP: true})
	m.WaitReady()
	tb.Cleanup(func() {
		for _, i := range []int{0, nodes - 1} {
			for _, si := range m.Nodes[i].Sessions() {
				tb.Logf("node %d session: %d datagrams dropped (queue full), %d packets received", i, si.Stats.DatagramsDropped, si.Stats.PacketsReceived)
			}
		}
	})
	srvSock, _ := serveApps(tb, m, 0)
	cliSock, stop := serveApps(tb, m, nodes-1)
	return testMesh{srvSock, cliSock, m.Nodes[0].Keys.Public, m.Nodes[nodes-1].Keys.Public, stop}
}

// addPlainPath links the client namespace to the server's with a veth
// (10.201.0.0/24) and gives the target a second address, 10.202.0.2, that
// the client reaches over it: the tunnel's path, routed by the kernel.
func (tu *tunnel) addPlainPath(tb testing.TB) {
	n := tu.n
	vc, vs := n.prefix+"a", n.prefix+"b"
	n.must("ip", "link", "add", vc, "netns", tu.nsC, "type", "veth", "peer", "name", vs, "netns", tu.nsS)
	n.must("ip", "-n", tu.nsC, "addr", "add", "10.201.0.2/24", "dev", vc)
	n.must("ip", "-n", tu.nsC, "link", "set", vc, "up")
	n.must("ip", "-n", tu.nsS, "addr", "add", "10.201.0.1/24", "dev", vs)
	n.must("ip", "-n", tu.nsS, "link", "set", vs, "up")
	n.must("ip", "-n", tu.nsS, "addr", "add", "10.202.0.1/24", "dev", n.prefix+"s")
	n.must("ip", "-n", tu.nsT, "addr", "add", "10.202.0.2/24", "dev", n.prefix+"t")
	n.must("ip", "-n", tu.nsC, "route", "add", "10.202.0.0/24", "via", "10.201.0.1")
	n.must("ip", "-n", tu.nsT, "route", "add", "10.201.0.0/24", "via", "10.202.0.1")
	// The vpn-server turned forwarding on in its namespace; check, since
	// the plain path needs it too.
	if fwd := n.must("ip", "netns", "exec", tu.nsS, "cat", "/proc/sys/net/ipv4/ip_forward"); fwd != "1\n" {
		tb.Fatalf("server namespace forwards no packets (ip_forward %q)", fwd)
	}
}

// iperfSeconds is how long each iperf3 run sends.
const iperfSeconds = 3

// iperfResult is what one iperf3 run measured.
type iperfResult struct {
	mbps     float64 // what the receiver got
	retrans  int     // TCP retransmissions at the sender
	segments int     // segments sent, estimated as bytes / MSS
}

// iperf3 runs an iperf3 TCP test of iperfSeconds from the client
// namespace to dst (whose server listens: waitListening).
func (tu *tunnel) iperf3(tb testing.TB, iperf, dst string) iperfResult {
	r := tu.runIperf3(tb, iperf, dst, func(r *iperf3JSON) bool { return r.End.SumReceived.BitsPerSecond > 0 },
		"-t", strconv.Itoa(iperfSeconds))
	mss := cmp.Or(r.Start.TCPMSS, 1448)
	res := iperfResult{
		mbps:     r.End.SumReceived.BitsPerSecond / 1e6,
		retrans:  r.End.SumSent.Retransmits,
		segments: int(r.End.SumSent.Bytes / int64(mss)),
	}
	tb.Logf("iperf3 → %s: %.0f Mbit/s, %d retransmissions in ≈%d segments", dst, res.mbps, res.retrans, res.segments)
	return res
}

// iperf3JSON is what the benchmarks read of iperf3's JSON report.
type iperf3JSON struct {
	Start struct {
		TCPMSS int `json:"tcp_mss_default"`
	} `json:"start"`
	End struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			LostPercent   float64 `json:"lost_percent"` // UDP
			Packets       int     `json:"packets"`      // UDP
		} `json:"sum_received"`
		SumSent struct {
			Bytes       int64 `json:"bytes"`
			Retransmits int   `json:"retransmits"` // TCP
		} `json:"sum_sent"`
	} `json:"end"`
}

// runIperf3 runs iperf3 -c dst with args from the client namespace and
// returns its JSON report, failing the benchmark (showing iperf3's
// output) if iperf3 fails or valid says the report has no result.
func (tu *tunnel) runIperf3(tb testing.TB, iperf, dst string, valid func(*iperf3JSON) bool, args ...string) iperf3JSON {
	tb.Helper()
	argv := append([]string{"ip", "netns", "exec", tu.nsC, iperf, "-c", dst}, args...)
	out, err := tu.n.run(append(argv, "-J")...)
	if err != nil {
		tb.Fatalf("iperf3 %s to %s: %v\n%s", strings.Join(args, " "), dst, err, out)
	}
	var r iperf3JSON
	if err := json.Unmarshal([]byte(out), &r); err != nil || !valid(&r) {
		tb.Fatalf("iperf3 %s to %s: no result (%v) in:\n%s", strings.Join(args, " "), dst, err, out)
	}
	return r
}

// waitListening waits until a TCP socket listens on port in namespace ns
// (a server that has just started: readiness, not a retry count).
func (tu *tunnel) waitListening(tb testing.TB, ns string, port int) {
	tstest.WaitForWithin(tb, time.Minute, fmt.Sprintf("a listener on port %d in %s", port, ns), func() bool {
		out, err := tu.n.run("ip", "netns", "exec", ns, "ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		return err == nil && strings.TrimSpace(out) != ""
	})
}

// cpuSeconds is the user and system CPU time the processes pids have
// used so far (/proc/PID/stat; clock ticks of 1/100 s).
func cpuSeconds(tb testing.TB, pids []int) float64 {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			tb.Fatal(err)
		}
		// Fields after the command name (which may hold spaces), from
		// field 3: utime and stime are fields 14 and 15.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		for _, i := range []int{14 - 3, 15 - 3} {
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				tb.Fatalf("/proc/%d/stat field %d: %v", pid, i+3, err)
			}
			ticks += v
		}
	}
	return float64(ticks) / 100
}

var pingAvg = regexp.MustCompile(`= [0-9.]+/([0-9.]+)/`)

// pingAvg sends 200 pings 5 ms apart from the client namespace to dst and
// returns the average round trip in µs.
func (tu *tunnel) pingAvg(tb testing.TB, ping, dst string) float64 {
	out, err := tu.n.run("ip", "netns", "exec", tu.nsC, ping, "-q", "-c", "200", "-i", "0.005", "-W", "1", dst)
	m := pingAvg.FindStringSubmatch(out)
	if err != nil || m == nil {
		tb.Fatalf("ping %s: %v\n%s", dst, err, out)
	}
	ms, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		tb.Fatal(err)
	}
	return ms * 1000
}

func needPing(tb testing.TB) string {
	p, err := exec.LookPath("ping")
	if err != nil {
		tb.Skip("ping (iputils-ping) not installed (scripts/deps.sh installs it)")
	}
	return p
}
