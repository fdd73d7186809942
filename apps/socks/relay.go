package socks

import (
	"errors"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Copy buffers: an idle direction holds a small buffer of its own; a busy
// one borrows a large pooled buffer and gives it back when reads get
// small again, so idle connections stay cheap.
const (
	smallBuf = 2 << 10
	largeBuf = 64 << 10
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}

// copyCounting copies src to dst until EOF (nil) or an error, adding the
// bytes written to n as they go.
func copyCounting(dst io.Writer, src io.Reader, n *atomic.Uint64) error {
	small := make([]byte, smallBuf)
	buf := small
	var big *[]byte
	defer func() {
		if big != nil {
			bufPool.Put(big)
		}
	}()
	for {
		nr, er := src.Read(buf)
		if nr > 0 {
			nw, ew := dst.Write(buf[:nr])
			n.Add(uint64(nw))
			if ew != nil {
				return ew
			}
			if nw != nr {
				return io.ErrShortWrite
			}
		}
		if er != nil {
			if errors.Is(er, io.EOF) {
				return nil
			}
			return er
		}
		switch {
		case big == nil && nr == len(buf):
			big = bufPool.Get().(*[]byte)
			buf = *big
		case big != nil && nr < smallBuf:
			bufPool.Put(big)
			big, buf = nil, small
		}
	}
}

type closeWriter interface{ CloseWrite() error }

func closeWrite(c net.Conn) {
	if cw, ok := c.(closeWriter); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// relay copies a to b and b to a, passing each direction's EOF on as a
// half-close, until both directions have ended or one fails; then it
// closes both. up counts a→b, down b→a. It returns the first error
// (nil when both directions ended with EOF).
func relay(a, b net.Conn, up, down *atomic.Uint64) error {
	// half copies src to dst: at EOF it half-closes dst, on an error it
	// closes both, which ends the other direction too.
	half := func(dst, src net.Conn, n *atomic.Uint64) error {
		err := copyCounting(dst, src, n)
		if err == nil {
			closeWrite(dst)
		} else {
			a.Close()
			b.Close()
		}
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- half(b, a, up) }()
	err := half(a, b, down)
	if err2 := <-errc; err == nil {
		err = err2
	}
	a.Close()
	b.Close()
	return err
}

// ConnStats are the counters of one proxied connection or UDP
// association.
type ConnStats struct {
	ID      uint64
	Kind    string // "connect" or "udp"; empty during the handshake
	Peer    string // client: the SOCKS application's address; server: the client node's key
	Target  string // the destination as requested (host:port)
	Started time.Time
	// Up counts bytes from the SOCKS application towards the target,
	// Down bytes from the target back; for UDP, datagram payload bytes.
	Up, Down uint64
}

// PeerStats are the counters of one client node on a Server.
type PeerStats struct {
	Peer     string // the client node's key
	Open     int
	Total    uint64
	Failed   uint64
	Up, Down uint64 // closed connections included
}

// Stats are the counters of a Client or Server.
type Stats struct {
	Open     int    // connections and associations open now (each is one mesh stream)
	Total    uint64 // connections accepted since start
	Failed   uint64 // connections refused or failed before data flowed
	Up, Down uint64 // bytes of every connection, closed ones included
	Conns    []ConnStats
	// Refused counts CONNECTs refused (reply 0x02) and RefusedDatagrams
	// UDP datagrams dropped because the destination policy
	// (socks_server.allow_destinations, deny_destinations) does not allow
	// their destination (Server only).
	Refused, RefusedDatagrams uint64
	// Replies counts the SOCKS replies sent, by Reply.Label (those sent
	// at least once): by the client to SOCKS applications, by the server
	// to client nodes. A request closed before any reply (a bad
	// handshake) has none.
	Replies map[string]uint64 `json:",omitempty"`
	// Peers has one entry per client node (Server only), sorted by key.
	// Beyond maxPeers nodes, those without open connections are
	// forgotten.
	Peers []PeerStats
}

// maxPeers bounds the per-peer counters a Server keeps.
const maxPeers = 4096

type peerTotals struct {
	open, total, failed uint64
	up, down            uint64 // closed connections only
}

// tracker holds the open connections of a Client or Server so that Stats
// can list them and Close can close them.
type tracker struct {
	mu      sync.Mutex
	closed  bool                    // guarded by mu
	nextID  uint64                  // guarded by mu
	conns   map[uint64]*trackedConn // guarded by mu
	total   uint64                  // guarded by mu
	failed  uint64                  // guarded by mu
	up      uint64                  // guarded by mu; closed connections only
	down    uint64                  // guarded by mu; closed connections only
	replies [MaxReply + 1]atomic.Uint64
	// perPeer keeps counters per peer (the Server's client nodes).
	perPeer bool
	peers   map[string]*peerTotals // guarded by mu
}

type trackedConn struct {
	id      uint64
	peer    string
	started time.Time
	info    atomic.Pointer[connInfo]
	up      atomic.Uint64
	down    atomic.Uint64

	mu      sync.Mutex
	closers []io.Closer // guarded by mu
	closed  bool        // guarded by mu
}

// add tracks a new connection whose resources close with c; it returns
// nil (having closed c) once the tracker is closed.
func (t *tracker) add(peer string, c io.Closer) *trackedConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		c.Close()
		return nil
	}
	if t.conns == nil {
		t.conns = map[uint64]*trackedConn{}
	}
	t.nextID++
	t.total++
	tc := &trackedConn{id: t.nextID, peer: peer, started: time.Now(), closers: []io.Closer{c}}
	t.conns[tc.id] = tc
	if t.perPeer {
		p := t.peers[peer]
		if p == nil {
			if t.peers == nil {
				t.peers = map[string]*peerTotals{}
			}
			if len(t.peers) >= maxPeers {
				for k, q := range t.peers {
					if q.open == 0 {
						delete(t.peers, k)
					}
				}
			}
			p = &peerTotals{}
			t.peers[peer] = p
		}
		p.open++
		p.total++
	}
	return tc
}

// attach adds a resource that closes with tc; if tc is already closed, c
// is closed at once and attach returns false.
func (tc *trackedConn) attach(c io.Closer) bool {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.closed {
		c.Close()
		return false
	}
	tc.closers = append(tc.closers, c)
	return true
}

func (tc *trackedConn) close() {
	tc.mu.Lock()
	cs := tc.closers
	tc.closers, tc.closed = nil, true
	tc.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

type connInfo struct{ kind, target string }

// setTarget records what the connection is for, once known.
func (tc *trackedConn) setTarget(kind, target string) {
	tc.info.Store(&connInfo{kind: kind, target: target})
}

func (tc *trackedConn) stats() ConnStats {
	s := ConnStats{ID: tc.id, Peer: tc.peer, Started: tc.started, Up: tc.up.Load(), Down: tc.down.Load()}
	if in := tc.info.Load(); in != nil {
		s.Kind, s.Target = in.kind, in.target
	}
	return s
}

// done closes tc's resources and stops tracking it; failed counts it as
// a connection that never carried data.
func (t *tracker) done(tc *trackedConn, failed bool) {
	tc.close()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns[tc.id] != tc {
		return // already done
	}
	delete(t.conns, tc.id)
	up, down := tc.up.Load(), tc.down.Load()
	t.up += up
	t.down += down
	if failed {
		t.failed++
	}
	if p := t.peers[tc.peer]; p != nil {
		p.open--
		p.up += up
		p.down += down
		if failed {
			p.failed++
		}
	}
}

// closeAll closes every tracked connection; later adds are refused.
func (t *tracker) closeAll() {
	t.mu.Lock()
	t.closed = true
	cs := make([]*trackedConn, 0, len(t.conns))
	for _, tc := range t.conns {
		cs = append(cs, tc)
	}
	t.mu.Unlock()
	for _, tc := range cs {
		tc.close()
	}
}

// replied counts a reply sent.
func (t *tracker) replied(rep Reply) {
	if rep <= MaxReply {
		t.replies[rep].Add(1)
	}
}

func (t *tracker) stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Stats{Open: len(t.conns), Total: t.total, Failed: t.failed, Up: t.up, Down: t.down}
	for r := range t.replies {
		if n := t.replies[r].Load(); n > 0 {
			if s.Replies == nil {
				s.Replies = map[string]uint64{}
			}
			s.Replies[Reply(r).Label()] = n
		}
	}
	for _, tc := range t.conns {
		cs := tc.stats()
		s.Up += cs.Up
		s.Down += cs.Down
		s.Conns = append(s.Conns, cs)
	}
	sort.Slice(s.Conns, func(i, j int) bool { return s.Conns[i].ID < s.Conns[j].ID })
	if t.perPeer {
		live := map[string][2]uint64{}
		for _, c := range s.Conns {
			l := live[c.Peer]
			live[c.Peer] = [2]uint64{l[0] + c.Up, l[1] + c.Down}
		}
		for k, p := range t.peers {
			l := live[k]
			s.Peers = append(s.Peers, PeerStats{Peer: k, Open: int(p.open), Total: p.total, Failed: p.failed, Up: p.up + l[0], Down: p.down + l[1]})
		}
		sort.Slice(s.Peers, func(i, j int) bool { return s.Peers[i].Peer < s.Peers[j].Peer })
	}
	return s
}
