package vpn

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/apps/vpn/tuntest"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/node/nodeapp"
)

// serveApps starts an app server for node i of m on a unix socket; stop
// (also a cleanup) closes it.
func serveApps(t testing.TB, m *meshtest.Mesh, i int) (path string, stop func()) {
	t.Helper()
	_, path, stop = fakemesh.ServeApps(t, nodeapp.Mesh(m.Nodes[i].Node), nil)
	return path, stop
}

// tunnelOver runs a server on node srvNode of m and a client on node
// cliNode once the mesh is ready, and waits until the client's tunnel is
// up.
func tunnelOver(t testing.TB, m *meshtest.Mesh, srvNode, cliNode int) (*Server, *run, *Client, *run) {
	t.Helper()
	m.WaitReady()
	srvPath, _ := serveApps(t, m, srvNode)
	cliPath, _ := serveApps(t, m, cliNode)
	srv, sr := startServer(t, testServerConfig(t, srvPath), "server")
	cli, cr := startClient(t, testClientConfig(cliPath, m.Nodes[srvNode].Keys.Public), "client", nil)
	waitReady(t, cli, cr)
	return srv, sr, cli, cr
}

// TestOverRealMesh runs the tunnel over real nodes with a relay between
// them, and checks the size arithmetic: packets of DefaultMTU and of
// maxDatagram bytes cross, one byte more is dropped by the node's session.
func TestOverRealMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node mesh")
	}
	tstest.CheckLeaks(t)
	m := meshtest.New(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3)})
	_, sr, _, cr := tunnelOver(t, m, 0, 2)

	ca, target := addr("10.77.0.2"), addr("10.99.0.5")
	sized := func(src, dst [4]byte, size int, fill byte) []byte {
		return tuntest.IPv4(addrFrom(src), addrFrom(dst), 17, bytes.Repeat([]byte{fill}, size-20))
	}
	for _, dir := range []struct {
		name     string
		from, to *tuntest.Device
		src, dst [4]byte
	}{
		{"client to target", cr.dev, sr.dev, ca.As4(), target.As4()},
		{"target to client", sr.dev, cr.dev, target.As4(), ca.As4()},
	} {
		t.Run(dir.name, func(t *testing.T) {
			for _, p := range [][]byte{sized(dir.src, dir.dst, 84, 1), sized(dir.src, dir.dst, DefaultMTU, 2), sized(dir.src, dir.dst, maxDatagram, 2)} {
				dir.from.Inject(p)
				if got := recv(t, dir.to); !bytes.Equal(got, p) {
					t.Fatalf("sent %d bytes, received %d", len(p), len(got))
				}
			}
			// One byte more does not fit in a session packet: the node
			// drops it, and the next packet is what arrives.
			dir.from.Inject(sized(dir.src, dir.dst, maxDatagram+1, 3))
			small := sized(dir.src, dir.dst, 60, 4)
			dir.from.Inject(small)
			if got := recv(t, dir.to); !bytes.Equal(got, small) {
				t.Fatalf("after an oversized packet received %d bytes, want the %d-byte packet after it", len(got), len(small))
			}
		})
	}
}

func addrFrom(b [4]byte) netip.Addr { return netip.AddrFrom4(b) }

// TestRelayDiesTrafficResumes: the relay under the tunnel dies; the mesh
// repairs the route onto a detour and packets flow again, both ways,
// without the client reconfiguring anything.
func TestRelayDiesTrafficResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-node mesh")
	}
	tstest.CheckLeaks(t)
	// 0-1-3 is the short path, 0-2-3 the detour.
	links := [][2]int{{0, 1}, {1, 3}, {0, 2}, {2, 3}}
	rtt := func(a, b int) time.Duration {
		if a == 2 || b == 2 {
			return 5 * time.Millisecond
		}
		return time.Millisecond
	}
	m := meshtest.New(t, meshtest.Options{Nodes: 4, Links: links, RTT: rtt})
	_, sr, _, cr := tunnelOver(t, m, 0, 3)

	up := tuntest.IPv4(addr("10.77.0.2"), addr("10.99.0.5"), 17, []byte("up"))
	down := tuntest.IPv4(addr("10.99.0.5"), addr("10.77.0.2"), 17, []byte("down"))
	// flows sends p from one device until it arrives at the other.
	flows := func(what string, from, to *tuntest.Device, p []byte) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			from.Inject(p)
			select {
			case got := <-to.Written():
				if !bytes.Equal(got, p) {
					t.Fatalf("%s: got %x, want %x", what, got, p)
				}
				return
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no packet through in 20s", what)
			}
		}
	}
	flows("before", cr.dev, sr.dev, up)
	sessions := m.Nodes[3].Sessions()
	if len(sessions) != 1 {
		t.Fatalf("client node has %d sessions, want 1", len(sessions))
	}
	if got := m.Path(sessions[0].Hops); !slices.Equal(got, []int{3, 1, 0}) {
		t.Fatalf("initial path %v, want [3 1 0]", got)
	}
	m.StopNode(1)
	flows("after the relay died, client to server", cr.dev, sr.dev, up)
	flows("after the relay died, server to client", sr.dev, cr.dev, down)
	if got := m.Path(m.Nodes[3].Sessions()[0].Hops); !slices.Equal(got, []int{3, 2, 0}) {
		t.Errorf("path after repair %v, want the detour [3 2 0]", got)
	}
}

// TestOverRealMeshGSO sends TCP super-packets from a client device with
// offloads over real nodes with a relay: one that fits in a datagram
// arrives as one GSO write; one that does not (65,535 bytes) as two; at
// a server device without offloads, as plain segments. To a server that
// did not say "gso" (an older one) the client sends plain segments, which
// a server with offloads coalesces again. Either way the kernel would
// deliver exactly the segments the sender's TSO meant.
func TestOverRealMeshGSO(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node mesh")
	}
	for _, tc := range []struct {
		serverOffloads, oldServer bool
	}{{true, false}, {false, false}, {true, true}} {
		serverOffloads := tc.serverOffloads
		t.Run(fmt.Sprintf("server offloads %v, old server %v", serverOffloads, tc.oldServer), func(t *testing.T) {
			tstest.CheckLeaks(t)
			offloadDevs[DefaultClientTun], offloadDevs[DefaultServerTun] = true, serverOffloads
			t.Cleanup(func() { clear(offloadDevs) })
			m := meshtest.New(t, meshtest.Options{Nodes: 3, Links: meshtest.Line(3)})
			srv, sr, cli, cr := tunnelOver(t, m, 0, 2)
			if !cli.serverGSO.Load() {
				t.Fatal("the server did not say gso in its assign")
			}
			wantGSO := uint64(2) // 40 segments in one; 46 as 45 and one plain
			if tc.oldServer {
				cli.serverGSO.Store(false)
				wantGSO = 0
			}
			const mss = 1448
			for _, c := range []struct {
				payload, writes int // writes at a server with offloads
			}{{40 * mss, 1}, {65535 - 40, 2}} {
				payload := pattern(c.payload)
				super := mkTCP(tcpSpec{id: 77, seq: 5000, flags: tcpACK | tcpPSH, payload: payload})
				copy(super[12:16], addr("10.77.0.2").AsSlice())
				copy(super[16:20], addr("10.99.0.5").AsSlice())
				p, _ := parseTCP(super)
				want := segmentsOf(false, nil, 77, 5000, payload, mss, true)
				for _, w := range want {
					copy(w[12:20], super[12:20])
					setIPv4Checksum(w[:20])
					setTCPChecksum(w, p, false)
				}
				cr.dev.Inject(vnet(virtioHdr{flags: virtioFlagNeedsCsum, gsoType: virtioGSOTCPv4, gsoSize: mss,
					hdrLen: uint16(p.hdrLen()), csumStart: 20, csumOffset: 16}, partial(super)))
				var got [][]byte
				var writes [][]byte
				for len(got) < len(want) {
					var b []byte
					select {
					case b = <-sr.dev.Written():
					case <-time.After(tstest.Scaled(time.Minute)):
						t.Fatalf("%d-byte payload: %d of %d segments arrived", c.payload, len(got), len(want))
					}
					if !serverOffloads {
						got = append(got, b)
						continue
					}
					writes = append(writes, b)
					got = append(got, kernelSegments(t, [][]byte{b})...)
				}
				sameSequence(t, got, want)
				if serverOffloads && !tc.oldServer && len(writes) != c.writes {
					t.Errorf("%d-byte payload: %d writes at the server, want %d", c.payload, len(writes), c.writes)
				}
			}
			if st := cli.Stats(); st.GSOOut != wantGSO || st.PacketsOut != 40+46 {
				t.Errorf("client sent %d packets in %d GSO datagrams, want 86 in %d", st.PacketsOut, st.GSOOut, wantGSO)
			}
			// The server counts a packet after its write returns.
			tstest.WaitFor(t, "server stats: all GSO datagrams and 86 packets in", func() bool {
				st := srv.Stats()
				return len(st) == 1 && st[0].GSOIn == wantGSO && st[0].PacketsIn == 40+46
			})
		})
	}
}
