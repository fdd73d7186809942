package vpn

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/apps/vpn/tuntest"
)

// BenchmarkTunnel measures packets from the client's TUN device to the
// server's: fake devices, real appnet clients and app servers on unix
// sockets, fakemesh in between. It is the cost of the VPN and the app
// API, without the mesh's crypto or the kernel's TUN.
func BenchmarkTunnel(b *testing.B) {
	for _, size := range []int{1400, DefaultMTU} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			e := newEnv(b)
			_, sr := startServer(b, testServerConfig(b, e.srv.path), "server")
			cn, _ := e.clientNode(b)
			cli, cr := startClient(b, testClientConfig(cn.path, e.srvKey), "client", nil)
			waitReady(b, cli, cr)
			pkt := tuntest.IPv4(addr("10.77.0.2"), addr("10.99.0.5"), 17, bytes.Repeat([]byte{1}, size-20))
			// Datagrams are unreliable: keep at most a window in flight
			// so that no queue overflows; a window lost is sent again.
			const window = 64
			b.SetBytes(int64(size))
			b.ResetTimer()
			var sent, received, lost int
			for received < b.N {
				for sent < b.N && sent-received < window {
					cr.dev.Inject(pkt)
					sent++
				}
				select {
				case <-sr.dev.Written():
					received++
				case <-time.After(100 * time.Millisecond):
					lost += sent - received
					sent = received
				}
			}
			b.StopTimer()
			if lost > 0 {
				b.Logf("%d packets lost and resent", lost)
			}
		})
	}
}
