package tstest

import (
	"testing"
	"time"
)

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
