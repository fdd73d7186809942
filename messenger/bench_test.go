package messenger

import (
	"context"
	"testing"

	"github.com/skywire-mesh/skywire/appnet/fakemesh"
)

// BenchmarkSendDelivered measures one message from Send (control socket)
// to its acknowledgement by the recipient messenger over fakemesh: two
// fsynced appends at the sender, one at the recipient, a stream and the
// acks.
func BenchmarkSendDelivered(b *testing.B) {
	n := fakemesh.New()
	na, nb := newNode(b, n, "a"), newNode(b, n, "b")
	a := startDaemon(b, "a", testConfig(b, na))
	bcfg := testConfig(b, nb)
	bcfg.RateLimit, bcfg.RateBurst = 1e9, 1e9 // measure delivery, not the limiter
	startDaemon(b, "b", bcfg)
	c, err := newClient(a.cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	delivered := make(chan struct{}, 1024)
	up := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.events(ctx, func() { close(up) }, func(ev Event) {
			if ev.Kind == "state" && ev.Message.State == "delivered" {
				delivered <- struct{}{}
			}
		})
	}()
	<-up
	to := nb.key().String()
	for b.Loop() {
		var m Message
		if err := c.call(ctx, "send", "POST", "/api/send", sendRequest{To: to, Text: "benchmark message"}, &m); err != nil {
			b.Fatal(err)
		}
		<-delivered
	}
	cancel()
	<-done
}
