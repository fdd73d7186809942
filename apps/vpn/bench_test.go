package vpn

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/skywire-mesh/skywire/apps/vpn/tuntest"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// BenchmarkTunnel measures packets from the client's TUN device to the
// server's: fake devices, real appnet clients and app servers on unix
// sockets, fakemesh in between. It is the cost of the VPN and the app
// API, without the mesh's crypto or the kernel's TUN.
func BenchmarkTunnel(b *testing.B) {
	for _, size := range []int{1400, DefaultMTU} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			e := newEnv(b)
			_, sr := e.serve(b, nil)
			_, cr := e.readyClient(b, nil)
			pkt := tuntest.IPv4(addr("10.77.0.2"), addr("10.99.0.5"), 17, bytes.Repeat([]byte{1}, size-20))
			// Each packet written at the server acknowledges one sent.
			got, stop := make(chan struct{}), make(chan struct{})
			defer close(stop)
			go func() {
				for {
					select {
					case <-sr.dev.Written():
					case <-stop:
						return
					}
					select {
					case got <- struct{}{}:
					case <-stop:
						return
					}
				}
			}()
			b.SetBytes(int64(size))
			tstest.SendWindowed(b, 64, func() error {
				cr.dev.Inject(pkt)
				return nil
			}, got)
		})
	}
}
