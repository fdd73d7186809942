package appnet_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/internal/wire"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

// stuckNode accepts one app, welcomes it and then never reads: the app's
// datagrams fill the socket and the client's queue.
func stuckNode(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conn net.Conn
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		conn = c
		if _, _, _, err := wire.ReadFrame(c, nil, wire.MaxOpenFrame); err != nil {
			return
		}
		if frame, err := wire.Marshal(&wire.Welcome{Version: wire.Version}); err == nil {
			c.Write(frame)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		if conn != nil {
			conn.Close()
		}
	})
	return path
}

// TestSendDatagramBackPressure: a node that does not read makes
// SendDatagram wait once the queue is full, and Close releases the
// waiting sender with ErrClosed.
func TestSendDatagramBackPressure(t *testing.T) {
	tstest.CheckLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := appnet.Connect(ctx, stuckNode(t), "app", 7)
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan int, 1)
	res := make(chan error, 1)
	go func() {
		payload := make([]byte, 16<<10)
		for i := 0; ; i++ {
			select {
			case sent <- i:
			default:
			}
			if err := c.SendDatagram(keys.PublicKey{1}, 9, payload); err != nil {
				res <- err
				return
			}
		}
	}()
	// The sender must stall: far less than a second's worth of datagrams
	// fit in the socket buffers and the queue.
	var last int
	for stalled := false; !stalled; {
		select {
		case err := <-res:
			t.Fatalf("SendDatagram failed before Close: %v", err)
		case last = <-sent:
		case <-time.After(200 * time.Millisecond):
			stalled = true
		case <-ctx.Done():
			t.Fatalf("SendDatagram never waited (%d sent)", last)
		}
	}
	c.Close()
	if err := tstest.Await(t, res, 10*time.Second, "SendDatagram to return after Close"); !errors.Is(err, appnet.ErrClosed) {
		t.Errorf("SendDatagram after Close: %v, want ErrClosed", err)
	}
}
