package cli

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
)

// unixPair is a connected pair of unix stream connections: what nc gets
// from appnet (a *net.UnixConn with CloseWrite).
func unixPair(t *testing.T) (a, b *net.UnixConn) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(tstest.SocketDir(t), "s"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan *net.UnixConn, 1)
	go func() {
		c, _ := ln.AcceptUnix()
		acc <- c
	}()
	a, err = net.DialUnix("unix", nil, ln.Addr().(*net.UnixAddr))
	if err != nil {
		t.Fatal(err)
	}
	b = <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// slowWriter is a slow disk: the sender must wait for it, not race it. It
// locks because the only order between its writer and the test is the
// stream, which the race detector does not see.
type slowWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	delay time.Duration
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.delay)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *slowWriter) Bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

// The sender returns nil only after the listener wrote out everything:
// the listener ends its side only after reading the sender's end.
func TestNcSenderWaitsForListener(t *testing.T) {
	tstest.CheckLeaks(t)
	a, b := unixPair(t)
	data := randomBytes(1 << 20)
	out := &slowWriter{delay: time.Millisecond}
	lerr := make(chan error, 1)
	go func() { lerr <- ncListener(context.Background(), b, keys.PublicKey{}, nil, out) }()
	var back bytes.Buffer
	if err := ncSender(context.Background(), a, "pk:x:1", bytes.NewReader(data), &back, time.Minute); err != nil {
		t.Fatalf("sender: %v", err)
	}
	// The sender has returned: the listener must have written it all.
	if got := out.Bytes(); !bytes.Equal(got, data) {
		t.Fatalf("listener wrote %d bytes when the sender returned, want %d", len(got), len(data))
	}
	if err := <-lerr; err != nil {
		t.Fatalf("listener: %v", err)
	}
	if back.Len() != 0 {
		t.Fatalf("listener sent %d bytes back with no input", back.Len())
	}
}

// The listener's own input goes to the sender; the sender's end does not
// cut it short when it is not a terminal.
func TestNcListenerSendsItsInput(t *testing.T) {
	tstest.CheckLeaks(t)
	a, b := unixPair(t)
	data := randomBytes(256 << 10)
	var out bytes.Buffer
	lerr := make(chan error, 1)
	go func() { lerr <- ncListener(context.Background(), b, keys.PublicKey{}, bytes.NewReader(data), &out) }()
	var back bytes.Buffer
	if err := ncSender(context.Background(), a, "pk:x:1", strings.NewReader("hi"), &back, time.Minute); err != nil {
		t.Fatalf("sender: %v", err)
	}
	if err := <-lerr; err != nil {
		t.Fatalf("listener: %v", err)
	}
	if out.String() != "hi" || !bytes.Equal(back.Bytes(), data) {
		t.Fatalf("listener got %q, sender got %d bytes (want 2, %d)", out.String(), back.Len(), len(data))
	}
}

// A peer that ends the stream before it has read all of the input makes
// the sender fail, saying so, with small and large input.
func TestNcSenderPeerEndsEarly(t *testing.T) {
	for _, size := range []int{100, 8 << 20} {
		t.Run(map[bool]string{true: "small", false: "large"}[size == 100], func(t *testing.T) {
			tstest.CheckLeaks(t)
			a, b := unixPair(t)
			go func() {
				io.ReadFull(b, make([]byte, 10))
				b.Close()
			}()
			err := ncSender(context.Background(), a, "pk:x:9000", bytes.NewReader(randomBytes(size)), io.Discard, time.Minute)
			if err == nil {
				t.Fatal("sender succeeded though the peer read 10 bytes and closed")
			}
			if !strings.Contains(err.Error(), "pk:x:9000") || !strings.Contains(err.Error(), "not delivered") && !strings.Contains(err.Error(), "not confirmed") {
				t.Fatalf("error %q does not name the stream and say the data was not delivered", err)
			}
		})
	}
}

// A peer that reads everything but never ends the stream: the sender
// gives up after --wait with an error (it cannot hang forever).
func TestNcSenderWaitBounded(t *testing.T) {
	tstest.CheckLeaks(t)
	a, b := unixPair(t)
	go io.Copy(io.Discard, b) // reads to EOF, never closes its side
	err := ncSender(context.Background(), a, "pk:x:1", strings.NewReader("hello"), io.Discard, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "delivery not confirmed") {
		t.Fatalf("sender to a silent peer: %v, want delivery not confirmed", err)
	}
}

func TestNcStdinWanted(t *testing.T) {
	if stdinWanted(nil) {
		t.Error("nil input wanted")
	}
	if !stdinWanted(strings.NewReader("")) {
		t.Error("a reader not wanted")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if !stdinWanted(r) || isTerminal(r) {
		t.Error("a pipe is not wanted or is a terminal")
	}
}

// A peer that ends the stream while the sender's input is idle (a terminal
// nobody types into) ends the sender at once, with an error.
func TestNcSenderPeerEndsWhileInputIdle(t *testing.T) {
	tstest.CheckLeaks(t)
	a, b := unixPair(t)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() }) // before the leak check: the input goroutine ends
	b.Close()
	err := ncSender(context.Background(), a, "pk:x:1", pr, io.Discard, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "not delivered") {
		t.Fatalf("sender whose peer ended: %v", err)
	}
}

// lateCloseWrite is a stream whose CloseWrite returns only a while after
// the peer's end has come back: both of ncSender's results are then ready
// together, or the end first.
type lateCloseWrite struct {
	*net.UnixConn
	delay time.Duration
}

func (c lateCloseWrite) CloseWrite() error {
	err := c.UnixConn.CloseWrite()
	time.Sleep(c.delay) // the listener reads our end and ends its side meanwhile
	return err
}

// The listener's end arriving before CloseWrite returned is still a
// delivery: once all of the input was written, the order in which the
// sender sees its two results must not matter. (Before, select took the
// end first at random and the sender exited 1 with every byte delivered:
// tests/e2e TestMeshRelayKilled under two make tests at once.)
func TestNcSenderEndBeforeCloseWriteReturns(t *testing.T) {
	tstest.CheckLeaks(t)
	for range 5 {
		a, b := unixPair(t)
		lerr := make(chan error, 1)
		var got bytes.Buffer
		go func() { lerr <- ncListener(context.Background(), b, keys.PublicKey{}, nil, &got) }()
		conn := lateCloseWrite{a, 50 * time.Millisecond}
		if err := ncSender(context.Background(), conn, "pk:x:1", strings.NewReader("all of it"), io.Discard, time.Minute); err != nil {
			t.Fatalf("sender: %v", err)
		}
		if err := <-lerr; err != nil || got.String() != "all of it" {
			t.Fatalf("listener: %v, got %q", err, got.String())
		}
	}
}
