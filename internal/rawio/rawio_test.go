//go:build unix

package rawio

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// pairs are the connected descriptors the data path wraps: loopback TCP
// (mesh links) and unix stream sockets (the apps' control connections).
func pairs(t *testing.T) map[string]func(t *testing.T) (a, b net.Conn) {
	return map[string]func(t *testing.T) (net.Conn, net.Conn){
		"tcp": func(t *testing.T) (net.Conn, net.Conn) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			return connect(t, ln)
		},
		"unix": func(t *testing.T) (net.Conn, net.Conn) {
			ln, err := net.Listen("unix", filepath.Join(tstest.SocketDir(t), "s"))
			if err != nil {
				t.Fatal(err)
			}
			return connect(t, ln)
		},
	}
}

func connect(t *testing.T, ln net.Listener) (net.Conn, net.Conn) {
	t.Helper()
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	a, err := net.Dial(ln.Addr().Network(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := tstest.Await(t, accepted, tstest.WaitTimeout, "the accepted end")
	if b == nil {
		t.FailNow()
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// mustWrap is Wrap(c), checking that on Linux it wraps.
func mustWrap(t *testing.T, c io.ReadWriter) io.ReadWriter {
	t.Helper()
	rw := Wrap(c)
	if rw == c && runtime.GOOS == "linux" {
		t.Fatalf("Wrap(%T) returned it unwrapped", c)
	}
	return rw
}

// TestRoundTrip moves 16 MiB in writes and reads of random sizes, far more
// than the socket buffers hold, so writes meet EAGAIN and wait in the
// poller midway; every byte must arrive, in order.
func TestRoundTrip(t *testing.T) {
	for name, pair := range pairs(t) {
		t.Run(name, func(t *testing.T) {
			a, b := pair(t)
			w, r := mustWrap(t, a), mustWrap(t, b)
			data := make([]byte, 16<<20)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			werr := make(chan error, 1)
			go func() {
				rng := rand.New(rand.NewPCG(3, 4))
				for off := 0; off < len(data); {
					n := min(len(data)-off, 1+rng.IntN(1<<20))
					m, err := w.Write(data[off : off+n])
					if err != nil || m != n {
						werr <- errors.Join(err, errors.New("short write"))
						return
					}
					off += n
				}
				werr <- a.(interface{ CloseWrite() error }).CloseWrite()
			}()
			got := make([]byte, 0, len(data))
			buf := make([]byte, 256<<10)
			for {
				n, err := r.Read(buf[:1+rng.IntN(len(buf))])
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("read after %d bytes: %v", len(got), err)
				}
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Fatalf("received %d bytes that differ from the %d sent", len(got), len(data))
			}
		})
	}
}

// TestConcurrentWritesStayWhole: each Write is one writer's, start to end,
// even when it takes many system calls: blocks written by goroutines at
// once arrive whole, none cut into another.
func TestConcurrentWritesStayWhole(t *testing.T) {
	for name, pair := range pairs(t) {
		t.Run(name, func(t *testing.T) {
			a, b := pair(t)
			w, r := mustWrap(t, a), mustWrap(t, b)
			const writers, blocks, size = 4, 8, 1 << 20
			var wg sync.WaitGroup
			for id := range writers {
				wg.Go(func() {
					block := bytes.Repeat([]byte{byte('a' + id)}, size)
					for range blocks {
						if _, err := w.Write(block); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			buf := make([]byte, size)
			for i := range writers * blocks {
				if _, err := io.ReadFull(r, buf); err != nil {
					t.Fatalf("block %d: %v", i, err)
				}
				if n := bytes.Count(buf, buf[:1]); n != size {
					t.Fatalf("block %d mixes writers: only %d of %d bytes are %q", i, n, size, buf[0])
				}
			}
			wg.Wait()
		})
	}
}

// TestErrorsAsUsual: the end of the stream, a passed deadline, a closed
// descriptor and a vanished peer give the errors the descriptor's own
// methods give.
func TestErrorsAsUsual(t *testing.T) {
	for name, pair := range pairs(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("eof", func(t *testing.T) {
				a, b := pair(t)
				r := mustWrap(t, b)
				a.Write([]byte("last"))
				a.Close()
				got, err := io.ReadAll(r)
				if err != nil || string(got) != "last" {
					t.Fatalf("ReadAll = %q, %v; want \"last\", nil (io.EOF at the end)", got, err)
				}
			})
			t.Run("deadline", func(t *testing.T) {
				_, b := pair(t)
				r := mustWrap(t, b)
				b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				if _, err := r.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("Read past the deadline: %v, want os.ErrDeadlineExceeded", err)
				}
				b.SetReadDeadline(time.Time{})
			})
			t.Run("close unblocks read", func(t *testing.T) {
				_, b := pair(t)
				r := mustWrap(t, b)
				done := make(chan error, 1)
				go func() {
					_, err := r.Read(make([]byte, 10))
					done <- err
				}()
				// Give the read time to park in the poller, the case this
				// is about; if Close comes first, Read must report the
				// closed conn all the same, so the verdict does not
				// depend on the timing.
				time.Sleep(10 * time.Millisecond)
				b.Close()
				if err := tstest.Await(t, done, tstest.WaitTimeout, "the blocked read to return"); !errors.Is(err, net.ErrClosed) {
					t.Fatalf("Read of a closed conn: %v, want net.ErrClosed", err)
				}
			})
			t.Run("peer gone", func(t *testing.T) {
				a, b := pair(t)
				w := mustWrap(t, a)
				b.Close()
				var err error
				for i := 0; err == nil && i < 1000; i++ {
					_, err = w.Write(make([]byte, 64<<10))
				}
				if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("writing to a closed peer: %v, want EPIPE or ECONNRESET", err)
				}
			})
		})
	}
}

// TestFile: a non-blocking pollable file (a pipe here; the VPN's TUN
// device) is wrapped; reads and writes work and a closed file says
// os.ErrClosed, as os.File does.
func TestFile(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	r, w := mustWrap(t, pr), mustWrap(t, pw)
	if _, err := w.Write([]byte("packet")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "packet" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	pr.Close()
	if _, err := r.Read(buf); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read of a closed file: %v, want os.ErrClosed", err)
	}
}

// TestNotWrapped: what is not a non-blocking descriptor comes back as it
// is: a blocking file (a raw call on it could hold the thread's P
// indefinitely) and an in-memory net.Pipe.
func TestNotWrapped(t *testing.T) {
	var fds [2]int
	if err := syscall.Pipe(fds[:]); err != nil {
		t.Skip("no pipe:", err)
	}
	blocking := os.NewFile(uintptr(fds[0]), "blocking")
	defer blocking.Close()
	defer syscall.Close(fds[1])
	if rw := Wrap(blocking); rw != io.ReadWriter(blocking) {
		t.Errorf("Wrap(blocking file) = %T, want the file itself", rw)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if rw := Wrap(a); rw != io.ReadWriter(a) {
		t.Errorf("Wrap(net.Pipe) = %T, want the conn itself", rw)
	}
}

// TestNoAllocs: reads and writes allocate nothing; they run once per
// frame or datagram on the data path.
func TestNoAllocs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Wrap wraps only on Linux")
	}
	a, b := pairs(t)["unix"](t)
	w, r := mustWrap(t, a), mustWrap(t, b)
	buf := make([]byte, 1024)
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := w.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per write and read, want 0", n)
	}
}
