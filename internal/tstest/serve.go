package tstest

import (
	"context"
	"io"
	"net"
	"sync"

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
