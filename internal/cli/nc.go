package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"

	ucli "github.com/urfave/cli/v2"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/keys"
)

func ncCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:      "nc",
		Usage:     "netcat over the mesh: connect stdin/stdout to PUBKEY:PORT, or listen on PORT",
		ArgsUsage: "PUBKEY PORT | -l PORT",
		Description: `Registers with the local node's app socket as the app "nc".
  skywire nc -l 9000                      accept one stream on mesh port 9000
  skywire nc pk:… 9000 < file             send a file to it
Standard input's end half-closes the stream; the command ends when both
directions are done.`,
		Flags: []ucli.Flag{profileFlag,
			&ucli.BoolFlag{Name: "listen", Aliases: []string{"l"}, Usage: "accept one stream on PORT"},
		},
		Action: func(c *ucli.Context) error {
			want := 2
			if c.Bool("listen") {
				want = 1
			}
			if c.NArg() != want {
				return ucli.Exit("usage: skywire nc PUBKEY PORT | skywire nc -l PORT", 2)
			}
			port, err := strconv.ParseUint(c.Args().Get(want-1), 10, 16)
			if err != nil || port == 0 {
				return ucli.Exit(fmt.Sprintf("bad port %q: want 1-65535", c.Args().Get(want-1)), 2)
			}
			var remote keys.PublicKey
			if !c.Bool("listen") {
				if remote, err = keys.ParsePublicKey(c.Args().First()); err != nil {
					return err
				}
			}
			f, err := e.loadConfig(c)
			if err != nil {
				return err
			}
			_, sec, err := f.NodeProfile(c.String("profile"))
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(c.Context)
			defer cancel()
			listenPort := uint16(0)
			if c.Bool("listen") {
				listenPort = uint16(port)
			}
			cl, err := appnet.Connect(ctx, sec.AppSocket, "nc", listenPort)
			if err != nil {
				return fmt.Errorf("connect to the node at %s: %w", sec.AppSocket, err)
			}
			defer cl.Close()
			var conn net.Conn
			if c.Bool("listen") {
				conn, _, err = cl.Accept(ctx)
			} else {
				conn, err = cl.Dial(ctx, remote, uint16(port))
			}
			if err != nil {
				return err
			}
			defer conn.Close()
			return pipe(ctx, conn, e.stdin, e.stdout)
		},
	}
}

// pipe copies in to conn (half-closing it at in's end) and conn to out,
// until both directions are done or ctx ends.
func pipe(ctx context.Context, conn net.Conn, in io.Reader, out io.Writer) error {
	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, in)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok && err == nil {
			err = cw.CloseWrite()
		}
		sent <- err
	}()
	recvd := make(chan error, 1)
	go func() {
		_, err := io.Copy(out, conn)
		recvd <- err
	}()
	var errSend, errRecv error
	for n := 0; n < 2; n++ {
		select {
		case errSend = <-sent:
		case errRecv = <-recvd:
		case <-ctx.Done():
			conn.Close()
			return ctx.Err()
		}
	}
	return errors.Join(errRecv, errSend)
}
