package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/messenger"
)

// startMessenger runs a messenger daemon on node nd until the test ends
// and returns its config and its Stats once it runs.
func startMessenger(t *testing.T, name string, nd *fakemesh.ServedNode) (messenger.Config, MessengerStats) {
	t.Helper()
	cfg := messenger.DefaultConfig()
	cfg.NodeSocket = nd.Path
	cfg.StateDir = tstest.SocketDir(t)
	cfg.Web = ""
	cfg.RetryMin = 20 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	started := make(chan messenger.Daemon, 1)
	cfg.OnStart = func(d messenger.Daemon) { started <- d }
	tstest.RunUntilCleanup(t, name, func(ctx context.Context) error { return messenger.Run(ctx, cfg, tstest.VerboseLogger(t, name+": ")) })
	select {
	case d := <-started:
		return cfg, d
	case <-time.After(tstest.Scaled(30 * time.Second)):
		t.Fatalf("%s did not start", name)
		return cfg, nil
	}
}

// Two messenger daemons scraped over HTTP: a message queued while the
// peer is away shows as queued, then as sent, delivered and received
// once the peer is back.
func TestMessengerMetrics(t *testing.T) {
	tstest.CheckLeaks(t)
	mesh := fakemesh.New()
	na := fakemesh.ServeNode(t, mesh, "a node")
	nb := fakemesh.ServeNode(t, mesh, "b node")
	acfg, a := startMessenger(t, "messenger a", na)
	_, b := startMessenger(t, "messenger b", nb)
	as := serve(t, Messenger(a)).Addr().String()
	bs := serve(t, Messenger(b)).Addr().String()
	tstest.WaitFor(t, "both registered", func() bool {
		ra, _ := value(scrape(t, as), "skywire_messenger_registered")
		rb, _ := value(scrape(t, bs), "skywire_messenger_registered")
		return ra == 1 && rb == 1
	})
	for _, r := range messenger.RejectReasons() {
		if v, ok := value(scrape(t, bs), "skywire_messenger_messages_rejected_total", "reason", r); !ok || v != 0 {
			t.Errorf("rejected{reason=%q} = %v (present %v), want 0", r, v, ok)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(30*time.Second))
	defer cancel()
	mesh.Partition(na.PublicKey(), nb.PublicKey())
	if _, err := messenger.Send(ctx, acfg, nb.PublicKey().String(), "hello b"); err != nil {
		t.Fatal(err)
	}
	tstest.WaitFor(t, "the message queued and a failed attempt counted", func() bool {
		fams := scrape(t, as)
		sent, _ := value(fams, "skywire_messenger_messages_sent_total")
		queued, _ := value(fams, "skywire_messenger_messages_queued")
		errs, _ := value(fams, "skywire_messenger_delivery_errors_total")
		return sent == 1 && queued == 1 && errs >= 1
	})
	mesh.Heal(na.PublicKey(), nb.PublicKey())
	tstest.WaitFor(t, "the message delivered and received", func() bool {
		fams := scrape(t, as)
		delivered, _ := value(fams, "skywire_messenger_messages_delivered_total")
		queued, _ := value(fams, "skywire_messenger_messages_queued")
		received, _ := value(scrape(t, bs), "skywire_messenger_messages_received_total")
		return delivered == 1 && queued == 0 && received == 1
	})
	if v, ok := value(scrape(t, as), "skywire_messenger_messages_failed_total"); !ok || v != 0 {
		t.Errorf("failed messages %v (present %v), want 0", v, ok)
	}
	logScrapeTime(t, "messenger", as)
}
