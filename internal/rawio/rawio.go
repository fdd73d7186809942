// Package rawio reads and writes the data path's non-blocking descriptors
// (mesh links, the apps' control sockets, the VPN's TUN device) with raw
// system calls.
//
// Go's ordinary Read and Write tell the scheduler that a system call has
// started and ended (entersyscall, exitsyscall). A call that lasts over
// 20 µs makes the runtime's monitor take the goroutine's P away and hand it
// to another thread, which the goroutine must then win back: on the data
// path that is nearly every call, since a write to a loopback TCP link runs
// the receiver's TCP in the writer's call and a write of a 64 KiB
// super-packet to a TUN device forwards it through the kernel's stack. Each
// such handoff wakes threads and switches contexts. A non-blocking
// descriptor cannot block inside the call (it answers EAGAIN and the
// goroutine waits in the network poller as usual), so the scheduler need not
// be told: Wrap's Read and Write issue the calls raw. In the VPN benchmark
// this cut skywire's CPU per Gbit by about 10–20% (medians of three
// interleaved runs, docs/PERFORMANCE.md).
//
// The price: while the kernel works on such a call, the goroutine keeps its
// P (other goroutines run on the process's other Ps), and a stop-the-world
// pause waits for the call to return (tens of µs). Only descriptors in
// non-blocking mode are wrapped; anything else is returned as it is.
package rawio

import "io"

// Wrap returns a reader-writer over rw's descriptor that issues raw system
// calls, if rw is a non-blocking descriptor (a syscall.Conn: net.TCPConn,
// net.UnixConn, an os.File opened with O_NONBLOCK) on Linux; otherwise rw
// itself. Deadlines, Close and the poller work as with rw's own methods,
// and errors match the same sentinels (io.EOF, os.ErrDeadlineExceeded,
// net.ErrClosed). Each Write writes all of b, or fails, as one writer: it
// holds the descriptor's write lock throughout, so concurrent Writes do not
// interleave.
func Wrap(rw io.ReadWriter) io.ReadWriter { return wrap(rw) }
