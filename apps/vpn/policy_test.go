package vpn

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/apps/vpn/tuntest"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// udp is a UDP payload to port (source port 40000) with data.
func udp(port uint16, data string) []byte {
	b := binary.BigEndian.AppendUint16(nil, 40000)
	b = binary.BigEndian.AppendUint16(b, port)
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(data)))
	b = append(b, 0, 0)
	return append(b, data...)
}

// TestDestinationPolicy: by default vpn-server drops (and counts) a
// client's packets to the exit host's loopback, its own pool address
// and private networks, and forwards them when allow_destinations opens
// them; deny_destinations wins; client-to-client traffic in the pool is
// forwarded as before.
func TestDestinationPolicy(t *testing.T) {
	refused := [][]byte{
		tuntest.IPv4(addr("10.77.0.2"), addr("127.0.0.1"), 17, udp(8080, "loopback")),
		tuntest.IPv4(addr("10.77.0.2"), addr("10.77.0.1"), 17, udp(22, "the server's own pool address")),
		tuntest.IPv4(addr("10.77.0.2"), addr("10.77.0.255"), 17, udp(53, "the pool's broadcast")),
		tuntest.IPv4(addr("10.77.0.2"), addr("192.168.1.10"), 6, udp(22, "private")),
		tuntest.IPv4(addr("10.77.0.2"), addr("169.254.169.254"), 6, udp(80, "link-local")),
		tuntest.IPv4(addr("10.77.0.2"), addr("224.0.0.251"), 17, udp(5353, "multicast")),
		tuntest.IPv4(addr("10.77.0.2"), addr("10.99.0.5"), 1, []byte{8, 0, 0, 0, 0, 0, 0, 0}), // ICMP echo, private
	}
	allowedEverywhere := [][]byte{
		tuntest.IPv4(addr("10.77.0.2"), addr("198.51.100.7"), 17, udp(53, "public")),
		tuntest.IPv4(addr("10.77.0.2"), addr("10.77.0.3"), 17, udp(9, "client to client")),
	}

	for _, open := range []bool{false, true} {
		name := "default"
		if open {
			name = "allowed"
		}
		t.Run(name, func(t *testing.T) {
			tstest.CheckLeaks(t)
			e := newEnv(t)
			cfg := testServerConfig(t, e.srv.path)
			cfg.AllowDestinations, cfg.DenyDestinations = nil, nil
			if open {
				cfg.AllowDestinations = []string{"127.0.0.1/32:8080", "10.77.0.1/32", "10.77.0.255/32", "192.168.0.0/16", "169.254.0.0/16",
					"224.0.0.0/4", "10.99.0.0/16"}
			}
			srv, sr := startServer(t, cfg, "server")
			_, cr := e.readyClient(t, nil)

			var want [][]byte
			if open {
				want = append(want, refused...)
			}
			want = append(want, allowedEverywhere...)
			for _, p := range refused {
				cr.dev.Inject(p)
			}
			for _, p := range allowedEverywhere {
				cr.dev.Inject(p)
			}
			for _, w := range want {
				if got := recv(t, sr.dev); !bytes.Equal(got, w) {
					t.Fatalf("server wrote %x\nwant %x", got, w)
				}
			}
			wantRefused := uint64(len(refused))
			if open {
				wantRefused = 0
			}
			tstest.WaitFor(t, "refused packets counted", func() bool {
				st := srv.Stats()
				return len(st) == 1 && st[0].Refused == wantRefused && st[0].PacketsIn == uint64(len(want))
			})
			select {
			case p := <-sr.dev.Written():
				t.Errorf("server wrote a refused packet %x", p)
			default:
			}
		})
	}

	t.Run("deny wins", func(t *testing.T) {
		tstest.CheckLeaks(t)
		e := newEnv(t)
		srv, sr := e.serve(t, func(c *ServerConfig) {
			c.AllowDestinations = []string{"10.99.0.0/16"}
			c.DenyDestinations = []string{"10.99.0.5/32:22", "0.0.0.0/0:25"}
		})
		_, cr := e.readyClient(t, nil)
		cr.dev.Inject(tuntest.IPv4(addr("10.77.0.2"), addr("10.99.0.5"), 6, udp(22, "denied port")))
		cr.dev.Inject(tuntest.IPv4(addr("10.77.0.2"), addr("198.51.100.7"), 6, udp(25, "smtp")))
		// A first fragment too short to hold the ports that its
		// followers would bring.
		frag := tuntest.IPv4(addr("10.77.0.2"), addr("10.99.0.5"), 6, []byte{0, 80})
		frag[6] |= 0x20 // more fragments
		cr.dev.Inject(frag)
		ok := tuntest.IPv4(addr("10.77.0.2"), addr("10.99.0.5"), 6, udp(80, "allowed port"))
		cr.dev.Inject(ok)
		if got := recv(t, sr.dev); !bytes.Equal(got, ok) {
			t.Fatalf("server wrote %x, want %x", got, ok)
		}
		tstest.WaitFor(t, "refused packets counted", func() bool {
			st := srv.Stats()
			return len(st) == 1 && st[0].Refused == 3
		})
	})
}

// TestDestinationPolicyICMP: a refused packet gets an ICMP "destination
// unreachable, administratively prohibited" from the server's pool
// address back to the client.
func TestDestinationPolicyICMP(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	_, sr := e.serve(t, func(c *ServerConfig) { c.AllowDestinations = nil })
	_, cr := e.readyClient(t, nil)
	p := tuntest.IPv4(addr("10.77.0.2"), addr("127.0.0.1"), 17, udp(8080, "loopback"))
	cr.dev.Inject(p)
	var got []byte
	select {
	case got = <-cr.dev.Written():
	case <-time.After(10 * time.Second):
		t.Fatal("no ICMP back to the client in 10 s")
	}
	if src, dst, ok := ipv4Addrs(got); !ok || src != addr("10.77.0.1") || dst != addr("10.77.0.2") || got[9] != 1 {
		t.Fatalf("answer %x: want ICMP from 10.77.0.1 to 10.77.0.2", got)
	}
	icmp := got[20:]
	if icmp[0] != 3 || icmp[1] != 13 || !bytes.Equal(icmp[8:], p[:28]) {
		t.Errorf("ICMP %x: want type 3 code 13 quoting the header and 8 bytes of %x", icmp, p)
	}
	if checksum(got[:20]) != 0 || checksum(icmp) != 0 {
		t.Errorf("bad checksums in %x", got)
	}
	select {
	case w := <-sr.dev.Written():
		t.Errorf("server wrote the refused packet %x", w)
	default:
	}
}
