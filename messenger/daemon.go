package messenger

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/skywire-mesh/skywire/appnet"
	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/internal/ratelimit"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/messenger/internal/chatwire"
	"github.com/skywire-mesh/skywire/messenger/store"
)

// Limits of incoming streams.
const (
	maxStreams       = 64               // concurrent incoming streams
	maxStreamsPerKey = 2                // concurrent incoming streams from one key
	streamIdle       = 30 * time.Second // an incoming stream silent this long is closed
	shutdownGrace    = 2 * time.Second  // HTTP servers get this long to finish requests
	maxRateKeys      = 4096             // senders the rate limiter remembers (quiet ones are forgotten first)
)

// Errors of Send and the client functions (errors.Is).
var (
	ErrTooLarge    = errors.New("message too large")
	ErrInvalidUTF8 = errors.New("message is not valid UTF-8")
	ErrEmpty       = errors.New("empty message")
	ErrUnknownPeer = errors.New("not a public key or a known nickname")
	ErrUnknownNode = errors.New("node not in the directory")
	ErrNoDirectory = errors.New("no directory configured: the node's control socket is needed for peers and whois")
	ErrNotNodeName = errors.New("not a node name")
	ErrRunning     = errors.New("a messenger is already running with this state directory")
	ErrNotRunning  = errors.New("the messenger daemon is not running (start `skywire messenger serve`, or `start messenger` in viscript)")
	ErrBadRequest  = errors.New("bad request")
	// ErrBadNick is a nickname that is empty, too long, has spaces or
	// control characters, or looks like a key.
	ErrBadNick = store.ErrBadNick
)

// errRetryLater is a delivery attempt the receiver deferred.
var errRetryLater = errors.New("receiver asked to retry later")

// Run runs the messenger daemon until ctx is done: it registers with the
// local node on cfg.Port (reconnecting when the node goes away), delivers
// the outbox, accepts messages from other messengers, and serves the
// control socket and the web page. It returns after everything it started
// has stopped.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	err := cfg.Validate()
	if err == nil && cfg.NodeSocket == "" && os.Getenv(appnet.EnvNodeSocket) == "" {
		err = fmt.Errorf("%w: messenger.node_socket: empty and $%s is not set: the messenger needs its node's app socket", ErrConfig, appnet.EnvNodeSocket)
	}
	if err != nil {
		if cfg.WebListener != nil {
			cfg.WebListener.Close()
		}
		return err
	}
	d, err := start(ctx, cfg, log)
	if err != nil {
		if cfg.WebListener != nil {
			cfg.WebListener.Close()
		}
		return err
	}
	if cfg.OnStart != nil {
		cfg.OnStart(Daemon{d})
	}
	<-ctx.Done()
	return d.close()
}

// Daemon is a running messenger daemon, as Config.OnStart sees it.
type Daemon struct{ d *daemon }

// Stats are a messenger daemon's counters since it started, and what it
// holds now.
type Stats struct {
	Registered bool `json:"registered"` // registered with the node now
	// Sent counts messages the user sent (queued for delivery);
	// Delivered those the recipient acknowledged; Failed those it refused
	// for good (too large, …); Queued is how many wait for delivery now.
	Sent      uint64 `json:"sent"`
	Delivered uint64 `json:"delivered"`
	Failed    uint64 `json:"failed"`
	Queued    int    `json:"queued"`
	// DeliveryErrors counts delivery attempts that failed and will be
	// retried (peer unreachable, deferred).
	DeliveryErrors uint64 `json:"delivery_errors"`
	// Received counts messages from peers that were stored; Rejected
	// those answered with another code, by RejectReasons.
	Received uint64            `json:"received"`
	Rejected map[string]uint64 `json:"rejected,omitempty"`
	// Streams is how many incoming streams are open; StreamsRefused how
	// many were closed at once for being over the caps (64, 2 per key).
	Streams        int    `json:"streams"`
	StreamsRefused uint64 `json:"streams_refused"`
	// Deliveries is how many peers have a delivery worker now.
	Deliveries int `json:"deliveries"`
}

// rejectNames name the ack codes other than OK in Stats.Rejected.
var rejectNames = [...]string{
	chatwire.CodeDuplicate:   "duplicate",
	chatwire.CodeTooLarge:    "too_large",
	chatwire.CodeBadUTF8:     "bad_utf8",
	chatwire.CodeForged:      "forged",
	chatwire.CodeWrongPeer:   "wrong_peer",
	chatwire.CodeRateLimited: "rate_limited",
	chatwire.CodeBusy:        "busy",
	chatwire.CodeMalformed:   "malformed",
}

// RejectReasons lists the reasons in Stats.Rejected: "duplicate" (stored
// before), "too_large", "bad_utf8", "forged" (sender is not the session's
// key), "wrong_peer" (addressed to another key), "rate_limited", "busy"
// (could not be stored).
func RejectReasons() []string {
	var out []string
	for _, n := range rejectNames {
		if n != "" && n != "malformed" {
			out = append(out, n)
		}
	}
	return out
}

// Stats returns the daemon's counters.
func (x Daemon) Stats() Stats {
	d := x.d
	cli, _ := d.client()
	st := Stats{
		Registered: cli != nil,
		Sent:       d.sent.Load(), Delivered: d.delivered.Load(), Failed: d.failed.Load(),
		DeliveryErrors: d.deliveryErrors.Load(),
		Received:       d.received.Load(), StreamsRefused: d.streamsRefused.Load(),
	}
	for c := range d.rejected {
		if n := d.rejected[c].Load(); n > 0 {
			if st.Rejected == nil {
				st.Rejected = map[string]uint64{}
			}
			st.Rejected[rejectNames[c]] = n
		}
	}
	for _, p := range d.store.OutboxPeers() {
		st.Queued += len(d.store.Pending(p))
	}
	d.mu.Lock()
	st.Streams, st.Deliveries = d.active, len(d.workers)
	d.mu.Unlock()
	return st
}

// daemon is a running messenger.
type daemon struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	lim   *ratelimit.Keyed[keys.PublicKey]
	hub   *hub

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ctl    *http.Server
	web    *http.Server

	names nameCache // the directory's node names, for display

	cliMu sync.Mutex
	cli   *appnet.Client // guarded by cliMu; nil while not registered
	self  keys.PublicKey // guarded by cliMu; zero until first registered

	// Counters (Stats).
	sent, delivered, failed, deliveryErrors atomic.Uint64
	received, streamsRefused                atomic.Uint64
	rejected                                [len(rejectNames)]atomic.Uint64 // by ack code

	mu      sync.Mutex
	workers map[keys.PublicKey]*worker // guarded by mu
	streams map[keys.PublicKey]int     // guarded by mu; open incoming streams per key
	active  int                        // guarded by mu; open incoming streams
}

type worker struct {
	kick chan struct{} // capacity 1
}

func start(parent context.Context, cfg Config, log *slog.Logger) (*daemon, error) {
	dir, _ := cfg.stateDir()
	// The store's lock is what keeps a second daemon away from the state
	// directory; the control socket's check comes after it.
	st, err := store.Open(dir, log.With("part", "store"))
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("messenger: %w: %w", ErrRunning, err)
	}
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	sock, _ := cfg.ControlSocket()
	ctlLn, err := appserver.ListenUnix(sock)
	if err != nil {
		st.Close()
		if errors.Is(err, appserver.ErrSocketInUse) {
			return nil, fmt.Errorf("messenger: control socket %s: %w", sock, ErrRunning)
		}
		return nil, fmt.Errorf("messenger: control socket: %w", err)
	}
	webLn := cfg.WebListener
	if webLn == nil && cfg.Web != "" {
		webLn, err = net.Listen("tcp", cfg.Web)
		if err != nil {
			ctlLn.Close()
			st.Close()
			return nil, fmt.Errorf("messenger: web page on %s (messenger.web): %w", cfg.Web, err)
		}
	}
	ctx, cancel := context.WithCancel(parent)
	d := &daemon{
		cfg: cfg, log: log, store: st, hub: newHub(),
		lim: ratelimit.NewKeyed[keys.PublicKey](cfg.RateLimit, cfg.RateBurst, maxRateKeys),
		ctx: ctx, cancel: cancel,
		workers: map[keys.PublicKey]*worker{}, streams: map[keys.PublicKey]int{},
	}
	d.ctl = &http.Server{Handler: d.handler(false), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	d.wg.Go(func() { d.serveHTTP("control", d.ctl, ctlLn) })
	if webLn != nil {
		d.web = &http.Server{Handler: d.handler(true), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		d.wg.Go(func() { d.serveHTTP("web", d.web, webLn) })
		log.Info("messenger web page", "url", "http://"+webLn.Addr().String()+"/")
	}
	d.wg.Go(d.nodeLoop)
	return d, nil
}

func (d *daemon) serveHTTP(name string, srv *http.Server, ln net.Listener) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		d.log.Error("messenger "+name+" server stopped", "err", err)
	}
}

// close stops everything and waits for it.
func (d *daemon) close() error {
	d.mu.Lock()
	d.cancel() // under mu: kick starts no worker after this
	d.mu.Unlock()
	for _, srv := range []*http.Server{d.ctl, d.web} {
		if srv == nil {
			continue
		}
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		cancel()
	}
	d.wg.Wait()
	return d.store.Close()
}

func (d *daemon) client() (*appnet.Client, keys.PublicKey) {
	d.cliMu.Lock()
	defer d.cliMu.Unlock()
	return d.cli, d.self
}

// nodeLoop keeps the registration with the node and accepts streams.
func (d *daemon) nodeLoop() {
	backoff := d.cfg.RetryMin
	for d.ctx.Err() == nil {
		cli, err := appnet.Connect(d.ctx, d.cfg.NodeSocket, AppName, d.cfg.Port, appnet.WithLogger(d.log))
		if err != nil {
			if d.ctx.Err() != nil {
				return
			}
			d.log.Warn("messenger: cannot register with the node; retrying", "err", err, "retry_in", backoff)
			if !sleep(d.ctx, backoff) {
				return
			}
			backoff = min(2*backoff, d.cfg.RetryMax, 30*time.Second)
			continue
		}
		backoff = d.cfg.RetryMin
		d.cliMu.Lock()
		d.cli, d.self = cli, cli.LocalKey()
		d.cliMu.Unlock()
		d.log.Info("messenger registered with node", "key", cli.LocalKey(), "port", d.cfg.Port)
		for _, p := range d.store.OutboxPeers() {
			d.kick(p)
		}
		d.acceptLoop(cli)
		d.cliMu.Lock()
		d.cli = nil
		d.cliMu.Unlock()
		cli.Close()
	}
}

// acceptLoop accepts streams from cli until it or the daemon closes.
func (d *daemon) acceptLoop(cli *appnet.Client) {
	for {
		conn, from, err := cli.Accept(d.ctx)
		if err != nil {
			if d.ctx.Err() != nil {
				return
			}
			select {
			case <-cli.Done():
				d.log.Warn("messenger: node connection lost; re-registering", "err", cli.Err())
				return
			default:
			}
			d.log.Debug("messenger: accept failed", "err", err)
			if !sleep(d.ctx, 10*time.Millisecond) {
				return
			}
			continue
		}
		if !d.admit(from) {
			d.streamsRefused.Add(1)
			d.log.Warn("messenger: too many incoming streams; closing one", "from", from.Short())
			conn.Close()
			continue
		}
		d.wg.Go(func() {
			defer d.release(from)
			d.serveStream(conn, from)
		})
	}
}

func (d *daemon) admit(from keys.PublicKey) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.active >= maxStreams || d.streams[from] >= maxStreamsPerKey {
		return false
	}
	d.active++
	d.streams[from]++
	return true
}

func (d *daemon) release(from keys.PublicKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active--
	if d.streams[from]--; d.streams[from] <= 0 {
		delete(d.streams, from)
	}
}

// serveStream reads messages from one incoming stream and acknowledges
// each. Anything malformed closes the stream with a logged reason.
func (d *daemon) serveStream(conn net.Conn, from keys.PublicKey) {
	defer conn.Close()
	stop := context.AfterFunc(d.ctx, func() { conn.Close() })
	defer stop()
	log := d.log.With("from", from.Short())
	br := bufio.NewReader(conn)
	conn.SetDeadline(time.Now().Add(streamIdle))
	h, err := readReply[*chatwire.Hello](br, "hello")
	if err != nil {
		log.Info("messenger: closing incoming stream: no hello", "err", err)
		return
	}
	if err := chatwire.Write(conn, &chatwire.Hello{Version: chatwire.Version, MaxText: uint32(d.cfg.MaxMessage)}); err != nil {
		log.Debug("messenger: incoming stream", "err", err)
		return
	}
	if h.Version != chatwire.Version {
		log.Info("messenger: closing incoming stream: unsupported version", "version", h.Version)
		return
	}
	for {
		conn.SetDeadline(time.Now().Add(streamIdle))
		msg, err := readReply[*chatwire.Msg](br, "msg")
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && d.ctx.Err() == nil && !isEOF(err) {
				log.Info("messenger: closing incoming stream", "err", err)
			}
			return
		}
		code := d.receive(from, msg, log)
		if code == chatwire.CodeOK {
			d.received.Add(1)
		} else if int(code) < len(d.rejected) {
			d.rejected[code].Add(1)
		}
		if err := chatwire.Write(conn, &chatwire.Ack{ID: msg.ID, Code: code}); err != nil {
			log.Debug("messenger: incoming stream", "err", err)
			return
		}
	}
}

// receive checks and stores one incoming message and returns the ack code.
func (d *daemon) receive(from keys.PublicKey, m *chatwire.Msg, log *slog.Logger) chatwire.Code {
	_, self := d.client()
	id := store.ID(m.ID)
	switch {
	case keys.PublicKey(m.From) != from:
		log.Warn("messenger: rejected a message whose sender is not the session's key", "claimed", keys.PublicKey(m.From).Short(), "id", id)
		return chatwire.CodeForged
	case keys.PublicKey(m.To) != self:
		log.Info("messenger: rejected a message addressed to another key", "to", keys.PublicKey(m.To).Short(), "id", id)
		return chatwire.CodeWrongPeer
	case len(m.Text) > d.cfg.MaxMessage:
		log.Info("messenger: rejected a message over the size limit", "bytes", len(m.Text), "limit", d.cfg.MaxMessage)
		return chatwire.CodeTooLarge
	case !utf8.ValidString(m.Text):
		log.Info("messenger: rejected a message that is not UTF-8", "id", id)
		return chatwire.CodeBadUTF8
	case d.store.HasIncoming(from, id):
		log.Debug("messenger: duplicate message dropped", "id", id)
		return chatwire.CodeDuplicate
	case !d.lim.Allow(from, time.Now()):
		log.Debug("messenger: rate limited", "id", id)
		return chatwire.CodeRateLimited
	}
	now := time.Now()
	sent := time.Unix(0, m.Sent)
	if m.Sent == 0 {
		sent = now
	}
	sm, added, err := d.store.AddIncoming(store.Message{ID: id, Peer: from, Text: m.Text, Sent: sent, Stored: now})
	if err != nil {
		log.Error("messenger: cannot store an incoming message", "err", err)
		return chatwire.CodeBusy
	}
	if !added {
		return chatwire.CodeDuplicate
	}
	d.hub.publish(Event{Kind: "message", Message: d.apiMessage(sm)})
	// The peer is reachable now: deliver what waits for it.
	if len(d.store.Pending(from)) > 0 {
		d.kick(from)
	}
	return chatwire.CodeOK
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// send validates and queues a message to peer, then starts its delivery.
func (d *daemon) send(peer keys.PublicKey, text string) (store.Message, error) {
	if err := d.checkText(text); err != nil {
		return store.Message{}, err
	}
	m, err := d.store.AddOutgoing(peer, text, time.Now())
	if err != nil {
		return store.Message{}, fmt.Errorf("queue message: %w", err)
	}
	d.sent.Add(1)
	d.hub.publish(Event{Kind: "message", Message: d.apiMessage(m)})
	d.kick(peer)
	return m, nil
}

func (d *daemon) checkText(text string) error {
	switch {
	case text == "":
		return ErrEmpty
	case len(text) > d.cfg.MaxMessage:
		return fmt.Errorf("%w: %d bytes, the limit is %d (messenger.max_message)", ErrTooLarge, len(text), d.cfg.MaxMessage)
	case !utf8.ValidString(text):
		return ErrInvalidUTF8
	}
	return nil
}

// kick starts or wakes the delivery worker of peer.
func (d *daemon) kick(peer keys.PublicKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx.Err() != nil {
		return
	}
	if w := d.workers[peer]; w != nil {
		select {
		case w.kick <- struct{}{}:
		default:
		}
		return
	}
	w := &worker{kick: make(chan struct{}, 1)}
	d.workers[peer] = w
	d.wg.Go(func() { d.deliverLoop(peer, w) })
}

// deliverLoop delivers peer's outbox, retrying with exponential backoff
// (with jitter) until it is empty or the daemon stops.
func (d *daemon) deliverLoop(peer keys.PublicKey, w *worker) {
	log := d.log.With("to", peer.Short())
	backoff := d.cfg.RetryMin
	for {
		pending := d.store.Pending(peer)
		if len(pending) == 0 {
			d.mu.Lock()
			select {
			case <-w.kick:
				d.mu.Unlock()
				continue
			default:
			}
			// Send adds to the store before it kicks, and kick takes mu:
			// re-checking under mu cannot miss a message.
			if len(d.store.Pending(peer)) == 0 {
				delete(d.workers, peer)
				d.mu.Unlock()
				return
			}
			d.mu.Unlock()
			continue
		}
		err := d.deliver(peer, pending, log)
		if err == nil {
			backoff = d.cfg.RetryMin
			continue
		}
		if d.ctx.Err() != nil {
			return
		}
		d.deliveryErrors.Add(1)
		wait := backoff/2 + rand.N(backoff/2+1)
		log.Info("messenger: delivery failed; will retry", "err", err, "pending", len(pending), "retry_in", wait.Round(time.Millisecond))
		backoff = min(2*backoff, d.cfg.RetryMax)
		t := time.NewTimer(wait)
		select {
		case <-d.ctx.Done():
			t.Stop()
			return
		case <-w.kick:
			t.Stop()
			backoff = d.cfg.RetryMin
		case <-t.C:
		}
	}
}

// deliver sends pending to peer over one stream, recording each ack.
func (d *daemon) deliver(peer keys.PublicKey, pending []store.Message, log *slog.Logger) error {
	cli, self := d.client()
	if cli == nil {
		return errors.New("not registered with the node")
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.DeliveryTimeout)
	defer cancel()
	conn, err := cli.Dial(ctx, peer, d.cfg.Port)
	if err != nil {
		return fmt.Errorf("deliver: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	br := bufio.NewReader(conn)
	if err := chatwire.Write(conn, &chatwire.Hello{Version: chatwire.Version, MaxText: uint32(d.cfg.MaxMessage)}); err != nil {
		return fmt.Errorf("deliver: %w", err)
	}
	h, err := readReply[*chatwire.Hello](br, "hello")
	if err != nil {
		return fmt.Errorf("deliver: %w", err)
	}
	if h.Version != chatwire.Version {
		return fmt.Errorf("deliver: %w: peer answered hello version %d", chatwire.ErrMalformed, h.Version)
	}
	for _, pm := range pending {
		if d.ctx.Err() != nil {
			return d.ctx.Err()
		}
		if h.MaxText > 0 && len(pm.Text) > int(h.MaxText) {
			if err := d.setState(peer, pm.ID, store.Failed, fmt.Sprintf("message too large for the recipient (%d bytes, its limit is %d)", len(pm.Text), h.MaxText)); err != nil {
				return err
			}
			continue
		}
		msg := &chatwire.Msg{ID: pm.ID, From: self, To: peer, Sent: pm.Sent.UnixNano(), Text: pm.Text}
		if err := chatwire.Write(conn, msg); err != nil {
			return fmt.Errorf("deliver: %w", err)
		}
		ack, err := readReply[*chatwire.Ack](br, "ack")
		if err != nil {
			return fmt.Errorf("deliver: %w", err)
		}
		if ack.ID != pm.ID {
			return fmt.Errorf("deliver: %w: expected the ack of %s, got the ack of %s", chatwire.ErrMalformed, pm.ID, ack.ID)
		}
		switch {
		case ack.Code.Delivered():
			err = d.setState(peer, pm.ID, store.Delivered, "")
		case ack.Code.Permanent():
			log.Warn("messenger: recipient refused a message", "id", pm.ID, "reason", ack.Code)
			err = d.setState(peer, pm.ID, store.Failed, "refused by the recipient: "+ack.Code.String())
		default:
			return fmt.Errorf("deliver %s: %w: %s", pm.ID, errRetryLater, ack.Code)
		}
		if err != nil {
			return err
		}
	}
	if c, ok := conn.(interface{ CloseWrite() error }); ok {
		c.CloseWrite()
	}
	return nil
}

// readReply reads the peer's next frame, which must be a T (what names it
// in errors): a hello, a message or an ack.
func readReply[T chatwire.Message](br *bufio.Reader, what string) (T, error) {
	var zero T
	m, err := chatwire.Read(br)
	if err != nil {
		return zero, fmt.Errorf("read %s: %w", what, err)
	}
	v, ok := m.(T)
	if !ok {
		return zero, fmt.Errorf("%w: expected %s, peer answered %s", chatwire.ErrMalformed, what, m.Type())
	}
	return v, nil
}

func (d *daemon) setState(peer keys.PublicKey, id store.ID, st store.State, reason string) error {
	m, err := d.store.SetState(peer, id, st, reason)
	if err != nil {
		d.log.Error("messenger: cannot record delivery state", "id", id, "err", err)
		return fmt.Errorf("deliver: %w", err)
	}
	switch st {
	case store.Delivered:
		d.delivered.Add(1)
	case store.Failed:
		d.failed.Add(1)
	}
	d.hub.publish(Event{Kind: "state", Message: d.apiMessage(m)})
	return nil
}

// sleep waits for d or ctx; false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
