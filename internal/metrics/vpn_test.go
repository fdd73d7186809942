package metrics

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/apps/vpn"
	"github.com/skywire-mesh/skywire/apps/vpn/tuntest"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// hostNet is a vpn.NetConfig that changes nothing on the host.
type hostNet struct{}

func (hostNet) SetLink(context.Context, string, int, netip.Prefix) error { return nil }
func (hostNet) AddRoute(context.Context, vpn.Route) error                { return nil }
func (hostNet) DelRoute(context.Context, vpn.Route) error                { return nil }
func (hostNet) RouteTo(_ context.Context, dst netip.Addr) (vpn.Route, error) {
	return vpn.Route{Dst: netip.PrefixFrom(dst, 32), Via: netip.MustParseAddr("192.0.2.1"), Dev: "eth0"}, nil
}
func (hostNet) SetForwarding(context.Context, bool) (bool, error) { return false, nil }
func (hostNet) Masquerade(context.Context, netip.Prefix, string) (func(context.Context) error, error) {
	return func(context.Context) error { return nil }, nil
}

// tunOpts makes a role use dev as its TUN device and hostNet.
func tunOpts(dev *tuntest.Device) []vpn.Option {
	return []vpn.Option{
		vpn.WithTUN(func(string) (vpn.Device, error) { return dev, nil }),
		vpn.WithNetConfig(hostNet{}),
	}
}

// A vpn-client and vpn-server on fake TUN devices, scraped over HTTP:
// packets through the tunnel move the bytes and packets, a spoofed
// source moves the server's drops (reason spoofed) and an IPv6 packet the
// client's (reason malformed).
func TestVPNMetrics(t *testing.T) {
	tstest.CheckLeaks(t)
	mesh := fakemesh.New()
	srvNode := fakemesh.ServeNode(t, mesh, "server node")
	cliNode := fakemesh.ServeNode(t, mesh, "client node")

	scfg := vpn.DefaultServerConfig()
	scfg.NodeSocket = srvNode.Path
	scfg.StateDir = t.TempDir()
	scfg.Allow = nil
	scfg.AllowAll = true
	scfg.AllowDestinations = []string{"10.99.0.0/16"}
	sdev := tuntest.New(scfg.Tun)
	srv, err := vpn.NewServer(scfg, tstest.VerboseLogger(t, "vpn-server: "), tunOpts(sdev)...)
	if err != nil {
		t.Fatal(err)
	}
	tstest.RunUntilCleanup(t, "vpn-server", srv.Run)
	tstest.Await(t, srv.Ready(), 30*time.Second, "vpn-server to be ready")
	ccfg := vpn.DefaultClientConfig()
	ccfg.NodeSocket = cliNode.Path
	ccfg.Server = srvNode.PublicKey()
	ccfg.Routes = []string{"10.99.0.0/16"}
	cdev := tuntest.New(ccfg.Tun)
	cli, err := vpn.NewClient(ccfg, tstest.VerboseLogger(t, "vpn-client: "), tunOpts(cdev)...)
	if err != nil {
		t.Fatal(err)
	}
	tstest.RunUntilCleanup(t, "vpn-client", cli.Run)
	tstest.Await(t, cli.Ready(), 30*time.Second, "vpn-client to be ready")
	cs := serve(t, VPNClient(cli)).Addr().String()
	ss := serve(t, VPNServer(srv)).Addr().String()
	key := cliNode.PublicKey().String()

	tstest.WaitFor(t, "both ends to show the client connected", func() bool {
		c, _ := value(scrape(t, cs), "skywire_vpn_client_connected")
		fams := scrape(t, ss)
		n, _ := value(fams, "skywire_vpn_server_clients")
		k, _ := value(fams, "skywire_vpn_server_client_connected", "client", key)
		return c == 1 && n == 1 && k == 1
	})
	fams := scrape(t, cs)
	for _, r := range vpn.DropReasons() {
		if v, ok := value(fams, "skywire_vpn_client_dropped_total", "reason", r); !ok || v != 0 {
			t.Errorf("client dropped{reason=%q} = %v (present %v), want 0", r, v, ok)
		}
	}

	ca := cli.Addr().Addr()
	target := netip.MustParseAddr("10.99.0.5")
	good := tuntest.IPv4(ca, target, 17, []byte("eight by"))
	spoofed := tuntest.IPv4(netip.MustParseAddr("10.77.0.99"), target, 17, []byte("spoofed"))
	ipv6 := make([]byte, 40)
	ipv6[0] = 0x60
	for _, p := range [][]byte{ipv6, spoofed, good} {
		cdev.Inject(p)
	}
	tstest.Await(t, sdev.Written(), 30*time.Second, "the good packet to reach the server's device")
	tstest.WaitFor(t, "packets, bytes and drops to be counted", func() bool {
		cf := scrape(t, cs)
		out, _ := value(cf, "skywire_vpn_client_bytes_total", "direction", "out")
		pkts, _ := value(cf, "skywire_vpn_client_packets_total", "direction", "out")
		malformed, _ := value(cf, "skywire_vpn_client_dropped_total", "reason", "malformed")
		sf := scrape(t, ss)
		in, _ := value(sf, "skywire_vpn_server_client_bytes_total", "client", key, "direction", "in")
		spoof, _ := value(sf, "skywire_vpn_server_dropped_total", "reason", "spoofed")
		// The spoofed packet leaves the client (it checks only that it is
		// IPv4) and is dropped by the server.
		return out == float64(len(good)+len(spoofed)) && pkts == 2 && malformed == 1 &&
			in == float64(len(good)) && spoof == 1
	})
	logScrapeTime(t, "vpn-client", cs)
	logScrapeTime(t, "vpn-server", ss)
}
