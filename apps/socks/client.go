package socks

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/apps/internal/approle"
	"github.com/skywire-mesh/skywire/internal/acceptloop"
)

// Client is socks-client: a local SOCKS5 listener whose connections
// become mesh streams to socks-server.
type Client struct {
	cfg ClientConfig
	log *slog.Logger
	g   *approle.Group
	app *appnet.Client  // g.App()
	ctx context.Context // g.Context(): done when the client stops
	ln  net.Listener

	conns tracker

	// serverV1 is set once the server turned out to know stream header
	// version 1 only.
	serverV1 atomic.Bool

	assocMu sync.Mutex
	assocs  map[uint32]*clientAssoc // guarded by assocMu
}

// NewClient validates cfg, registers socks-client with the node and
// opens the SOCKS listener. The client serves once Run is called; Close
// releases it.
func NewClient(ctx context.Context, cfg ClientConfig, log *slog.Logger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g, err := approle.Connect(ctx, cfg.NodeSocket, ClientAppName, cfg.Port, log)
	if err != nil {
		return nil, fmt.Errorf("socks: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("socks: %w", err)
	}
	c := &Client{cfg: cfg, log: log, g: g, app: g.App(), ctx: g.Context(), ln: ln, assocs: map[uint32]*clientAssoc{}}
	g.OnClose(func() {
		ln.Close()
		c.conns.closeAll()
	})
	return c, nil
}

// Addr is the address of the SOCKS listener.
func (c *Client) Addr() net.Addr { return c.ln.Addr() }

// Stats returns the client's counters.
func (c *Client) Stats() Stats { return c.conns.stats() }

// Run serves until ctx is done (nil) or the node goes away
// (appnet.ErrNodeLost); it closes the client before returning.
func (c *Client) Run(ctx context.Context) error {
	defer c.Close()
	c.g.Go(c.acceptLoop)
	if c.cfg.Port != 0 {
		c.g.Go(c.datagramLoop)
		c.g.Go(c.refuseStreams)
	}
	c.log.Info("socks-client running", "listen", c.ln.Addr(), "server", c.cfg.Server.Short(), "server_port", c.cfg.ServerPort)
	if err := c.g.Run(ctx); err != nil {
		return fmt.Errorf("socks: %w", err)
	}
	return nil
}

// Close closes the listener and every connection, unregisters from the
// node and waits for the client's goroutines.
func (c *Client) Close() error { return c.g.Close() }

func (c *Client) acceptLoop() {
	acceptloop.Loop[net.Conn]{
		Accept: c.ln.Accept,
		Serve: func(conn net.Conn) bool {
			tc := c.conns.add(conn.RemoteAddr().String(), conn)
			if tc == nil {
				return false
			}
			c.g.Go(func() { c.serveConn(conn, tc) })
			return true
		},
		// Out of file descriptors and the like: back off.
		Failed: func(err error, d time.Duration) {
			c.log.Warn("accept SOCKS connection", "err", err, "retry_in", d)
		},
	}.Run(c.ctx)
}

// refuseStreams closes streams dialed to the client's UDP port: the
// client only dials.
func (c *Client) refuseStreams() {
	for {
		conn, from, err := c.app.Accept(c.ctx)
		if err != nil {
			return
		}
		c.log.Debug("closing unexpected incoming stream", "from", from.Short())
		conn.Close()
	}
}

// serveConn handles one SOCKS connection.
func (c *Client) serveConn(conn net.Conn, tc *trackedConn) {
	failed := true
	defer func() { c.conns.done(tc, failed) }()
	log := c.log.With("conn", tc.id, "from", conn.RemoteAddr().String())
	conn.SetDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	if err := c.negotiate(conn); err != nil {
		log.Info("closing SOCKS connection: handshake", "err", err)
		return
	}
	req, err := readRequest(conn)
	switch {
	case errors.Is(err, errAddrType):
		log.Info("refusing SOCKS request", "err", err)
		c.refuse(conn, ReplyAddrNotSupported)
		return
	case errors.Is(err, errEmptyName):
		log.Info("refusing SOCKS request", "err", err)
		c.refuse(conn, ReplyHostUnreachable)
		return
	case err != nil:
		log.Info("closing SOCKS connection: bad request", "err", err)
		return
	}
	log = log.With("target", req.Dst.String())
	// Reaching the server takes up to ConnectTimeout; the reply must
	// still be written after that.
	conn.SetDeadline(time.Now().Add(c.cfg.ConnectTimeout + c.cfg.HandshakeTimeout))
	switch req.Cmd {
	case cmdConnect:
		tc.setTarget("connect", req.Dst.String())
		failed = !c.connect(conn, req, tc, log)
	case cmdUDPAssociate:
		tc.setTarget("udp", req.Dst.String())
		if c.cfg.Port == 0 {
			log.Info("refusing UDP ASSOCIATE: socks_client.port is 0")
			c.refuse(conn, ReplyCmdNotSupported)
			return
		}
		failed = !c.associate(conn, req, tc, log)
	default:
		log.Info("refusing unsupported SOCKS command", "cmd", req.Cmd)
		c.refuse(conn, ReplyCmdNotSupported)
	}
}

// Bounds on what refuse reads after its reply.
const (
	refuseLinger = 2 * time.Second
	refuseDrain  = 64 << 10
)

// refuse counts rep and refuses the request with it.
func (c *Client) refuse(conn net.Conn, rep Reply) {
	c.conns.replied(rep)
	refuse(conn, rep)
}

// refuse answers a SOCKS request with a failure reply and ends the
// connection with FIN, not RST: it half-closes after the reply and reads
// (and drops) what the application still sends, until it closes too, for
// at most refuseLinger and refuseDrain bytes. Closing a socket with
// unread input resets the connection, and the application may then get
// ECONNRESET instead of the reply. The caller closes conn.
func refuse(conn net.Conn, rep Reply) {
	if _, err := conn.Write(appendReply(nil, rep, addr{})); err != nil {
		return
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	conn.SetReadDeadline(time.Now().Add(refuseLinger))
	io.Copy(io.Discard, io.LimitReader(conn, refuseDrain))
}

// negotiate does method selection and, if configured, RFC 1929 auth.
func (c *Client) negotiate(conn net.Conn) error {
	methods, err := readGreeting(conn)
	if err != nil {
		return err
	}
	want := byte(methodNoAuth)
	if c.cfg.Username != "" {
		want = methodUserPass
	}
	offered := false
	for _, m := range methods {
		if m == want {
			offered = true
		}
	}
	if !offered {
		conn.Write([]byte{socksVersion, methodNoAcceptable})
		return fmt.Errorf("no acceptable method: offered %x, want %#x", methods, want)
	}
	if _, err := conn.Write([]byte{socksVersion, want}); err != nil {
		return fmt.Errorf("write method: %w", err)
	}
	if want != methodUserPass {
		return nil
	}
	user, pass, err := readAuth(conn)
	if err != nil {
		return err
	}
	okUser := subtle.ConstantTimeCompare([]byte(user), []byte(c.cfg.Username))
	okPass := subtle.ConstantTimeCompare([]byte(pass), []byte(c.cfg.Password))
	if okUser&okPass != 1 {
		conn.Write([]byte{authVersion, 1})
		return fmt.Errorf("%w for user %q", ErrAuth, user)
	}
	if _, err := conn.Write([]byte{authVersion, 0}); err != nil {
		return fmt.Errorf("write auth status: %w", err)
	}
	return nil
}

// ErrAuth is a SOCKS application's wrong username or password.
var ErrAuth = errors.New("socks authentication failed")

// openStream dials the server, sends the header and reads the reply. On
// failure it returns the SOCKS reply for the application. It asks for a
// version 2 reply (with the bound address); a server that closes the
// stream without any reply is taken for an older one, which knows
// version 1 only: the client asks again, and from then on, with version
// 1 (bound addresses are then unknown).
func (c *Client) openStream(req request, tc *trackedConn, log *slog.Logger) (net.Conn, uint32, addr, Reply) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ConnectTimeout)
	defer cancel()
	for {
		ver := byte(streamVersion2)
		if c.serverV1.Load() {
			ver = streamVersion1
		}
		stream, assoc, bnd, rep, err := c.tryStream(ctx, ver, req, tc, log)
		if err != nil && ver == streamVersion2 && errors.Is(err, io.EOF) && ctx.Err() == nil {
			if !c.serverV1.Swap(true) {
				log.Info("socks-server closed the stream without a reply: asking again with stream header version 1 (an older socks-server?); bound addresses are unknown from now on", "err", err)
			}
			continue
		}
		if err != nil {
			log.Warn("read socks-server reply", "err", err)
		}
		return stream, assoc, bnd, rep
	}
}

// tryStream is one attempt of openStream with header version ver. err is
// set when the reply could not be read.
func (c *Client) tryStream(ctx context.Context, ver byte, req request, tc *trackedConn, log *slog.Logger) (net.Conn, uint32, addr, Reply, error) {
	stream, err := c.app.Dial(ctx, c.cfg.Server, c.cfg.ServerPort)
	if err != nil {
		log.Warn("cannot reach socks-server", "server", c.cfg.Server.Short(), "port", c.cfg.ServerPort, "err", err)
		return nil, 0, addr{}, ReplyGeneralFailure, nil
	}
	if !tc.attach(stream) {
		return nil, 0, addr{}, ReplyGeneralFailure, nil
	}
	dl, _ := ctx.Deadline()
	stream.SetDeadline(dl)
	hdr, err := appendStreamHeader(nil, ver, req)
	if err != nil {
		log.Info("cannot encode request", "err", err)
		return nil, 0, addr{}, ReplyGeneralFailure, nil
	}
	if _, err := stream.Write(hdr); err != nil {
		log.Warn("send request to socks-server", "err", err)
		return nil, 0, addr{}, ReplyGeneralFailure, nil
	}
	rep, assoc, bnd, err := readStreamReply(stream, ver)
	if err != nil {
		stream.Close()
		return nil, 0, addr{}, ReplyGeneralFailure, err
	}
	if rep != ReplySucceeded {
		log.Info("socks-server refused", "reply", rep)
		return nil, 0, addr{}, rep, nil
	}
	stream.SetDeadline(time.Time{})
	return stream, assoc, bnd, ReplySucceeded, nil
}

// connect serves CONNECT; it reports whether data flowed.
func (c *Client) connect(conn net.Conn, req request, tc *trackedConn, log *slog.Logger) bool {
	stream, _, bnd, rep := c.openStream(req, tc, log)
	if rep != ReplySucceeded {
		c.refuse(conn, rep)
		return false
	}
	// BND.ADDR and BND.PORT: the server's end of its connection to the
	// target (0.0.0.0:0 from an older server).
	c.conns.replied(ReplySucceeded)
	if _, err := conn.Write(appendReply(nil, ReplySucceeded, bnd)); err != nil {
		return false
	}
	conn.SetDeadline(time.Time{})
	if err := relay(conn, stream, &tc.up, &tc.down); err != nil {
		log.Debug("relay ended", "err", err, "up", tc.up.Load(), "down", tc.down.Load())
	}
	return true
}

// clientAssoc is one UDP association: a local UDP socket for the
// application, tied to a stream to the server.
type clientAssoc struct {
	id   uint32
	udp  *net.UDPConn
	tc   *trackedConn
	peer atomic.Pointer[netip.AddrPort] // the application's UDP address, from its first datagram
}

// associate serves UDP ASSOCIATE for the life of the SOCKS connection;
// it reports whether the association was set up.
func (c *Client) associate(conn net.Conn, req request, tc *trackedConn, log *slog.Logger) bool {
	local, _ := netip.ParseAddrPort(conn.LocalAddr().String())
	appAddr, _ := netip.ParseAddrPort(conn.RemoteAddr().String())
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local.Addr().Unmap(), 0)))
	if err != nil {
		log.Warn("UDP associate: listen", "err", err)
		c.refuse(conn, ReplyGeneralFailure)
		return false
	}
	if !tc.attach(udp) {
		return false
	}
	stream, id, _, rep := c.openStream(req, tc, log)
	if rep != ReplySucceeded {
		c.refuse(conn, rep)
		return false
	}
	a := &clientAssoc{id: id, udp: udp, tc: tc}
	c.assocMu.Lock()
	c.assocs[id] = a
	c.assocMu.Unlock()
	defer func() {
		c.assocMu.Lock()
		if c.assocs[id] == a {
			delete(c.assocs, id)
		}
		c.assocMu.Unlock()
	}()
	bnd, _ := netip.ParseAddrPort(udp.LocalAddr().String())
	c.conns.replied(ReplySucceeded)
	if _, err := conn.Write(appendReply(nil, ReplySucceeded, addr{IP: bnd.Addr().Unmap(), Port: bnd.Port()})); err != nil {
		return true
	}
	conn.SetDeadline(time.Time{})
	log = log.With("assoc", id, "udp", bnd)
	log.Debug("UDP association open")

	// The association ends when the application closes its TCP
	// connection or the server closes the stream.
	var wg sync.WaitGroup
	wg.Go(func() {
		io.Copy(io.Discard, stream)
		tc.close()
	})
	wg.Go(func() { c.assocToServer(a, appAddr.Addr().Unmap(), req.Dst, log) })
	io.Copy(io.Discard, conn)
	tc.close()
	wg.Wait()
	log.Debug("UDP association closed", "up", tc.up.Load(), "down", tc.down.Load())
	return true
}

// assocToServer forwards the application's datagrams to the server. Only
// datagrams from the application's IP (and the port it announced, if
// any) are taken; the first one fixes its address.
func (c *Client) assocToServer(a *clientAssoc, appIP netip.Addr, announced addr, log *slog.Logger) {
	buf := make([]byte, appnet.MaxDatagram)
	binary.BigEndian.PutUint32(buf, a.id)
	for {
		n, src, err := a.udp.ReadFromUDPAddrPort(buf[4:])
		if err != nil {
			return
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if src.Addr() != appIP || (announced.Port != 0 && src.Port() != announced.Port) {
			log.Debug("dropping UDP datagram from a stranger", "src", src)
			continue
		}
		if p := a.peer.Load(); p == nil {
			a.peer.Store(&src)
		} else if *p != src {
			log.Debug("dropping UDP datagram from another port", "src", src)
			continue
		}
		frag, _, data, err := parseUDPHeader(buf[4 : 4+n])
		if err != nil || frag != 0 {
			log.Debug("dropping UDP datagram", "err", err, "frag", frag)
			continue
		}
		if err := c.app.SendDatagram(c.cfg.Server, c.cfg.ServerPort, buf[:4+n]); err != nil {
			log.Debug("send datagram to server", "err", err)
			continue
		}
		a.tc.up.Add(uint64(len(data)))
	}
}

// datagramLoop passes the server's datagrams to the applications.
func (c *Client) datagramLoop() {
	for {
		b, from, port, err := c.app.ReadDatagram(c.ctx)
		if err != nil {
			return
		}
		if from != c.cfg.Server || port != c.cfg.ServerPort || len(b) < 4 {
			c.log.Debug("dropping datagram", "from", from.Short(), "port", port)
			continue
		}
		id := binary.BigEndian.Uint32(b)
		c.assocMu.Lock()
		a := c.assocs[id]
		c.assocMu.Unlock()
		if a == nil {
			continue
		}
		peer := a.peer.Load()
		_, _, data, err := parseUDPHeader(b[4:])
		if peer == nil || err != nil {
			continue
		}
		if _, err := a.udp.WriteToUDPAddrPort(b[4:], *peer); err == nil {
			a.tc.down.Add(uint64(len(data)))
		}
	}
}
