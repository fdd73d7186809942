package tstest

import (
	"os"
	"testing"
	"time"
)

// FiguresEnv names the environment variable that runs the measurement
// tests (TestXFigures), whose figures docs/PERFORMANCE.md quotes:
//
//	SKYWIRE_FIGURES=1 go test ./manager -run TestRouteSetupFigures -v
const FiguresEnv = "SKYWIRE_FIGURES"

// Figures skips a measurement test unless $SKYWIRE_FIGURES is set: it
// measures and logs, it does not check speed, and takes long.
func Figures(tb testing.TB) {
	tb.Helper()
	if os.Getenv(FiguresEnv) == "" {
		tb.Skip("a measurement: set " + FiguresEnv + "=1")
	}
}

// lossPause is how long SendWindowed waits for an arrival before it
// counts the packets in flight as lost.
const lossPause = 100 * time.Millisecond

// SendWindowed is the loop of a benchmark of unreliable packets: it sends
// b.N packets with send, at most window of them unacknowledged, where
// each receive from got acknowledges one. When nothing arrives for
// 100 ms the packets in flight count as lost and are sent again, so no
// queue overflows for long. The timer stops before it logs how many
// were resent.
func SendWindowed(b *testing.B, window int, send func() error, got <-chan struct{}) {
	b.Helper()
	b.ResetTimer()
	var sent, received, lost int
	for received < b.N {
		for sent < b.N && sent-received < window {
			if err := send(); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		select {
		case <-got:
			received++
		case <-time.After(lossPause):
			lost += sent - received
			sent = received
		}
	}
	b.StopTimer()
	if lost > 0 {
		b.Logf("%d packets lost and resent", lost)
	}
}

// BenchDecode is the benchmark of a decoder: it encodes msgs once, then
// each op decodes every one of them (so allocs/op is the cost of the
// whole set), failing on the first error.
func BenchDecode[M any](b *testing.B, msgs []M, encode func(M) ([]byte, error), decode func([]byte) error) {
	b.Helper()
	encoded := make([][]byte, len(msgs))
	for i, m := range msgs {
		e, err := encode(m)
		if err != nil {
			b.Fatal(err)
		}
		encoded[i] = e
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, e := range encoded {
			if err := decode(e); err != nil {
				b.Fatal(err)
			}
		}
	}
}
