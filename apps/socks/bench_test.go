package socks

import (
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// sourceServer writes zeros to every connection until it fails.
func sourceServer(tb testing.TB) string {
	return tstest.ServeTCP(tb, func(c net.Conn) {
		buf := make([]byte, 256<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
}

// BenchmarkDownload: bytes from a TCP target to the application,
// directly, and through socks-client -> mesh -> socks-server: over
// fakemesh (the apps' own cost), and over real nodes linked by loopback
// TCP with 0, 1 and 3 relays between the client's node and the server's.
func BenchmarkDownload(b *testing.B) {
	const chunk = 256 << 10
	run := func(b *testing.B, conn net.Conn) {
		buf := make([]byte, chunk)
		b.SetBytes(chunk)
		b.ResetTimer()
		for b.Loop() {
			if _, err := io.ReadFull(conn, buf); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		conn.Close()
	}
	b.Run("direct", func(b *testing.B) {
		src := sourceServer(b)
		conn, err := net.Dial("tcp", src)
		if err != nil {
			b.Fatal(err)
		}
		run(b, conn)
	})
	proxied := func(o envOptions) func(b *testing.B) {
		return func(b *testing.B) {
			src := sourceServer(b)
			e := newEnv(b, o)
			conn := e.dial(b, src)
			run(b, conn)
		}
	}
	b.Run("fakemesh", proxied(envOptions{}))
	for _, relays := range []int{0, 1, 3} {
		b.Run(fmt.Sprintf("relays=%d", relays), proxied(envOptions{realMesh: true, relays: relays}))
	}
}

// BenchmarkFirstByte: a new proxied connection over the running client
// and server: SOCKS handshake, mesh stream, target dial, first byte.
func BenchmarkFirstByte(b *testing.B) {
	dst := hostAddr(b, tstest.ServeTCP(b, func(c net.Conn) { c.Write([]byte{1}) }))
	firstByte := func(o envOptions) func(b *testing.B) {
		return func(b *testing.B) {
			e := newEnv(b, o)
			one := make([]byte, 1)
			for b.Loop() {
				conn, err := socksDial(e.proxy, "", "", dst)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(conn, one); err != nil {
					b.Fatal(err)
				}
				conn.Close()
			}
		}
	}
	b.Run("fakemesh", firstByte(envOptions{}))
	b.Run("relays=1", firstByte(envOptions{realMesh: true, relays: 1}))
}

// BenchmarkIdleConns: memory held by 1,000 open idle proxied connections:
// socks-client and socks-server, both app servers and the fake mesh (all
// in this process); the target and the application hold their sockets
// without goroutines.
func BenchmarkIdleConns(b *testing.B) {
	const conns = 1000
	for b.Loop() {
		func() {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			e := newEnv(b, envOptions{})
			dst := hostAddr(b, ln.Addr().String())
			tstest.ReportConnMemory(b, conns, "conn", func() (net.Conn, net.Conn) {
				c, err := socksDial(e.proxy, "", "", dst)
				if err != nil {
					b.Fatal(err)
				}
				t, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				return c, t
			})
		}()
	}
}
