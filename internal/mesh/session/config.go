package session

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Protocol constants both peers assume before any MAX_DATA or
// MAX_STREAM_DATA frame has arrived.
const (
	initialStreamWindow  = 64 << 10
	initialSessionWindow = 256 << 10
)

// Limits on Config values.
const (
	minMTU = 256
	maxMTU = 65535
)

// ErrInvalidConfig is wrapped by Config.Validate errors.
var ErrInvalidConfig = errors.New("invalid session config")

// Config tunes a Session. The zero value of every field selects its default.
type Config struct {
	// Logger receives debug and warning messages; nil discards them.
	Logger *slog.Logger
	// MTU is the largest packet handed to Path.SendPacket, cipher overhead
	// included. Mesh links carry frames of up to 64 KiB, so the default is
	// a large 16 KiB: fewer packets mean fewer per-packet costs.
	MTU int
	// DatagramMTU is the largest packet that carries one datagram
	// (default MTU; between MTU and 65535): a path whose frames are larger
	// than the packets streams should use (mesh links carry 64 KiB) can
	// take whole large datagrams, such as the VPN's TCP super-packets,
	// without making stream packets larger.
	DatagramMTU int
	// StreamWindow is the per-stream receive window and send buffer
	// (default 1 MiB, minimum 64 KiB).
	StreamWindow int
	// SessionWindow is the connection-level receive window over all
	// streams (default 16 MiB, at least StreamWindow). Unread data of
	// slow readers counts against it: SessionWindow/StreamWindow streams
	// whose readers stall can stall the whole session.
	SessionWindow int
	// IdleTimeout ends the session when no packet has arrived from the
	// peer for this long (default 30 s).
	IdleTimeout time.Duration
	// KeepaliveInterval is how long the session may send nothing
	// ack-eliciting before it sends a PING (default IdleTimeout/3).
	KeepaliveInterval time.Duration
	// MaxStreams bounds the concurrently open streams each side initiates
	// (default 1024). OpenStream waits for a free slot; streams the peer
	// opens beyond this limit are refused with a reset.
	MaxStreams int
	// StreamRefused, if set, is called for each stream the peer opened
	// and the session refused because MaxStreams of the peer's streams
	// were open. It runs with the session's lock held and must not block
	// or call into the session.
	StreamRefused func()
	// MinRTO is the lower bound of the retransmission timeout
	// (default 200 ms).
	MinRTO time.Duration
	// DatagramQueue is how many received datagrams wait for
	// ReceiveDatagram before new ones are dropped (default 1024; they
	// are also dropped beyond maxQueuedDatagramBytes of payload).
	DatagramQueue int
	// OnDatagram, if set, takes every received datagram instead of the
	// queue ReceiveDatagram reads (which then stays empty): it is called
	// on the goroutine that called HandlePacket, after the session's
	// state is updated and its lock released, and b is valid only until
	// it returns. It saves the receiver a copy and a goroutine handoff
	// per datagram; it must not block (drop instead) and must not call
	// HandlePacket.
	OnDatagram func(b []byte)
}

// maxQueuedDatagramBytes bounds the payload waiting in a session's
// datagram queue, whatever DatagramQueue says: a peer sending large
// datagrams faster than the app reads cannot make the queue hold more.
const maxQueuedDatagramBytes = 4 << 20

// DefaultConfig returns the configuration New uses for zero fields.
func DefaultConfig() Config {
	return Config{
		MTU:               16 << 10,
		StreamWindow:      1 << 20,
		SessionWindow:     16 << 20,
		IdleTimeout:       30 * time.Second,
		KeepaliveInterval: 10 * time.Second,
		MaxStreams:        1024,
		MinRTO:            200 * time.Millisecond,
		DatagramQueue:     1024,
	}
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.MTU = cmp.Or(c.MTU, d.MTU)
	c.DatagramMTU = cmp.Or(c.DatagramMTU, c.MTU)
	c.StreamWindow = cmp.Or(c.StreamWindow, d.StreamWindow)
	c.SessionWindow = cmp.Or(c.SessionWindow, max(d.SessionWindow, c.StreamWindow))
	c.IdleTimeout = cmp.Or(c.IdleTimeout, d.IdleTimeout)
	c.KeepaliveInterval = cmp.Or(c.KeepaliveInterval, c.IdleTimeout/3)
	c.MaxStreams = cmp.Or(c.MaxStreams, d.MaxStreams)
	c.MinRTO = cmp.Or(c.MinRTO, d.MinRTO)
	c.DatagramQueue = cmp.Or(c.DatagramQueue, d.DatagramQueue)
	return c
}

// Validate reports the first invalid field of c after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(field string, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
	}
	switch {
	case c.MTU < minMTU || c.MTU > maxMTU:
		return bad("MTU", "%d not in [%d, %d]", c.MTU, minMTU, maxMTU)
	case c.DatagramMTU < c.MTU || c.DatagramMTU > maxMTU:
		return bad("DatagramMTU", "%d not in [MTU %d, %d]", c.DatagramMTU, c.MTU, maxMTU)
	case c.StreamWindow < initialStreamWindow:
		return bad("StreamWindow", "%d below %d", c.StreamWindow, initialStreamWindow)
	case c.StreamWindow > 1<<30:
		return bad("StreamWindow", "%d above 1 GiB", c.StreamWindow)
	case c.SessionWindow < c.StreamWindow || c.SessionWindow < initialSessionWindow:
		return bad("SessionWindow", "%d below StreamWindow %d or %d", c.SessionWindow, c.StreamWindow, initialSessionWindow)
	case c.IdleTimeout < 0:
		return bad("IdleTimeout", "negative")
	case c.KeepaliveInterval < time.Millisecond || c.KeepaliveInterval >= c.IdleTimeout:
		return bad("KeepaliveInterval", "%v not in [1ms, IdleTimeout %v)", c.KeepaliveInterval, c.IdleTimeout)
	case c.MaxStreams < 1:
		return bad("MaxStreams", "%d below 1", c.MaxStreams)
	case c.MinRTO < 2*maxAckDelay:
		return bad("MinRTO", "%v below %v", c.MinRTO, 2*maxAckDelay)
	case c.DatagramQueue < 1:
		return bad("DatagramQueue", "%d below 1", c.DatagramQueue)
	}
	return nil
}
