package appnet_test

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// BenchmarkStreamThroughput: bytes from one app to another on a second
// node: app -> unix -> appserver -> fakemesh -> appserver -> unix -> app.
func BenchmarkStreamThroughput(b *testing.B) {
	for _, size := range []int{16 << 10, 64 << 10, 256 << 10} {
		b.Run(sizeName(size), func(b *testing.B) {
			n := fakemesh.New()
			srvNode, cliNode := newNode(b, n, "a"), newNode(b, n, "b")
			srv, cli := srvNode.connect(b, "sink", 7), cliNode.connect(b, "source", 0)
			ctx := context.Background()
			conn, in := dialAccept(b, ctx, cli, srv, 7)
			drained := make(chan struct{})
			go func() {
				defer close(drained)
				io.Copy(io.Discard, in)
			}()
			buf := make([]byte, size)
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := conn.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			conn.(*appnet.Conn).CloseWrite()
			<-drained
			conn.Close()
			in.Close()
		})
	}
}

// BenchmarkUnixSocketBaseline is a plain unix socket between two
// goroutines, for scale.
func BenchmarkUnixSocketBaseline(b *testing.B) {
	dir := tstest.SocketDir(b)
	ln, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	conn, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	in := <-accepted
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		io.Copy(io.Discard, in)
	}()
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		conn.Write(buf)
	}
	conn.Close()
	<-drained
	in.Close()
}

// BenchmarkDialFirstByte: from Dial to the first byte of the reply on a
// new stream (the remote app accepts and answers one byte).
func BenchmarkDialFirstByte(b *testing.B) {
	n := fakemesh.New()
	srvNode, cliNode := newNode(b, n, "a"), newNode(b, n, "b")
	srv, cli := srvNode.connect(b, "server", 7), cliNode.connect(b, "client", 0)
	ctx, cancel := context.WithCancel(context.Background())
	served := tstest.ServeStreams(ctx, srv.Accept, func(c net.Conn) {
		c.Write([]byte{1})
		c.Close()
	})
	defer func() { cancel(); <-served }()
	one := make([]byte, 1)
	for b.Loop() {
		c, err := cli.Dial(ctx, srv.LocalKey(), 7)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, one); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

func sizeName(n int) string {
	return map[int]string{16 << 10: "16KiB", 64 << 10: "64KiB", 256 << 10: "256KiB"}[n]
}

// BenchmarkIdleStreams opens 1,000 streams and reports the heap they hold
// per stream, counting both apps, both app servers and the fake mesh (the
// fake mesh's share is small: its pipes allocate only when written).
func BenchmarkIdleStreams(b *testing.B) {
	const streams = 1000
	for b.Loop() {
		func() {
			n := fakemesh.New()
			srvNode, cliNode := newNode(b, n, "a"), newNode(b, n, "b")
			srv, cli := srvNode.connect(b, "server", 7), cliNode.connect(b, "client", 0)
			ctx := context.Background()
			tstest.ReportConnMemory(b, streams, "stream", func() (net.Conn, net.Conn) {
				return dialAccept(b, ctx, cli, srv, 7)
			})
			srv.Close()
			cli.Close()
		}()
	}
}
