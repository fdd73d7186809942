//go:build linux || darwin || freebsd || netbsd || openbsd

package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/skywire-mesh/skywire/viscript/control"
)

// runTTY runs the interactive shell on the terminal f.
func runTTY(ctx context.Context, c control.Controller, f *os.File, o Options) error {
	fd := int(f.Fd())
	src, err := newPollReader(fd)
	if err != nil {
		return fmt.Errorf("shell: terminal input: %w", err)
	}
	defer src.close()
	old, err := term.MakeRaw(fd)
	if err != nil {
		return fmt.Errorf("shell: raw terminal mode: %w", err)
	}
	defer term.Restore(fd, old)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	defer signal.Stop(winch)
	in := startInput(ctx, src, src.interrupt)
	defer in.stop()
	size := termSize{get: func() (int, int, error) { return term.GetSize(fd) }, resized: winch}
	return interactive(ctx, c, in, o.Out, size, o)
}

// pollReader reads a file descriptor without changing its blocking mode
// (stdin often shares its open file description with stdout), and can be
// interrupted through a pipe.
type pollReader struct {
	fd           int
	wakeR, wakeW int
}

func newPollReader(fd int) (*pollReader, error) {
	// Pipe + fcntl rather than Pipe2, which only Linux and some BSDs have.
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	for _, f := range p {
		unix.CloseOnExec(f)
		if err := unix.SetNonblock(f, true); err != nil {
			unix.Close(p[0])
			unix.Close(p[1])
			return nil, fmt.Errorf("pipe: %w", err)
		}
	}
	return &pollReader{fd: fd, wakeR: p[0], wakeW: p[1]}, nil
}

func (p *pollReader) Read(b []byte) (int, error) {
	for {
		fds := []unix.PollFd{
			{Fd: int32(p.fd), Events: unix.POLLIN},
			{Fd: int32(p.wakeR), Events: unix.POLLIN},
		}
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return 0, fmt.Errorf("poll terminal: %w", err)
		}
		if fds[1].Revents != 0 {
			return 0, errInputInterrupted
		}
		if fds[0].Revents == 0 {
			continue
		}
		n, err := unix.Read(p.fd, b)
		switch {
		case errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN):
			continue
		case err != nil:
			return 0, fmt.Errorf("read terminal: %w", err)
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// interrupt makes a blocked Read (and every later one) return.
func (p *pollReader) interrupt() { _, _ = unix.Write(p.wakeW, []byte{0}) }

func (p *pollReader) close() {
	unix.Close(p.wakeR)
	unix.Close(p.wakeW)
}
