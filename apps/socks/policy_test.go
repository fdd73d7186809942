package socks

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/apps/internal/exitpolicy"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// noDestinationPolicy leaves the server with the default destination
// policy (newEnv opens the loopback for the other tests).
func noDestinationPolicy(c *ServerConfig) { c.AllowDestinations, c.DenyDestinations = nil, nil }

// TestDestinationPolicyConnect: by default socks-server refuses a CONNECT
// to its own loopback with 0x02 (by IP, and by a name that resolves
// there) and closes; allow_destinations opens exactly what it lists.
func TestDestinationPolicyConnect(t *testing.T) {
	tstest.CheckLeaks(t)
	target := tstest.ServeTCP(t, tstest.Echo)
	dst := hostAddr(t, target)
	// Should the policy let 10.1.2.3 through, the test must not send it
	// off the machine: dial only this host's addresses.
	local := newEnv(t, envOptions{server: noDestinationPolicy, srvOpts: []ServerOption{WithDialer(hostOnlyDialer)}})

	refused := []addr{
		dst,                                 // 127.0.0.1:port
		{Name: "localhost", Port: dst.Port}, // resolves to loopback
		{IP: netip.IPv6Loopback(), Port: dst.Port},
		{IP: netip.MustParseAddr("10.1.2.3"), Port: 80},
		{IP: netip.MustParseAddr("::ffff:127.0.0.1"), Port: dst.Port},
		{IP: netip.IPv4Unspecified(), Port: dst.Port}, // 0.0.0.0 reaches the host on Linux
	}
	for _, d := range refused {
		t.Run("default refuses "+d.String(), func(t *testing.T) {
			conn := dialTCP(t, local.proxy)
			_, err := socksHandshake(conn, "", "", cmdConnect, d)
			if got := replyOf(err); got != ReplyNotAllowed {
				t.Fatalf("reply = %v (err %v), want %v", got, err, ReplyNotAllowed)
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := conn.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
				t.Errorf("after the reply: read %d, %v; want EOF", n, err)
			}
		})
	}
	tstest.WaitFor(t, "refused connections released", func() bool { return local.server.Stats().Open == 0 })
	if s := local.server.Stats(); s.Refused != uint64(len(refused)) || s.Failed != s.Total {
		t.Errorf("server stats: refused %d, failed %d of %d; want %d refused, all failed", s.Refused, s.Failed, s.Total, len(refused))
	}

	open := newEnv(t, envOptions{server: func(c *ServerConfig) {
		c.AllowDestinations = []string{"127.0.0.1/32:" + itoa(dst.Port)}
		c.DenyDestinations = nil
	}})
	for _, d := range []addr{dst, {Name: "localhost", Port: dst.Port}} {
		conn, err := socksDial(open.proxy, "", "", d)
		if err != nil {
			t.Fatalf("CONNECT %v with the port allowed: %v", d, err)
		}
		conn.Write([]byte("ping"))
		b := make([]byte, 4)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(conn, b); err != nil || string(b) != "ping" {
			t.Errorf("echo through %v = %q, %v", d, b, err)
		}
		conn.Close()
	}
	// Only that port of that address was opened.
	other := dst
	other.Port++
	if _, err := socksDial(open.proxy, "", "", other); replyOf(err) != ReplyNotAllowed {
		t.Errorf("CONNECT %v (port not allowed) = %v, want %v", other, err, ReplyNotAllowed)
	}
	if _, err := socksDial(open.proxy, "", "", addr{IP: netip.IPv6Loopback(), Port: dst.Port}); replyOf(err) != ReplyNotAllowed {
		t.Errorf("CONNECT [::1] (not allowed) = %v, want %v", err, ReplyNotAllowed)
	}

	// deny_destinations wins over allow_destinations.
	denied := newEnv(t, envOptions{server: func(c *ServerConfig) {
		c.AllowDestinations = []string{"127.0.0.0/8"}
		c.DenyDestinations = []string{"127.0.0.1/32:" + itoa(dst.Port)}
	}})
	if _, err := socksDial(denied.proxy, "", "", dst); replyOf(err) != ReplyNotAllowed {
		t.Errorf("CONNECT %v (denied) = %v, want %v", dst, err, ReplyNotAllowed)
	}
}

// TestDefaultDialerChecksAgain: the server's own dialer refuses a
// destination the policy refuses, whatever was checked before it.
func TestDefaultDialerChecksAgain(t *testing.T) {
	tstest.CheckLeaks(t)
	target := tstest.ServeTCP(t, tstest.Echo)
	e := newEnv(t, envOptions{server: noDestinationPolicy})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := e.server.dial(ctx, "tcp", target)
	if err == nil {
		c.Close()
	}
	if !errors.Is(err, exitpolicy.ErrRefused) || replyFor(err) != ReplyNotAllowed {
		t.Errorf("default dialer to %s = %v, want exitpolicy.ErrRefused (reply %v)", target, err, ReplyNotAllowed)
	}
}

// hostOnlyDialer dials loopback and unspecified addresses and fails the
// rest, so that no test traffic leaves the machine.
func hostOnlyDialer(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !(ap.Addr().Unmap().IsLoopback() || ap.Addr().Unmap().IsUnspecified()) {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("test: only this host is dialled")}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

// TestDestinationPolicyDialsTheCheckedAddress: a name is resolved once,
// its refused addresses are never dialled, and the dialler gets the
// checked IP (not the name, which a second lookup could turn into the
// loopback).
func TestDestinationPolicyDialsTheCheckedAddress(t *testing.T) {
	tstest.CheckLeaks(t)
	var mu sync.Mutex
	var lookups int
	var dialled []string
	lookup := func(ctx context.Context, host string) ([]netip.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		lookups++
		if lookups > 1 { // a rebinding resolver: loopback the next time
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("10.0.0.1")}, nil
	}
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		mu.Lock()
		dialled = append(dialled, address)
		mu.Unlock()
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("test: no network")}
	}
	e := newEnv(t, envOptions{server: noDestinationPolicy, srvOpts: []ServerOption{WithLookup(lookup), WithDialer(dial)}})
	_, err := socksDial(e.proxy, "", "", addr{Name: "rebind.test", Port: 80})
	if got := replyOf(err); got != ReplyGeneralFailure {
		t.Errorf("reply = %v (err %v), want the dial's failure", got, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if lookups != 1 || strings.Join(dialled, " ") != "198.51.100.7:80" {
		t.Errorf("lookups %d, dialled %q; want 1 lookup and only 198.51.100.7:80", lookups, dialled)
	}
}

// TestDestinationPolicyUDP: datagrams of an association to a refused
// destination are dropped and counted; allowed ones get through.
func TestDestinationPolicyUDP(t *testing.T) {
	tstest.CheckLeaks(t)
	got := make(chan string, 16)
	echoAddr := udpEcho(t, func(p []byte) []byte {
		select {
		case got <- string(p):
		default:
		}
		return p
	})

	for _, allowed := range []bool{false, true} {
		name := "refused"
		if allowed {
			name = "allowed"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{server: func(c *ServerConfig) {
				noDestinationPolicy(c)
				if allowed {
					c.AllowDestinations = []string{"127.0.0.1/32:" + itoa(echoAddr.Port)}
				}
			}})
			_, bnd := udpAssociate(t, e.proxy)
			app := dialRelay(t, bnd)
			for _, dst := range []addr{echoAddr, {Name: "localhost", Port: echoAddr.Port}} {
				hdr, _ := appendUDPHeader(nil, dst)
				msg := name + " " + dst.String()
				if allowed {
					// Datagrams may be lost: resend until the target has it.
					tstest.WaitFor(t, "datagram at the target", func() bool {
						app.Write(append(hdr, msg...))
						select {
						case m := <-got:
							return m == msg
						case <-time.After(100 * time.Millisecond):
							return false
						}
					})
					continue
				}
				before := e.server.Stats().RefusedDatagrams
				tstest.WaitFor(t, "datagram refused", func() bool {
					app.Write(append(hdr, msg...))
					return e.server.Stats().RefusedDatagrams > before
				})
			}
			if !allowed {
				select {
				case m := <-got:
					t.Errorf("the target got %q through a refused association", m)
				default:
				}
			}
		})
	}
}
