package rawio

import (
	"io"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// conn is a wrapped descriptor. The functions handed to RawConn are made
// once and keep their state in the struct (a closure per call would cost
// allocations on every read and write); rmu and wmu keep one Read and one
// Write at a time on it, as the descriptor's own locks would.
type conn struct {
	rw io.ReadWriter // its own methods report the poller's errors
	rc syscall.RawConn

	rmu    sync.Mutex
	rb     []byte        // guarded by rmu: the Read's buffer
	rn     int           // guarded by rmu: bytes read
	rerrno syscall.Errno // guarded by rmu
	readFn func(uintptr) bool

	wmu     sync.Mutex
	wb      []byte        // guarded by wmu: the Write's bytes
	wdone   int           // guarded by wmu: bytes written
	werrno  syscall.Errno // guarded by wmu
	writeFn func(uintptr) bool
}

func wrap(rw io.ReadWriter) io.ReadWriter {
	sc, ok := rw.(syscall.Conn)
	if !ok {
		return rw
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return rw
	}
	nonblocking := false
	if err := rc.Control(func(fd uintptr) {
		flags, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		nonblocking = e == 0 && flags&syscall.O_NONBLOCK != 0
	}); err != nil || !nonblocking {
		return rw
	}
	c := &conn{rw: rw, rc: rc}
	c.readFn, c.writeFn = c.read, c.write
	return c
}

// Read reads once: what the descriptor has, at most len(b) bytes; io.EOF
// when the peer has closed.
func (c *conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.rb, c.rn, c.rerrno = b, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerrno
	c.rb = nil
	c.rmu.Unlock()
	switch {
	case err != nil:
		// Closed, or past the deadline: the descriptor's own Read says
		// so in its usual words (or reads, if the deadline moved since).
		return c.rw.Read(b)
	case errno != 0:
		return 0, os.NewSyscallError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// read is the RawConn function of Read: false (wait in the poller) on
// EAGAIN, else true with rn or rerrno set.
func (c *conn) read(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rb[0])), uintptr(len(c.rb)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.rn, c.rerrno = int(r), e
		return true
	}
}

// Write writes all of b, waiting in the poller while the descriptor is
// full, under one hold of the write lock.
func (c *conn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	c.wb, c.wdone, c.werrno = b, 0, 0
	err := c.rc.Write(c.writeFn)
	done, errno := c.wdone, c.werrno
	c.wb = nil
	c.wmu.Unlock()
	if err != nil {
		n, err := c.rw.Write(b[done:]) // as in Read
		return done + n, err
	}
	if errno != 0 {
		return done, os.NewSyscallError("write", errno)
	}
	return done, nil
}

// write is the RawConn function of Write: it writes on from wdone until
// all of wb is written (true), EAGAIN (false: wait in the poller, then it
// is called again) or an error (true, werrno set).
func (c *conn) write(fd uintptr) bool {
	for c.wdone < len(c.wb) {
		p := c.wb[c.wdone:]
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == 0 && r == 0:
			c.werrno = syscall.EIO // no progress and no error: never loop on it
			return true
		case e == 0:
			c.wdone += int(r)
		case e == syscall.EINTR:
		case e == syscall.EAGAIN:
			return false
		default:
			c.werrno = e
			return true
		}
	}
	return true
}
