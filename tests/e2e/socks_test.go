package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/fakedns"
)

// bulkBody serves size deterministic bytes; sum is their SHA-256.
func bulkServer(t *testing.T, size int64) (url, sum string) {
	h := sha256.New()
	writeBulk(h, size)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := size
		if r.URL.Path == "/small" { // waitSocks's probe
			n = min(n, 1)
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		writeBulk(w, n)
	}))
	t.Cleanup(srv.Close)
	// A name, not an address: socks-server resolves it (--socks5-hostname).
	return strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/bulk", hex.EncodeToString(h.Sum(nil))
}

func writeBulk(w io.Writer, size int64) {
	rng := rand.New(rand.NewPCG(7, 8))
	buf := make([]byte, 64<<10)
	for size > 0 {
		for i := 0; i+8 <= len(buf); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		n := min(int64(len(buf)), size)
		if _, err := w.Write(buf[:n]); err != nil {
			return
		}
		size -= n
	}
}

// socksMesh is the five-node mesh with socks-client on a and socks-server
// on serverNode. The tests' targets listen on this machine's loopback,
// which is the exit host's: socks-server is told to allow it.
func socksMesh(t *testing.T, serverNode string) (*mesh, string) {
	m, proxy, _ := socksMeshWith(t, serverNode, `allow_destinations = ["127.0.0.0/8", "::1/128"]`)
	return m, proxy
}

// socksMeshWith is socksMesh with policy as the destination policy
// lines of [socks_server]. socks-server resolves names with the returned
// fake DNS server (it knows localhost), never the machine's resolver:
// no test query leaves the machine.
func socksMeshWith(t *testing.T, serverNode, policy string) (*mesh, string, *fakedns.Server) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed (scripts/deps.sh installs it)")
	}
	dns := fakedns.Start(t, map[string][]netip.Addr{"localhost": {netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}})
	listen := freePort(t)
	m := newMeshWith(t, func(k map[string]string) string {
		return fmt.Sprintf("[socks_client]\nnode = \"a\"\nlisten = %q\nserver = %q\n\n[socks_server]\nnode = %q\nallow = [%q]\nresolver = %q\n%s\n",
			listen, k[serverNode], serverNode, k["a"], dns.Addr, policy)
	})
	// The apps register with their nodes at start: start them once the
	// nodes are up, as a supervisor's ordering (or its restarts) would.
	for _, n := range []string{"a", serverNode} {
		m.waitNode(n)
	}
	m.start("socks-server", "socks-server")
	m.start("socks-client", "socks-client")
	return m, listen, dns
}

// curlSHA downloads url through the proxy and returns the body's SHA-256
// and curl's exit error.
func curlSHA(t *testing.T, proxy, url string, during func(got int64)) (string, int64, error) {
	cmd := exec.Command("curl", "-sS", "--max-time", "120", "--socks5-hostname", proxy, url)
	out, stderr := startPiped(t, cmd, cmd.StdoutPipe)
	h := sha256.New()
	buf := make([]byte, 64<<10)
	var got int64
	for {
		n, rerr := out.Read(buf)
		h.Write(buf[:n])
		got += int64(n)
		if during != nil {
			during(got)
		}
		if rerr != nil {
			break
		}
	}
	err := cmd.Wait()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, stderr.String())
	}
	return hex.EncodeToString(h.Sum(nil)), got, err
}

// waitSocks waits until a request through the proxy gets an answer.
// Each try is bounded (a request may hang while routes settle); the
// answer must be small, so that the bound does not time a transfer.
func waitSocks(t *testing.T, proxy, url string) {
	t.Helper()
	tstest.WaitFor(t, "the SOCKS proxy to answer "+url, func() bool {
		out, err := exec.Command("curl", "-sS", "-o", "/dev/null", "--max-time", "5", "--socks5-hostname", proxy, url).CombinedOutput()
		if err != nil {
			t.Logf("curl through the proxy: %v: %s", err, out)
		}
		return err == nil
	})
}

func TestSocksDownload(t *testing.T) {
	for _, tt := range []struct {
		name, server string
		links        int
	}{
		{"0 relays", "b", 1},
		{"3 relays", "e", 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, proxy := socksMesh(t, tt.server)
			m.waitRoute("a", tt.server, tt.links)
			url, want := bulkServer(t, bulk)
			waitSocks(t, proxy, strings.TrimSuffix(url, "/bulk")+"/small")
			sum, n, err := curlSHA(t, proxy, url, nil)
			if err != nil || sum != want || n != bulk {
				t.Fatalf("curl through %s: %d bytes, sha256 %s, err %v; want %d bytes, %s", tt.name, n, sum, err, int64(bulk), want)
			}
			// The counters are readable from the command line, on both ends.
			for _, role := range []string{"socks-client", "socks-server"} {
				out, err := m.cmd(role, "stats").Output()
				var st struct{ Total, Up, Down uint64 }
				if err != nil || json.Unmarshal(out, &st) != nil || st.Total < 2 || st.Up+st.Down < bulk {
					t.Errorf("%s stats: %v %s", role, err, out)
				}
			}
		})
	}
}

func TestSocksRelayKilled(t *testing.T) {
	m, proxy := socksMesh(t, "e")
	m.waitRoute("a", "e", 4)
	url, want := bulkServer(t, bulk)
	waitSocks(t, proxy, strings.TrimSuffix(url, "/bulk")+"/small")
	killed := false
	sum, n, err := curlSHA(t, proxy, url, func(got int64) {
		if !killed && got >= bulk/4 {
			killed = true
			m.kill("c", syscall.SIGKILL)
		}
	})
	if !killed || err != nil || sum != want || n != bulk {
		t.Fatalf("download with relay c killed at 25%%: %d bytes, sha256 %s, err %v; want %d bytes, %s", n, sum, err, int64(bulk), want)
	}
}

// TestSocksErrors: the proxy answers failures with the right SOCKS reply,
// quickly: curl reports the reply code in its message.
func TestSocksErrors(t *testing.T) {
	m, proxy, dns := socksMeshWith(t, "b", `allow_destinations = ["127.0.0.0/8", "::1/128"]`)
	m.waitRoute("a", "b", 1)
	url, _ := bulkServer(t, 1)
	waitSocks(t, proxy, url)
	closed := "http://" + freePort(t) + "/"
	for _, tt := range []struct{ url, want string }{
		{closed, "(5)"},                 // connection refused
		{"http://name.invalid/", "(4)"}, // host unreachable: name not found
	} {
		start := time.Now()
		out, err := exec.Command("curl", "-sS", "--max-time", "20", "--socks5-hostname", proxy, tt.url).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tt.want) {
			t.Errorf("curl %s: %v %q, want SOCKS reply %s", tt.url, err, out, tt.want)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("curl %s took %v: failures must be quick", tt.url, d)
		}
	}
	// The name was looked up by socks_server.resolver, the test's.
	if dns.Queries("name.invalid") == 0 {
		t.Errorf("socks-server did not ask its configured resolver (%s) about name.invalid", dns.Addr)
	}
}

// TestSocksDestinationPolicy: socks-server refuses a service on its own
// loopback (reply 2, "not allowed by ruleset"), by address and by name,
// unless allow_destinations opens it; `socks-server stats` counts the
// refusals.
func TestSocksDestinationPolicy(t *testing.T) {
	open := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "open") }))
	defer open.Close()
	closed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "closed") }))
	defer closed.Close()
	openPort := open.Listener.Addr().(*net.TCPAddr).Port
	m, proxy, _ := socksMeshWith(t, "b", fmt.Sprintf("allow_destinations = [\"127.0.0.1/32:%d\"]", openPort))
	m.waitRoute("a", "b", 1)
	waitSocks(t, proxy, open.URL)

	out, err := exec.Command("curl", "-sS", "--max-time", "20", "--socks5-hostname", proxy, open.URL).CombinedOutput()
	if err != nil || string(out) != "open" {
		t.Errorf("curl %s (allowed): %v %q, want \"open\"", open.URL, err, out)
	}
	byName := strings.Replace(closed.URL, "127.0.0.1", "localhost", 1)
	for _, url := range []string{closed.URL, byName} {
		out, err := exec.Command("curl", "-sS", "--max-time", "20", "--socks5-hostname", proxy, url).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "(2)") {
			t.Errorf("curl %s (the exit's loopback, not allowed): %v %q, want SOCKS reply (2)", url, err, out)
		}
	}
	out, err = m.cmd("socks-server", "stats").Output()
	var st struct{ Refused uint64 }
	if err != nil || json.Unmarshal(out, &st) != nil || st.Refused != 2 {
		t.Errorf("socks-server stats: %v %s; want Refused 2", err, out)
	}
}

// socksDial opens a CONNECT through a SOCKS5 proxy (no auth) to host:port,
// the host sent as a name for the server side to resolve.
func socksDial(proxy, host string, port int) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", proxy, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	req := []byte{5, 1, 0}
	req = append(req, 5, 1, 0, 3, byte(len(host)))
	req = append(req, host...)
	req = append(req, byte(port>>8), byte(port))
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	var hello [2]byte
	var reply [10]byte // VER REP RSV ATYP(1) BND.ADDR(4) BND.PORT(2)
	if _, err := io.ReadFull(c, hello[:]); err != nil || hello != [2]byte{5, 0} {
		c.Close()
		return nil, fmt.Errorf("socks greeting: %v %v", hello, err)
	}
	if _, err := io.ReadFull(c, reply[:4]); err != nil || reply[1] != 0 {
		c.Close()
		return nil, fmt.Errorf("socks connect: reply %d: %v", reply[1], err)
	}
	skip := map[byte]int{1: 4 + 2, 4: 16 + 2}[reply[3]]
	if skip == 0 {
		c.Close()
		return nil, fmt.Errorf("socks connect: address type %d", reply[3])
	}
	if _, err := io.ReadFull(c, make([]byte, skip)); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// TestSocksParallel: 200 connections through the proxy at once, each
// echoing its own bytes through the mesh (a -> b) and back.
func TestSocksParallel(t *testing.T) {
	m, proxy := socksMesh(t, "b")
	m.waitRoute("a", "b", 1)
	port := int(netip.MustParseAddrPort(tstest.ServeTCP(t, tstest.Echo)).Port())
	url, _ := bulkServer(t, 1)
	waitSocks(t, proxy, url)

	const conns = 200
	errs := make(chan error, conns)
	var conn [conns]net.Conn
	for i := range conns { // all open at the same time
		c, err := socksDial(proxy, "localhost", port)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conn[i] = c
	}
	for i := range conns {
		go func(c net.Conn, i int) {
			defer c.Close()
			msg := bytes.Repeat([]byte{byte(i)}, 64<<10)
			go c.Write(msg)
			got := make([]byte, len(msg))
			c.SetReadDeadline(time.Now().Add(60 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("connection %d: echo wrong (%v)", i, err)
				return
			}
			errs <- nil
		}(conn[i], i)
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestSocksTwoClients: two socks-clients from one config, told apart by
// the flags a launcher passes (listen address, mesh port, state
// directory), both carry traffic, and each one's stats are read with its
// --state-dir.
func TestSocksTwoClients(t *testing.T) {
	m, proxy := socksMesh(t, "b")
	proxy2, state2 := freePort(t), filepath.Join(m.dir, "second")
	m.start("socks-client-2", "socks-client", "--listen", proxy2, "--port", "1082", "--state-dir", state2)
	m.waitRoute("a", "b", 1)
	url, want := bulkServer(t, 1<<20)
	for _, p := range []string{proxy, proxy2} {
		waitSocks(t, p, strings.TrimSuffix(url, "/bulk")+"/small")
		if sum, n, err := curlSHA(t, p, url, nil); err != nil || sum != want {
			t.Errorf("curl through %s: %d bytes, %v", p, n, err)
		}
	}
	for _, args := range [][]string{{"socks-client", "stats"}, {"socks-client", "stats", "--state-dir", state2}} {
		out, err := m.cmd(args...).Output()
		var st struct{ Total, Down uint64 }
		if err != nil || json.Unmarshal(out, &st) != nil || st.Total < 2 || st.Down < 1<<20 {
			t.Errorf("%v: %v %s; want its own client's counters", args, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(state2, "socks-client.ctl")); err != nil {
		t.Errorf("the second client's control socket: %v", err)
	}
}

// TestSocksServerNodeStopped: once the socks-server's node has stopped
// (SIGTERM: it says goodbye; SIGKILL: its links just drop), requests
// through the proxy get reply 1 at once — the first one too, which
// used to wait ≈ 27 s for the client node's session to time out when the
// stopping node's goodbye was lost with its links.
func TestSocksServerNodeStopped(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			m, proxy := socksMesh(t, "e")
			url, _ := bulkServer(t, 1)
			waitSocks(t, proxy, url) // a session a→e exists
			m.kill("e", sig)
			for i := range 3 {
				start := time.Now()
				out, err := exec.Command("curl", "-sS", "--max-time", "60", "--socks5-hostname", proxy, url).CombinedOutput()
				if err == nil || !strings.Contains(string(out), "(1)") {
					t.Errorf("request %d after e stopped: %v %q, want SOCKS reply (1)", i, err, out)
				}
				d := time.Since(start)
				if d > 10*time.Second {
					t.Errorf("request %d after e stopped took %v: a dial to a node known gone must fail at once", i, d)
				}
				t.Logf("request %d after e stopped: reply 1 in %v", i, d.Round(time.Millisecond))
			}
		})
	}
}
