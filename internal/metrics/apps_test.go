package metrics

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/apps/socks"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

// socksConnect asks the SOCKS5 proxy at proxy to CONNECT to dst and
// returns the connection and the reply code.
func socksConnect(t *testing.T, proxy string, dst netip.AddrPort) (net.Conn, byte) {
	t.Helper()
	conn, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(tstest.Scaled(30 * time.Second)))
	defer conn.SetDeadline(time.Time{})
	ip := dst.Addr().As4()
	req := append([]byte{5, 1, 0, 5, 1, 0, 1}, ip[:]...)
	req = binary.BigEndian.AppendUint16(req, dst.Port())
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 2+10)
	if _, err := io.ReadFull(conn, reply); err != nil {
		t.Fatalf("SOCKS reply: %v", err)
	}
	return conn, reply[3]
}

// A socks-client and socks-server scraped over HTTP: a CONNECT the
// server's destination policy refuses moves reply not_allowed on both
// ends and the server's destinations_refused_total; a relayed connection
// moves reply succeeded and the bytes, per client too.
func TestSocksMetrics(t *testing.T) {
	tstest.CheckLeaks(t)
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	echoAddr := netip.MustParseAddrPort(echo.Addr().String())
	// Loopback is refused by default; only the echo server's port opens.
	closed := netip.AddrPortFrom(echoAddr.Addr(), echoAddr.Port()^1)

	mesh := fakemesh.New()
	srvNode := fakemesh.ServeNode(t, mesh, "server node")
	cliNode := fakemesh.ServeNode(t, mesh, "client node")
	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(10*time.Second))
	defer cancel()
	scfg := socks.DefaultServerConfig()
	scfg.NodeSocket = srvNode.Path
	scfg.Allow = []keys.PublicKey{cliNode.PublicKey()}
	scfg.AllowDestinations = []string{netip.PrefixFrom(echoAddr.Addr(), 32).String() + ":" + strconv.Itoa(int(echoAddr.Port()))}
	srv, err := socks.NewServer(ctx, scfg, tstest.VerboseLogger(t, "socks-server: "))
	if err != nil {
		t.Fatal(err)
	}
	tstest.RunUntilCleanup(t, "socks-server", srv.Run)
	ccfg := socks.DefaultClientConfig()
	ccfg.NodeSocket = cliNode.Path
	ccfg.Listen = "127.0.0.1:0"
	ccfg.Server = srvNode.PublicKey()
	cli, err := socks.NewClient(ctx, ccfg, tstest.VerboseLogger(t, "socks-client: "))
	if err != nil {
		t.Fatal(err)
	}
	tstest.RunUntilCleanup(t, "socks-client", cli.Run)
	cs := serve(t, SocksClient(cli)).Addr().String()
	ss := serve(t, SocksServer(srv)).Addr().String()

	fams := scrape(t, ss)
	for _, r := range []string{"succeeded", "not_allowed", "general_failure", "host_unreachable", "connection_refused", "address_type_not_supported"} {
		if v, ok := value(fams, "skywire_socks_server_replies_total", "reply", r); !ok || v != 0 {
			t.Errorf("before any request: server replies{reply=%q} = %v (present %v), want 0", r, v, ok)
		}
	}

	if _, rep := socksConnect(t, cli.Addr().String(), closed); rep != byte(socks.ReplyNotAllowed) {
		t.Fatalf("CONNECT %s: reply %d, want %d (not allowed by the destination policy)", closed, rep, socks.ReplyNotAllowed)
	}
	tstest.WaitFor(t, "the refusal counted on both ends", func() bool {
		c, _ := value(scrape(t, cs), "skywire_socks_client_replies_total", "reply", "not_allowed")
		fams := scrape(t, ss)
		s, _ := value(fams, "skywire_socks_server_replies_total", "reply", "not_allowed")
		d, _ := value(fams, "skywire_socks_server_destinations_refused_total", "kind", "connect")
		return c == 1 && s == 1 && d == 1
	})

	conn, rep := socksConnect(t, cli.Addr().String(), echoAddr)
	if rep != byte(socks.ReplySucceeded) {
		t.Fatalf("CONNECT %s: reply %d, want succeeded", echoAddr, rep)
	}
	msg := []byte("twelve bytes")
	conn.Write(msg)
	if _, err := io.ReadFull(conn, make([]byte, len(msg))); err != nil {
		t.Fatal(err)
	}
	tstest.WaitFor(t, "the relayed connection counted", func() bool {
		fams := scrape(t, ss)
		ok, _ := value(fams, "skywire_socks_server_replies_total", "reply", "succeeded")
		open, _ := value(fams, "skywire_socks_server_connections")
		up, _ := value(fams, "skywire_socks_server_bytes_total", "direction", "up")
		down, _ := value(fams, "skywire_socks_server_client_bytes_total", "client", cliNode.PublicKey().String(), "direction", "down")
		cfams := scrape(t, cs)
		cok, _ := value(cfams, "skywire_socks_client_replies_total", "reply", "succeeded")
		cdown, _ := value(cfams, "skywire_socks_client_bytes_total", "direction", "down")
		return ok == 1 && open == 1 && up == 12 && down == 12 && cok == 1 && cdown == 12
	})
	conn.Close()
	tstest.WaitFor(t, "the connection closed", func() bool {
		fams := scrape(t, ss)
		open, _ := value(fams, "skywire_socks_server_connections")
		total, _ := value(fams, "skywire_socks_server_connections_total")
		failed, _ := value(fams, "skywire_socks_server_connections_failed_total")
		return open == 0 && total == 2 && failed == 1
	})
	logScrapeTime(t, "socks-client", cs)
	logScrapeTime(t, "socks-server", ss)
}
