//go:build linux

package vpn

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

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
// to the target through the VPN over a mesh with one relay, against the
// same namespaces routed by the kernel without skywire:
//
//	tunnel: client ns ─swc0─ mesh (3 nodes) ─ sws0─ server ns ─veth─ target ns  (10.200.0.2)
//	plain:  client ns ─────────veth───────────────── server ns ─veth─ target ns  (10.202.0.2)
func BenchmarkNetnsIperf3(b *testing.B) {
	needRoot(b)
	iperf, err := exec.LookPath("iperf3")
	if err != nil {
		b.Skip("iperf3 not installed (scripts/deps.sh installs it)")
	}
	tu := startTunnel(b, relayMesh(b, 1), "10.200.0.0/24")
	tu.addPlainPath(b)
	srv := exec.Command("ip", "netns", "exec", tu.nsT, iperf, "-s")
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	b.ResetTimer()
	var tunnel, plain float64
	for range b.N {
		tunnel += tu.iperf3(b, iperf, "10.200.0.2")
		plain += tu.iperf3(b, iperf, "10.202.0.2")
	}
	b.ReportMetric(tunnel/float64(b.N), "tunnel-Mbit/s")
	b.ReportMetric(plain/float64(b.N), "plain-Mbit/s")
	b.ReportMetric(100*tunnel/plain, "%-of-plain")
}

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

// iperf3 runs a 3-second iperf3 TCP test from the client namespace to dst
// and returns what the receiver got, in Mbit/s.
func (tu *tunnel) iperf3(tb testing.TB, iperf, dst string) float64 {
	var out string
	var err error
	for range 20 { // until the server listens
		if out, err = tu.n.run("ip", "netns", "exec", tu.nsC, iperf, "-c", dst, "-t", "3", "-J"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("iperf3 to %s: %v\n%s", dst, err, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.End.SumReceived.BitsPerSecond == 0 {
		tb.Fatalf("iperf3 to %s: no result (%v) in:\n%s", dst, err, out)
	}
	mbps := r.End.SumReceived.BitsPerSecond / 1e6
	tb.Logf("iperf3 → %s: %.0f Mbit/s, %d retransmissions", dst, mbps, r.End.SumSent.Retransmits)
	return mbps
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
