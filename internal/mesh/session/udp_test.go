package session

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/mesh/session/sessiontest"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// udpPath sends packets over a real UDP socket.
type udpPath struct {
	conn *net.UDPConn
	to   *net.UDPAddr
}

func (u udpPath) SendPacket(p []byte) error {
	_, err := u.conn.WriteToUDP(p, u.to)
	return err
}

// newUDPPair connects two sessions over loopback UDP sockets.
func newUDPPair(t testing.TB, cfg Config) *pair {
	t.Helper()
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Skipf("no loopback UDP: %v", err)
		}
		c.SetReadBuffer(4 << 20)
		c.SetWriteBuffer(4 << 20)
		return c
	}
	ca, cb := listen(), listen()
	p := &pair{}
	var err error
	p.a, err = New(cfg, udpPath{ca, cb.LocalAddr().(*net.UDPAddr)}, sessiontest.NullCipher{}, true)
	if err != nil {
		t.Fatal(err)
	}
	p.b, err = New(cfg, udpPath{cb, ca.LocalAddr().(*net.UDPAddr)}, sessiontest.NullCipher{}, false)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	readLoop := func(c *net.UDPConn, s *Session) {
		buf := make([]byte, 65536)
		for {
			n, _, err := c.ReadFromUDP(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				s.HandlePacket(buf[:n])
			}
		}
	}
	wg.Go(func() { readLoop(ca, p.a) })
	wg.Go(func() { readLoop(cb, p.b) })
	t.Cleanup(func() {
		p.a.Close()
		p.b.Close()
		ca.Close()
		cb.Close()
		wg.Wait()
	})
	return p
}

// TestTransferTransports runs one transfer body over in-memory links and
// over real loopback UDP.
func TestTransferTransports(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T) *pair
	}{
		{"memory", func(t *testing.T) *pair {
			return newPair(t, testConfig(), testConfig(), sessiontest.LinkConfig{Delay: 500 * time.Microsecond}, nil, nil)
		}},
		{"udp", func(t *testing.T) *pair { return newUDPPair(t, testConfig()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tstest.CheckLeaks(t)
			p := tt.make(t)
			transfer(t, p.a, p.b, 8<<20, nil)
			transfer(t, p.b, p.a, 1<<20, nil)
			if err := p.a.SendDatagram([]byte("dgram")); err != nil {
				t.Fatal(err)
			}
		})
	}
}
