// Command extapp is a program outside the skywire module that uses the
// public app API (appnet and keys), the way a third-party Go app would. It
// is built from its own module by TestExternalModule: if appnet's API
// needed an internal package, this would not compile.
//
// Usage: extapp LISTEN_SOCKET DIAL_SOCKET PORT
//
// It registers on the node at LISTEN_SOCKET with PORT and echoes one stream,
// registers on the node at DIAL_SOCKET, dials the first node's key on PORT
// across the mesh, and checks the echo. It exits non-zero on any failure.
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/keys"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "extapp:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: extapp LISTEN_SOCKET DIAL_SOCKET PORT")
	}
	port, err := strconv.ParseUint(args[2], 10, 16)
	if err != nil {
		return fmt.Errorf("port: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	srv, err := appnet.Connect(ctx, args[0], "extapp-server", uint16(port))
	if err != nil {
		return err
	}
	defer srv.Close()
	echoed := make(chan error, 1)
	go func() {
		c, _, err := srv.Accept(ctx)
		if err != nil {
			echoed <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, c)
		echoed <- err
	}()

	cli, err := appnet.Connect(ctx, args[1], "extapp-client", 0)
	if err != nil {
		return err
	}
	defer cli.Close()
	// The key travels as text, as a user would paste it.
	to, err := keys.ParsePublicKey(srv.LocalKey().String())
	if err != nil {
		return err
	}
	c, err := cli.Dial(ctx, to, uint16(port))
	if err != nil {
		return err
	}
	defer c.Close()
	msg := bytes.Repeat([]byte("hello from outside the module "), 1000)
	if _, err := c.Write(msg); err != nil {
		return err
	}
	if err := c.(*appnet.Conn).CloseWrite(); err != nil {
		return err
	}
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo: got %d bytes, want %d identical ones", len(got), len(msg))
	}
	if err := <-echoed; err != nil {
		return fmt.Errorf("echo side: %w", err)
	}
	fmt.Printf("echoed %d bytes from %s to %s\n", len(got), cli.LocalKey().Short(), to.Short())
	return nil
}
