package appnet_test

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// A datagram handed back with ReuseDatagram gives its memory to the next
// one of its size class, which arrives intact (no bytes of the earlier,
// larger one); a reader that keeps its datagrams is not affected.
func TestReuseDatagram(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	a, b := newNode(t, n, "a"), newNode(t, n, "b")
	srv, cli := a.connect(t, "vpn-server", 9), b.connect(t, "vpn-client", 10)
	ctx := ctxT(t, 30*time.Second)
	var prev []byte
	for i, size := range []int{appnet.MaxDatagram, 40000, appnet.MaxDatagram - 1, 1400, 1100, 0} {
		msg := make([]byte, size)
		for j := range msg {
			msg[j] = byte(rand.Uint32())
		}
		if err := cli.SendDatagram(srv.LocalKey(), 9, msg); err != nil {
			t.Fatal(err)
		}
		got, _, _, err := srv.ReadDatagram(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("datagram %d (%d bytes) arrived as %d bytes, or changed", i, size, len(got))
		}
		if i == 2 && &got[:1][0] != &prev[:1][0] {
			t.Error("a 64 KiB datagram handed back was not reused for the next")
		}
		prev = got
		srv.ReuseDatagram(got)
	}
	// Kept datagrams stay as they were.
	kept := make([][]byte, 0, 3)
	for i := range 3 {
		msg := bytes.Repeat([]byte{byte(i + 1)}, 2000)
		if err := cli.SendDatagram(srv.LocalKey(), 9, msg); err != nil {
			t.Fatal(err)
		}
		got, _, _, err := srv.ReadDatagram(ctx)
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, got)
	}
	for i, k := range kept {
		if !bytes.Equal(k, bytes.Repeat([]byte{byte(i + 1)}, 2000)) {
			t.Fatalf("kept datagram %d changed", i)
		}
	}
}
