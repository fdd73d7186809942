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
// take picks the counters of the tunnel a packet belongs to, or nil to
// drop it (take counts and logs that drop itself); it sees the IP packet
// a datagram carries (for a GSO datagram, the whole super-packet). Runs of
// TCP segments wait in the writer's coalescer while more datagrams are
// queued, and are written when the queue is empty.
func meshToTun(ctx context.Context, log *slog.Logger, app *appnet.Client, dev Device, take func(b []byte, from keys.PublicKey, port uint16) *counters) {
	w := newTunWriter(dev)
	var held *counters // the tunnel of the segments the writer may hold
	for {
		if held != nil && app.BufferedDatagrams() == 0 {
			if err := w.flush(); err != nil {
				held.drop(dropTUNWrite)
				log.Debug("tun write failed", "err", err)
			}
			held = nil
		}
		b, from, port, err := app.ReadDatagram(ctx)
		if err != nil {
			return
		}
		pkt, mss, p, err := decodeDatagram(b)
		if err != nil {
			// take sees the datagram as it came (not an IP packet) and
			// drops it.
			log.Debug("malformed datagram", "err", err)
			pkt, mss = b, 0
		}
		ctr := take(pkt, from, port)
		if ctr == nil {
			app.ReuseDatagram(b)
			continue
		}
		if held != nil && held != ctr {
			if err := w.flush(); err != nil {
				held.drop(dropTUNWrite)
			}
		}
		// The writer copies what it keeps (the coalescer's run, the
		// virtio header's room): b is free after it.
		err = w.write(pkt, mss, p)
		n, segs := len(pkt), segments(pkt, p, mss)
		app.ReuseDatagram(b)
		if err != nil {
			ctr.drop(dropTUNWrite)
			log.Debug("tun write failed", "err", err)
			continue
		}
		held = ctr
		ctr.in(n, segs)
		if mss != 0 {
			ctr.gsoIn.Add(1)
		}
	}
}

// tunToMesh sends the packets dev reads as datagrams. route picks each
// packet's destination, the counters of its tunnel (nil to drop it;
// route counts that drop itself) and whether the peer takes GSO
// datagrams. A TCP super-packet goes whole as one GSO datagram to a peer
// that takes them (as two or more if it does not fit in one), and as
// plain segments to one that does not. It returns when the device fails
// or closes, or app closes (nil).
func tunToMesh(app *appnet.Client, dev Device, route func(b []byte) (to keys.PublicKey, port uint16, ctr *counters, gso bool)) error {
	r := newTunReader(dev)
	var seg []byte
	for {
		pkt, mss, p, err := r.read()
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			return err
		}
		to, port, ctr, gso := route(pkt)
		if ctr == nil {
			continue
		}
		gso = gso && mss >= minGSOSize // the peer refuses smaller segments
		send := func(b []byte) error {
			if err := app.SendDatagram(to, port, b); err != nil {
				ctr.drop(dropSend)
				return err
			}
			return nil
		}
		switch {
		case mss == 0:
			err = send(pkt)
		case p.udp: // USO: read in one call, sent as datagrams
			seg, err = segmentUDP(seg, 0, pkt, p, mss, send)
		case gso && gsoDgramHdrLen+len(pkt) <= maxDatagram:
			// In place: the header goes in the room before the packet.
			b := r.buf[virtioHdrLen-gsoDgramHdrLen : virtioHdrLen+len(pkt)]
			putGSOHeader(b, mss)
			if err = send(b); err == nil {
				ctr.gsoOut.Add(1)
			}
		case gso:
			per := max(1, (maxDatagram-gsoDgramHdrLen-p.hdrLen())/mss)
			seg, err = segmentTCP(seg, gsoDgramHdrLen, pkt, p, mss, per, func(b []byte) error {
				if len(b)-gsoDgramHdrLen-p.hdrLen() <= mss {
					return send(b[gsoDgramHdrLen:])
				}
				putGSOHeader(b, mss)
				if err := send(b); err != nil {
					return err
				}
				ctr.gsoOut.Add(1)
				return nil
			})
		default:
			seg, err = segmentTCP(seg, 0, pkt, p, mss, 1, send)
		}
		if errors.Is(err, appnet.ErrClosed) {
			return nil
		}
		if err == nil {
			ctr.out(len(pkt), segments(pkt, p, mss))
		}
	}
}
