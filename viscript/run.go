package viscript

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/skywire-mesh/skywire/viscript/control"
)

const (
	syscallSIGTERM = syscall.SIGTERM
	syscallSIGKILL = syscall.SIGKILL
)

// Run serves the signal socket (STATE/signal.sock), the control socket
// (STATE/control.sock, 0600), if configured the control protocol on
// ControlTCP (token required), and with a NodeSocket the control protocol
// on the mesh to Admins (viscript/remote), until ctx is done or a listener fails. It
// then stops every non-daemon app, closes everything and releases the
// state directory (it calls Close).
func (s *Supervisor) Run(ctx context.Context) error {
	fail := func(err error, lns ...net.Listener) error {
		for _, ln := range lns {
			ln.Close()
		}
		return errors.Join(err, s.Close())
	}
	sigLn, err := control.ListenUnix(s.path(signalSock))
	if err != nil {
		return fail(fmt.Errorf("listen signal socket: %w", err))
	}
	ctrlLn, err := control.ListenUnix(s.ControlPath())
	if err != nil {
		return fail(fmt.Errorf("listen control socket: %w", err), sigLn)
	}
	var tcpLn net.Listener
	if s.cfg.ControlTCP != "" {
		tcpLn, err = net.Listen("tcp", s.cfg.ControlTCP)
		if err != nil {
			return fail(fmt.Errorf("listen control tcp %s: %w", s.cfg.ControlTCP, err), sigLn, ctrlLn)
		}
	}
	ctrl := control.NewServer(s, s.log.With("part", "control"), "")
	var tcpCtrl *control.Server
	if tcpLn != nil {
		tcpCtrl = control.NewServer(s, s.log.With("part", "control-tcp"), s.cfg.ControlToken)
	}

	var (
		wg       sync.WaitGroup
		stopping atomic.Bool
		errc     = make(chan error, 3)
	)
	serve := func(what string, f func() error) {
		wg.Go(func() {
			if err := f(); err != nil && !stopping.Load() {
				errc <- fmt.Errorf("serve %s: %w", what, err)
			}
		})
	}
	serve("signal", func() error { return s.sig.Serve(sigLn) })
	serve("control", func() error { return ctrl.Serve(ctrlLn) })
	if tcpCtrl != nil {
		serve("control tcp", func() error { return tcpCtrl.Serve(tcpLn) })
	}
	s.log.Info("viscript running", "state_dir", s.cfg.StateDir, "control", s.ControlPath(),
		"signal", s.SignalAddr(), "control_tcp", s.cfg.ControlTCP)
	remoteCtx, stopRemote := context.WithCancel(ctx)
	defer stopRemote()
	remoteDone := make(chan struct{})
	if s.remote != nil {
		go func() {
			defer close(remoteDone)
			_ = s.remote.Run(remoteCtx) // returns nil when remoteCtx ends
		}()
	} else {
		close(remoteDone)
	}
	autoCtx, stopAuto := context.WithCancel(ctx)
	defer stopAuto()
	if s.cfg.Autostart {
		// The signal socket is up: apps started after others can ping them.
		wg.Go(func() { s.autostart(autoCtx) })
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	stopping.Store(true)
	stopAuto()
	// No new control requests; then stop apps while the signal server
	// still runs (Close closes it last).
	ctrl.Close()
	if tcpCtrl != nil {
		tcpCtrl.Close()
	}
	stopRemote()
	<-remoteDone
	closeErr := s.Close()
	wg.Wait()
	return errors.Join(runErr, closeErr)
}
