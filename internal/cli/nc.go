package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/keys"
)

// ncDefaults: how long the sender waits for a listener to appear, and how
// long it waits, after its input ended, for the peer to end the stream.
const (
	ncRetryDefault = 10 * time.Second
	ncWaitDefault  = time.Minute
)

func ncCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:      "nc",
		Usage:     "netcat over the mesh: connect stdin/stdout to a node's PORT (by key or name), or listen on PORT",
		ArgsUsage: "PUBKEY|NAME PORT | -l PORT",
		Description: `Registers with the local node's app socket as the app "nc".
  skywire nc -l 9000 > received           accept one stream on mesh port 9000
  skywire nc pk:… 9000 < file             send a file to it
  skywire nc kitchen-pi 9000 < file       the same, by the node's name

A NAME is looked up in the manager's directory through the local node and
must be claimed by exactly one node (names are claims, not identities);
otherwise nc lists the candidates and sends nothing.

Nothing is lost silently. The sender retries a refused stream (nothing
listens yet) for --retry, then fails naming the node and port. At the end of
its input it half-closes the stream and waits for the listener's end of the
stream; a listener ends its side only after it has read the sender's end, so
exit status 0 on the sending side means the listener read every byte. The
sender exits non-zero if the stream ends or breaks before that, or if the
peer stays silent for --wait after the input ended.

The listener reads standard input and sends it back unless -d is given or
standard input is a terminal it does not own (a background job), so
"skywire nc -l 9000 > received &" is never stopped by SIGTTIN.`,
		Flags: []ucli.Flag{profileFlag,
			&ucli.BoolFlag{Name: "listen", Aliases: []string{"l"}, Usage: "accept one stream on PORT"},
			&ucli.BoolFlag{Name: "no-stdin", Aliases: []string{"d"}, Usage: "do not read standard input (send nothing)"},
			&ucli.DurationFlag{Name: "retry", Value: ncRetryDefault, Usage: "sender: keep retrying a refused stream or a missing route this long (0: fail at once)"},
			&ucli.DurationFlag{Name: "wait", Value: ncWaitDefault, Usage: "sender: after the input ended, fail if the peer sends nothing and does not end the stream for this long"},
		},
		Action: func(c *ucli.Context) error {
			listen := c.Bool("listen")
			want := 2
			if listen {
				want = 1
			}
			if c.NArg() != want {
				return ucli.Exit("usage: skywire nc PUBKEY|NAME PORT | skywire nc -l PORT", 2)
			}
			port, err := strconv.ParseUint(c.Args().Get(want-1), 10, 16)
			if err != nil || port == 0 {
				return ucli.Exit(fmt.Sprintf("bad port %q: want 1-65535", c.Args().Get(want-1)), 2)
			}
			if c.Duration("retry") < 0 || c.Duration("wait") <= 0 {
				return ucli.Exit("--retry must be 0 or more and --wait more than 0", 2)
			}
			sec, err := e.nodeSection(c)
			if err != nil {
				return err
			}
			var remote keys.PublicKey
			if !listen {
				n, err := resolveNode(c.Context, sec.ControlSocket, c.Args().First())
				if err != nil {
					return err
				}
				remote = n.Key
			}
			ctx, cancel := signalContext(c.Context)
			defer cancel()
			listenPort := uint16(0)
			if listen {
				listenPort = uint16(port)
			}
			cl, err := appnet.Connect(ctx, sec.AppSocket, "nc", listenPort)
			if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
				return fmt.Errorf("%s: %w", sec.AppSocket, errNodeDown)
			}
			if err != nil {
				return fmt.Errorf("connect to the node at %s: %w", sec.AppSocket, err)
			}
			defer cl.Close()
			var in io.Reader = e.stdin
			if c.Bool("no-stdin") || !stdinWanted(e.stdin) {
				in = nil
			}
			if listen {
				conn, from, err := cl.Accept(ctx)
				if err != nil {
					return fmt.Errorf("accept on port %d: %w", port, err)
				}
				defer conn.Close()
				return ncListener(ctx, conn, from, in, e.stdout)
			}
			where := fmt.Sprintf("%s:%d", remote, port)
			conn, err := ncDial(ctx, cl, remote, uint16(port), c.Duration("retry"))
			if err != nil {
				return err
			}
			defer conn.Close()
			return ncSender(ctx, conn, where, in, e.stdout, c.Duration("wait"))
		},
	}
}

// ncDial dials remote:port, retrying for up to retry while the stream is
// refused (the listener is not there yet) or there is no route (the mesh
// is still coming up).
func ncDial(ctx context.Context, cl *appnet.Client, remote keys.PublicKey, port uint16, retry time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(retry)
	pause := 50 * time.Millisecond
	for {
		conn, err := cl.Dial(ctx, remote, port)
		if err == nil {
			return conn, nil
		}
		again := errors.Is(err, appnet.ErrRefused) || errors.Is(err, appnet.ErrNoRoute)
		if !again || time.Now().Add(pause).After(deadline) {
			switch {
			case errors.Is(err, appnet.ErrRefused):
				return nil, fmt.Errorf("%s:%d refused the stream: nothing listens on port %d of node %s (waited %v; --retry sets how long): %w",
					remote, port, port, remote, retry, err)
			case errors.Is(err, appnet.ErrNoRoute):
				return nil, fmt.Errorf("no route to node %s (port %d; waited %v): %w", remote, port, retry, err)
			}
			return nil, fmt.Errorf("dial %s:%d: %w", remote, port, err)
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return nil, fmt.Errorf("dial %s:%d: %w", remote, port, ctx.Err())
		}
		pause = min(2*pause, time.Second)
	}
}

// halfCloser is a stream whose write side can be closed alone.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// countWriter counts the bytes written through it and when the last ones
// came.
type countWriter struct {
	w    io.Writer
	n    atomic.Int64
	last atomic.Int64 // unix nanoseconds
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	c.last.Store(time.Now().UnixNano())
	return n, err
}

type copyResult struct {
	n   int64
	err error
}

// ncSender runs the dialling side: stdin to the stream, half-closed at
// its end; the stream to stdout. It returns nil only when the peer ended
// the stream after reading all of the input (a peer that is skywire nc -l
// ends its side only then).
func ncSender(ctx context.Context, conn net.Conn, where string, in io.Reader, out io.Writer, wait time.Duration) error {
	hc, ok := conn.(halfCloser)
	if !ok {
		return fmt.Errorf("stream to %s cannot be half-closed", where)
	}
	sent := make(chan copyResult, 1)
	out1 := &countWriter{w: hc}
	var inputDone atomic.Bool // all of the input is in the stream; CloseWrite follows at once
	go func() {
		var err error
		if in != nil {
			_, err = io.Copy(out1, in)
		}
		if err == nil {
			inputDone.Store(true)
			err = hc.CloseWrite()
		}
		sent <- copyResult{out1.n.Load(), err}
	}()
	recv := &countWriter{w: out}
	recvd := make(chan copyResult, 1)
	go func() {
		n, err := io.Copy(recv, hc)
		recvd <- copyResult{n, err}
	}()

	var s, r *copyResult
	var sentAt time.Time
	tick := time.NewTicker(wait / 10)
	defer tick.Stop()
	for s == nil || r == nil {
		select {
		case x := <-sent:
			s, sentAt = &x, time.Now()
			if s.err != nil {
				hc.Close() // the stream is broken: stop the other direction too
			}
		case x := <-recvd:
			r = &x
			if s == nil && inputDone.Load() {
				// The input was all sent and our end is on its way (or
				// the end came back so fast that both results are ready
				// and select took this one first): take the sending
				// result as if it had come first.
				x := <-sent
				s, sentAt = &x, time.Now()
				continue
			}
			if s == nil {
				// The peer ended the stream (or it broke) while input was
				// still being sent: what it did not read is lost. Do not
				// wait for the input (it may be a terminal nobody types
				// into); its goroutine ends with the process.
				hc.Close()
				if r.err != nil {
					return fmt.Errorf("stream to %s broke after %d bytes of input (%d received); the input was not delivered in full: %w", where, out1.n.Load(), r.n, r.err)
				}
				return fmt.Errorf("%s ended the stream before reading all of the input (%d bytes sent); the rest was not delivered", where, out1.n.Load())
			}
		case <-tick.C:
			if s == nil || s.err != nil {
				continue
			}
			last := time.Unix(0, recv.last.Load())
			if sentAt.After(last) {
				last = sentAt
			}
			if time.Since(last) > wait {
				hc.Close()
				return fmt.Errorf("sent %d bytes to %s, but it neither sent anything nor ended the stream within %v (--wait) after the input ended: delivery not confirmed", s.n, where, wait)
			}
		case <-ctx.Done():
			hc.Close()
			return fmt.Errorf("interrupted after sending %d bytes to %s: delivery not confirmed", out1.n.Load(), where)
		}
	}
	switch {
	case r.err != nil:
		return fmt.Errorf("stream to %s broke after %d bytes of input (%d received); the input was not delivered in full: %w", where, s.n, r.n, r.err)
	case s.err != nil:
		return fmt.Errorf("stream to %s broke after %d bytes of input; the rest was not delivered: %w", where, s.n, s.err)
	}
	return nil
}

// ncListener runs the accepting side: the stream to stdout and, unless in
// is nil, stdin to the stream. It ends its side of the stream only after
// reading the sender's end (and its own input), so the sender's final
// read of end-of-stream confirms that everything arrived.
//
// With a terminal as input (someone typing), the sender's end also ends
// the input, as netcat does, so a listener in a terminal needs no Ctrl-D.
func ncListener(ctx context.Context, conn net.Conn, from keys.PublicKey, in io.Reader, out io.Writer) error {
	typing := isTerminal(in)
	hc, ok := conn.(halfCloser)
	if !ok {
		return fmt.Errorf("stream from %s cannot be half-closed", from)
	}
	sent := make(chan copyResult, 1)
	go func() {
		var n int64
		var err error
		if in != nil {
			n, err = io.Copy(hc, in)
		}
		sent <- copyResult{n, err}
	}()
	recvd := make(chan copyResult, 1)
	go func() {
		n, err := io.Copy(out, hc)
		recvd <- copyResult{n, err}
	}()
	var s, r *copyResult
	for s == nil || r == nil {
		select {
		case x := <-sent:
			s = &x
			if s.err != nil {
				hc.Close()
			}
		case x := <-recvd:
			r = &x
			if r.err != nil {
				hc.Close()
			} else if s == nil && typing {
				s = &copyResult{} // the goroutine stays in the terminal read until exit
			}
		case <-ctx.Done():
			hc.Close()
			return ctx.Err()
		}
	}
	if r.err != nil {
		return fmt.Errorf("stream from %s broke after %d bytes received: %w", from, r.n, r.err)
	}
	if s.err != nil {
		return fmt.Errorf("stream to %s broke after %d bytes sent: %w", from, s.n, s.err)
	}
	// Both directions are done: everything the sender sent has been
	// written out. Now end our side, which tells the sender so.
	if err := hc.CloseWrite(); err != nil {
		return fmt.Errorf("stream to %s: %w", from, err)
	}
	return nil
}

// stdinWanted reports whether nc may read in: not when it is a terminal
// whose foreground process group is not ours (reading would stop us with
// SIGTTIN, as in `skywire nc -l 9000 > received &`).
func stdinWanted(in io.Reader) bool {
	f, ok := in.(*os.File)
	if !ok {
		return in != nil
	}
	return !backgroundTerminal(f)
}

func isTerminal(in io.Reader) bool {
	f, ok := in.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
