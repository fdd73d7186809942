package appserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/internal/wire"
	"github.com/skywire-mesh/skywire/keys"
)

// kill closes the control connection, the port and every pending stream;
// the app's loops then exit. Safe to call more than once.
//
// Established streams are not closed here: each has its own connection,
// which ends when the app closes it or its process dies (the kernel closes
// it then). Closing them here would throw away what the app wrote just
// before it disconnected and is still in the socket buffer: a sender that
// half-closes, then exits, must still have every byte delivered.
func (a *app) kill() {
	a.mu.Lock()
	if a.dead {
		a.mu.Unlock()
		return
	}
	a.dead = true
	pend := a.pending
	a.pending = map[uint64]*pending{}
	a.mu.Unlock()
	a.cancel()
	a.conn.Close()
	a.release()
	for _, p := range pend {
		p.timer.Stop()
		p.conn.Close()
	}
}

// release closes the app's mesh port.
func (a *app) release() {
	if a.ln != nil {
		a.ln.Close()
	}
	if a.pc != nil {
		a.pc.Close()
	}
}

// write writes one frame on the control connection.
func (a *app) write(frame []byte) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return a.writeLocked(frame)
}

// writeLocked bounds each write by the write timeout without re-arming
// the deadline per datagram (a timer update each time): the deadline is
// pushed forward only once half of it has passed, so every write still
// gets at least half the timeout and a stuck app is dropped after at most
// the whole of it.
func (a *app) writeLocked(frame []byte) error {
	if now := time.Now(); now.Sub(a.wdlSet) >= a.s.writeTimeout/2 {
		a.conn.SetWriteDeadline(now.Add(a.s.writeTimeout))
		a.wdlSet = now
	}
	if _, err := a.rw.Write(frame); err != nil {
		return fmt.Errorf("write to app: %w", err)
	}
	return nil
}

// readLoop reads the control connection until the app closes it or sends
// something malformed.
func (a *app) readLoop() {
	fr := wire.NewFrameReader(bufio.NewReaderSize(a.rw, 256<<10))
	for {
		t, body, err := fr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return
			}
			a.log.Warn("app connection closed: bad frame", "err", err)
			return
		}
		if t != wire.TypeDatagram {
			a.log.Warn("app connection closed: unexpected frame on control connection", "type", t)
			return
		}
		d, err := wire.DecodeDatagram(body)
		if err != nil {
			a.log.Warn("app connection closed: bad datagram", "err", err)
			return
		}
		if a.pc == nil {
			a.log.Warn("app connection closed: datagram from an app without a port")
			return
		}
		a.dgramsOut.Add(1)
		a.bytesOut.Add(uint64(len(d.Payload)))
		if err := a.pc.WriteTo(d.Payload, d.Key, d.Port); err != nil {
			a.log.Debug("datagram not sent", "to", d.Key.Short(), "port", d.Port, "err", err)
		}
	}
}

// acceptLoop announces the mesh streams to the app's port.
func (a *app) acceptLoop() {
	var frame []byte
	for {
		conn, from, err := a.ln.Accept(a.ctx)
		if err != nil {
			if a.ctx.Err() == nil {
				a.log.Warn("app disconnected: mesh listener failed", "err", err)
				a.kill()
			}
			return
		}
		a.mu.Lock()
		if a.dead {
			a.mu.Unlock()
			conn.Close()
			return
		}
		if len(a.pending) >= a.s.maxPending {
			a.mu.Unlock()
			conn.Close()
			a.log.Warn("incoming stream refused: too many waiting for accept", "from", from.Short())
			continue
		}
		a.nextID++
		id := a.nextID
		a.pending[id] = &pending{conn: conn, from: from, timer: time.AfterFunc(a.s.acceptTimeout, func() { a.expire(id) })}
		a.mu.Unlock()
		frame, err = wire.AppendFrame(frame[:0], &wire.Incoming{ID: id, Key: wire.Key(from)})
		if err == nil {
			err = a.write(frame)
		}
		if err != nil {
			a.log.Info("app disconnected: announce stream", "err", err)
			a.kill()
			return
		}
	}
}

// expire closes an announced stream the app did not accept in time.
func (a *app) expire(id uint64) {
	a.mu.Lock()
	p := a.pending[id]
	delete(a.pending, id)
	a.mu.Unlock()
	if p != nil {
		p.conn.Close()
		a.log.Info("incoming stream closed: not accepted in time", "from", p.from.Short(), "id", id)
	}
}

// maxQueuedOut bounds the datagram frames waiting for datagramWriter;
// beyond it datagrams are dropped, as the node drops them when the app
// reads too slowly. 4 MiB like the session's and the app client's queues:
// at 1 MiB (16 of the VPN's 64 KiB TCP super-packets) a single iperf3
// flow through the VPN lost ~40 datagrams in 3 s, none at 4 MiB.
const maxQueuedOut = 4 << 20

// packetLoop forwards the datagrams of the app's port to datagramWriter
// when the mesh queues them for ReadFrom (not a PacketFuncMesh).
func (a *app) packetLoop() {
	for {
		b, from, port, err := a.pc.ReadFrom(a.ctx)
		if err != nil {
			if a.ctx.Err() == nil {
				a.log.Warn("app disconnected: mesh packet conn failed", "err", err)
				a.kill()
			}
			return
		}
		a.deliverDatagram(b, from, port)
	}
}

// deliverDatagram queues a datagram of the app's port for datagramWriter,
// or drops it (logged at debug) when it is too large for the app's
// connection or the app reads too slowly. It copies b and never blocks.
func (a *app) deliverDatagram(b []byte, from keys.PublicKey, port uint16) {
	if len(b) > wire.MaxDatagram {
		a.log.Debug("datagram too large for the app dropped", "from", from.Short(), "size", len(b))
		return
	}
	if !a.out.AppendDatagram(from, port, b, false) {
		a.log.Debug("datagram dropped: app reads too slowly", "from", from.Short(), "size", len(b))
		return
	}
	a.dgramsIn.Add(1)
	a.bytesIn.Add(uint64(len(b)))
}

// datagramWriter writes the queued datagram frames to the app, all that
// have gathered in one write, until the app goes away.
func (a *app) datagramWriter() {
	if err := a.out.Run(a.ctx.Done(), a.write); err != nil {
		a.log.Info("app disconnected: deliver datagram", "err", err)
		a.kill()
	}
}

// addStream records a stream; false once the app is gone or at its limit.
func (a *app) addStream(st *stream) appnet.Code {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dead {
		return appnet.CodeClosed
	}
	if len(a.streams) >= a.s.maxStreams {
		return appnet.CodeLimit
	}
	a.streams[st] = struct{}{}
	return appnet.CodeOK
}

func (a *app) removeStream(st *stream) {
	a.mu.Lock()
	delete(a.streams, st)
	a.mu.Unlock()
}

func (a *app) takePending(id uint64) *pending {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pending[id]
	if p == nil || !p.timer.Stop() {
		return nil // unknown, or expire is closing it
	}
	delete(a.pending, id)
	return p
}

// serveDial dials the mesh for an app and joins the streams.
func (s *Server) serveDial(c net.Conn, d *wire.Dial) {
	a := s.lookup(d.Token)
	remote := keys.PublicKey(d.Key)
	if a == nil {
		s.log.Warn("stream refused: unknown app token")
		s.refuse(c, appnet.CodeBadRequest, "unknown app token: register first")
		return
	}
	if d.Port == 0 {
		s.refuse(c, appnet.CodeBadRequest, "dial to port 0")
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, s.dialTimeout)
	mc, err := s.mesh.Dial(ctx, remote, uint16(d.Port))
	cancel()
	if err != nil {
		code := appnet.CodeOf(err)
		if a.ctx.Err() != nil {
			code = appnet.CodeClosed
		}
		a.log.Debug("dial failed", "to", remote.Short(), "port", d.Port, "code", code, "err", err)
		s.refuse(c, code, err.Error())
		return
	}
	s.join(a, c, mc, "dial "+remote.Short())
}

// serveAccept joins an announced stream to the app's new connection.
func (s *Server) serveAccept(c net.Conn, acc *wire.Accept) {
	a := s.lookup(acc.Token)
	if a == nil {
		s.log.Warn("stream refused: unknown app token")
		s.refuse(c, appnet.CodeBadRequest, "unknown app token: register first")
		return
	}
	p := a.takePending(acc.ID)
	if p == nil {
		s.refuse(c, appnet.CodeUnknownStream, fmt.Sprintf("no incoming stream %d", acc.ID))
		return
	}
	s.join(a, c, p.conn, "accept "+p.from.Short())
}

var okFrame = []byte{0, 0, 0, 1, byte(wire.TypeOK)}

// join answers OK and copies bytes both ways until both directions are
// done or one fails.
func (s *Server) join(a *app, c, mc net.Conn, what string) {
	st := &stream{app: c, mesh: mc}
	if code := a.addStream(st); code != appnet.CodeOK {
		mc.Close()
		s.refuse(c, code, "app stream refused")
		return
	}
	defer a.removeStream(st)
	defer st.close()
	c.SetWriteDeadline(time.Now().Add(s.helloTimeout))
	if _, err := c.Write(okFrame); err != nil {
		a.log.Debug("stream closed before ok", "stream", what, "err", err)
		return
	}
	c.SetWriteDeadline(time.Time{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(st, mc, c, &a.bytesOut)
	}()
	pipe(st, c, mc, &a.bytesIn)
	<-done
}

// pipe copies src to dst. At EOF it half-closes dst (or closes it, if dst
// cannot half-close); on an error it closes the whole stream so that the
// other direction stops too.
//
// An idle stream waits in Read with a small buffer of its own; once reads
// fill it, the stream borrows a large pooled buffer and gives it back when
// the flow slows down. So 1,000 idle streams cost 4 MB of buffers, not
// 128 MB, and a bulk stream still moves 64 KiB per system call.
func pipe(st *stream, dst, src net.Conn, count *atomic.Uint64) {
	small := make([]byte, smallBuffer)
	var big *[]byte
	defer func() {
		if big != nil {
			bufPool.Put(big)
		}
	}()
	for {
		buf := small
		if big != nil {
			buf = *big
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			count.Add(uint64(n)) // before the write, so whoever sees the bytes sees the count
			if _, err := dst.Write(buf[:n]); err != nil {
				st.close()
				return
			}
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				st.close()
				return
			}
			if cw, ok := dst.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
				st.close()
			}
			return
		}
		switch {
		case big == nil && n == len(small):
			big = bufPool.Get().(*[]byte)
		case big != nil && n < len(*big)/8:
			bufPool.Put(big)
			big = nil
		}
	}
}
