package node_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/internal/tstest/meshtest"
	"github.com/skywire-mesh/skywire/node"
)

// BenchmarkDatagram measures 1400-byte datagrams from one node's packet
// conn to another's through one relay, in memory: the per-packet cost of
// the node and session datagram path (sealing included) without the app
// API. At most a window is in flight; a lost window is sent again.
func BenchmarkDatagram(b *testing.B) {
	const n = 3
	m := meshtest.New(b, meshtest.Options{Nodes: n, Links: meshtest.Line(n)})
	m.WaitReady()
	dst := tstest.OpenPort(b, m.Nodes[n-1].ListenPacket, 7)
	src := tstest.OpenPort(b, m.Nodes[0].ListenPacket, 7)
	to := node.Addr{Key: m.Nodes[n-1].Keys.Public, Port: 7}
	pkt := bytes.Repeat([]byte{1}, 1400)
	got := make(chan struct{}, 1024)
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := dst.ReadFrom(buf); err != nil {
				close(got)
				return
			}
			got <- struct{}{}
		}
	}()
	// The first datagrams establish the session; the far end may drop
	// them until it has its side.
	for ready := false; !ready; {
		if _, err := src.WriteTo(pkt, to); err != nil {
			b.Fatal(err)
		}
		select {
		case <-got:
			ready = true
		case <-time.After(50 * time.Millisecond):
		}
	}
	b.SetBytes(int64(len(pkt)))
	tstest.SendWindowed(b, 64, func() error {
		_, err := src.WriteTo(pkt, to)
		return err
	}, got)
}
