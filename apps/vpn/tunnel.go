package vpn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/keys"
)

// cleanupTimeout bounds taking a tunnel down.
const cleanupTimeout = 10 * time.Second

// tunnelSetup is a TUN device and the changes a role made to the host for it
// (address, routes, forwarding, masquerade), each recorded with its undo
// as soon as it is in place. Close undoes them in reverse order, closing
// the device last: the shape of wireguard-go's device.Close. A role
// builds one with openTunnel and its own set-up steps, runs its packet
// loops over dev, and closes it when it stops.
type tunnelSetup struct {
	dev    Device
	nc     NetConfig
	routes []Route                       // the routes added, in order
	undo   []func(context.Context) error // the undo of each change, in the order made

	closeOnce sync.Once
	closeErr  error
}

// openTunnel opens (creates) the device called name.
func openTunnel(open OpenFunc, nc NetConfig, name string) (*tunnelSetup, error) {
	dev, err := open(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDevice, err)
	}
	t := &tunnelSetup{dev: dev, nc: nc}
	t.onClose(func(context.Context) error {
		if err := dev.Close(); err != nil {
			return fmt.Errorf("close %s: %w", dev.Name(), err)
		}
		return nil
	})
	return t, nil
}

// onClose records undo as the undo of the latest change.
func (t *tunnelSetup) onClose(undo func(context.Context) error) { t.undo = append(t.undo, undo) }

// addRoute adds r and records its removal.
func (t *tunnelSetup) addRoute(ctx context.Context, r Route) error {
	if err := t.nc.AddRoute(ctx, r); err != nil {
		return err
	}
	t.routes = append(t.routes, r)
	t.onClose(func(ctx context.Context) error { return t.nc.DelRoute(ctx, r) })
	return nil
}

// Close undoes every change in reverse order and closes the device; it
// returns what failed. Only the first call does it; later calls return
// the same error. Routes go before the device: the kernel drops a
// device's routes with it, and deleting them then fails.
func (t *tunnelSetup) Close() error {
	t.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		var errs []error
		for i := len(t.undo) - 1; i >= 0; i-- {
			if err := t.undo[i](ctx); err != nil {
				errs = append(errs, err)
			}
		}
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}

// logDropped says how many datagrams the node dropped because the
// role's packet loop did not read them fast enough.
func logDropped(log *slog.Logger, app *appnet.Client) {
	if d, _ := app.Dropped(); d > 0 {
		log.Info("datagrams dropped because the tunnel did not read them fast enough", "count", d)
	}
}

// meshToTun writes the datagrams app reads to dev until ctx is done.
// take picks the counters of the tunnel a datagram belongs to, or nil to
// drop it (take counts and logs that drop itself).
func meshToTun(ctx context.Context, log *slog.Logger, app *appnet.Client, dev Device, take func(b []byte, from keys.PublicKey, port uint16) *counters) {
	for {
		b, from, port, err := app.ReadDatagram(ctx)
		if err != nil {
			return
		}
		ctr := take(b, from, port)
		if ctr == nil {
			continue
		}
		if _, err := dev.Write(b); err != nil {
			ctr.dropped.Add(1)
			log.Debug("tun write failed", "err", err)
			continue
		}
		ctr.in(len(b))
	}
}

// tunToMesh sends the packets dev reads as datagrams. route picks each
// packet's destination and the counters of its tunnel, or nil counters
// to drop it (route counts that drop itself). It returns when the device
// fails or closes, or app closes (nil).
func tunToMesh(app *appnet.Client, dev Device, route func(b []byte) (to keys.PublicKey, port uint16, ctr *counters)) error {
	buf := make([]byte, 1<<16)
	for {
		n, err := dev.Read(buf)
		if err != nil {
			return fmt.Errorf("read %s: %w", dev.Name(), err)
		}
		b := buf[:n]
		to, port, ctr := route(b)
		if ctr == nil {
			continue
		}
		if err := app.SendDatagram(to, port, b); err != nil {
			ctr.dropped.Add(1)
			if errors.Is(err, appnet.ErrClosed) {
				return nil
			}
			continue
		}
		ctr.out(n)
	}
}
