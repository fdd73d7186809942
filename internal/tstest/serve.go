package tstest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/keys"
)

// ServeStreams accepts streams with accept (an app's or a node listener's
// Accept) until it fails — ctx done or the listener closed — and runs
// serve on each in a goroutine of its own. The channel is closed once the
// accept loop and every serve have returned.
func ServeStreams(ctx context.Context, accept func(context.Context) (net.Conn, keys.PublicKey, error), serve func(net.Conn)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			c, _, err := accept(ctx)
			if err != nil {
				return
			}
			wg.Go(func() { serve(c) })
		}
	}()
	return done
}

// Echo writes back what it reads from c until EOF, then half-closes c (if
// it can) so that the peer reads EOF too, and closes it.
func Echo(c net.Conn) {
	defer c.Close()
	io.Copy(c, c)
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// CheckEcho writes data to c and half-closes it, from a goroutine, reads
// what comes back until EOF, and returns an error unless it is data (the
// far end echoes, as Echo does) and the write succeeded. Set a deadline on
// c to bound it.
func CheckEcho(c net.Conn, data []byte) error {
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("echo differs: sent %d bytes, got %d", len(data), len(got))
	}
	// The whole echo and its EOF came back, so the far end read all of
	// data and the half-close: the write has returned.
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// ServeTCP runs serve on every connection to a new loopback TCP
// listener, each in a goroutine of its own, and closes the connection
// after it, until the test ends; then it closes the listener and waits
// for every serve. It returns the listener's address.
func ServeTCP(tb testing.TB, serve func(net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				serve(c)
			})
		}
	})
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// ServeTCPOnce accepts one connection on a new loopback TCP listener,
// runs serve on it (then closes it) and sends what serve returned, or
// Accept's error. The listener is closed when the test ends.
func ServeTCPOnce(tb testing.TB, serve func(net.Conn) error) (string, <-chan error) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		served <- serve(c)
	}()
	return ln.Addr().String(), served
}

// OpenPort opens port with open (a node's Listen or ListenPacket, real or
// fake), failing the test at once on an error; the port is closed when
// the test ends.
func OpenPort[C io.Closer](tb testing.TB, open func(port uint16) (C, error), port uint16) C {
	tb.Helper()
	c, err := open(port)
	if err != nil {
		tb.Fatalf("open port %d: %v", port, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// RunUntilCleanup runs run (a server's or role's Run) in a goroutine until
// the test ends: the test's cleanup cancels run's context, waits for it to
// return (failing the test if it has not within 30 s, stretched by
// TimeScale: a hang guard) and fails the test, naming what, if it
// returned an error.
func RunUntilCleanup(tb testing.TB, what string, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := Await(tb, done, 30*time.Second, what+" to return after its context ended"); err != nil {
			tb.Errorf("%s: %v", what, err)
		}
	})
}
