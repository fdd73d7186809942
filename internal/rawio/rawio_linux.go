package rawio

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

type conn struct {
	rw io.ReadWriter // its own methods report the poller's errors
	rc syscall.RawConn
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
	return &conn{rw: rw, rc: rc}
}

// Read reads once: what the descriptor has, at most len(b) bytes; io.EOF
// when the peer has closed.
func (c *conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait in the poller
			}
			n, errno = int(r), e
			return true
		}
	})
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

// Write writes all of b, waiting in the poller while the descriptor is
// full, under one hold of the write lock.
func (c *conn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	done := 0
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for done < len(b) {
			p := b[done:]
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch {
			case e == 0 && r == 0:
				errno = syscall.EIO // no progress and no error: never loop on it
				return true
			case e == 0:
				done += int(r)
			case e == syscall.EINTR:
			case e == syscall.EAGAIN:
				return false // wait in the poller, then go on
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err != nil {
		n, err := c.rw.Write(b[done:]) // as in Read
		return done + n, err
	}
	if errno != 0 {
		return done, os.NewSyscallError("write", errno)
	}
	return done, nil
}
