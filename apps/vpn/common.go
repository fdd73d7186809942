package vpn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/skywire-mesh/skywire/keys"
)

// Sentinel errors of Client.Run and Server.Run, besides
// appnet.ErrNodeLost (the local node went away). Like every error this
// package returns, Run's say "vpn: " once, first; the sentinels
// themselves do not, so that wrapping them does not repeat it.
var (
	// ErrNotAllowed: the server refused this client (not in its allow list).
	ErrNotAllowed = errors.New("refused by the server: this node is not allowed")
	// ErrVersion: client and server speak different protocol versions.
	ErrVersion = errors.New("protocol version not supported by the server")
	// ErrDevice: the TUN device failed.
	ErrDevice = errors.New("tun device failed")

	errRunTwice = errors.New("a Client or Server runs once: Run called twice")
)

// Option changes how NewClient and NewServer reach
// the system; the defaults are the real ones.
type Option func(*options)

type options struct {
	open      OpenFunc
	net       NetConfig
	systemTUN bool // open is OpenTUN: the role needs CAP_NET_ADMIN
}

// WithTUN replaces OpenTUN (tests pass a tuntest device).
func WithTUN(open OpenFunc) Option { return func(o *options) { o.open = open } }

// WithNetConfig replaces the IPCommand network configuration.
func WithNetConfig(nc NetConfig) Option { return func(o *options) { o.net = nc } }

func buildOptions(opts []Option) (options, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.open == nil {
		if !supported {
			return o, fmt.Errorf("vpn: %w", ErrUnsupported)
		}
		o.open, o.systemTUN = OpenTUN, true
	}
	if o.net == nil {
		o.net = &IPCommand{}
	}
	return o, nil
}

// role is what a Client and a Server share: their loggers, their options
// and the guard that lets Run run once.
type role struct {
	baseLog *slog.Logger // for appnet, which adds the app name itself
	log     *slog.Logger // with the app's name
	opts    options
	started atomic.Bool
}

// init sets up the role of the app name (vpn-client or vpn-server) with
// log (nil: discard) and opts, failing when the options cannot work here
// or need a privilege the process lacks.
func (r *role) init(name string, log *slog.Logger, opts []Option) error {
	o, err := buildOptions(opts)
	if err != nil {
		return err
	}
	if err := o.checkPrivilege(); err != nil {
		return fmt.Errorf("vpn: %w", err)
	}
	r.baseLog, r.log, r.opts = discardIfNil(log), discardIfNil(log).With("app", name), o
	return nil
}

// runOnce runs run on the first call only (later calls fail with
// errRunTwice) and says "vpn: " before its error.
func (r *role) runOnce(run func() error) error {
	if !r.started.CompareAndSwap(false, true) {
		return fmt.Errorf("vpn: %w", errRunTwice)
	}
	if err := run(); err != nil {
		return fmt.Errorf("vpn: %w", err)
	}
	return nil
}

func discardIfNil(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// Stats are the counters of one tunnel (a client, on either side).
type Stats struct {
	Key        keys.PublicKey `json:"key"`       // the client's key (server side) or the server's (client side)
	Addr       netip.Addr     `json:"addr"`      // the client's tunnel address
	Connected  bool           `json:"connected"` // the control stream is up
	BytesIn    uint64         `json:"bytes_in"`  // IP bytes received from the mesh and written to the TUN device
	PacketsIn  uint64         `json:"packets_in"`
	BytesOut   uint64         `json:"bytes_out"` // IP bytes read from the TUN device and sent to the mesh
	PacketsOut uint64         `json:"packets_out"`
	Dropped    uint64         `json:"dropped"` // packets dropped: malformed, spoofed, too large, or sent while disconnected
	// Drops splits Dropped by reason (DropReasons; those that happened).
	Drops map[string]uint64 `json:"drops,omitempty"`
	// GSOOut and GSOIn count the TCP super-packets that crossed the mesh
	// whole (GSO datagrams sent and received; see the package doc,
	// "Offloads"). Their bytes and segments count in the fields above.
	GSOOut uint64 `json:"gso_out"`
	GSOIn  uint64 `json:"gso_in"`
	// Refused counts the client's packets dropped because the destination
	// policy (vpn_server.allow_destinations, deny_destinations) does not
	// allow their destination (server side only).
	Refused uint64 `json:"refused"`
}

// StatsFile is what a role writes to its stats_file.
type StatsFile struct {
	Role    string    `json:"role"` // "vpn-client" or "vpn-server"
	Time    time.Time `json:"time"`
	Tunnels []Stats   `json:"tunnels"` // the client's one tunnel, or one per client of the server
	Dropped uint64    `json:"dropped"` // server: packets for no connected client
}

// writeStatsFile writes sf to path atomically (temp file and rename).
func writeStatsFile(path string, sf StatsFile) error {
	b, err := json.MarshalIndent(sf, "", "  ")
	if err != nil {
		return fmt.Errorf("write vpn stats: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write vpn stats: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write vpn stats: %w", err)
	}
	return nil
}

// statsLoop writes snapshot() to path every interval until ctx is done,
// and once more at the end. It is a role's goroutine.
func statsLoop(ctx context.Context, log *slog.Logger, path string, interval time.Duration, snapshot func() StatsFile) {
	write := func() {
		if err := writeStatsFile(path, snapshot()); err != nil {
			log.Warn("stats file not written", "err", err)
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		write()
		select {
		case <-ctx.Done():
			write()
			return
		case <-t.C:
		}
	}
}

// dropReason is why a tunnel dropped a packet.
type dropReason int

const (
	dropMalformed    dropReason = iota // not an IPv4 packet, or a GSO datagram that does not decode
	dropSpoofed                        // server: the source is not the client's address
	dropMisaddressed                   // client: the destination is not the client's address
	dropStranger                       // client: a datagram not from the server's key and port
	dropDisconnected                   // client: read from the device while the server is unreachable
	dropSend                           // the node refused the datagram (too large, no route, queue full)
	dropTUNWrite                       // the device refused the packet
	numDropReasons
)

var dropNames = [numDropReasons]string{
	dropMalformed:    "malformed",
	dropSpoofed:      "spoofed",
	dropMisaddressed: "misaddressed",
	dropStranger:     "not_from_server",
	dropDisconnected: "disconnected",
	dropSend:         "send_failed",
	dropTUNWrite:     "tun_write",
}

// DropReasons lists the reasons in Stats.Drops: "malformed" (not IPv4,
// or a GSO datagram that does not decode), "spoofed" (server: source not
// the client's address), "misaddressed" (client: destination not its
// address), "not_from_server" (client: a datagram from another key or
// port), "disconnected" (client: sent while the server is unreachable),
// "send_failed" (the node refused the datagram), "tun_write" (the device
// refused the packet).
func DropReasons() []string { return slices.Clone(dropNames[:]) }

type counters struct {
	bytesIn, packetsIn, bytesOut, packetsOut, refused atomic.Uint64
	gsoIn, gsoOut                                     atomic.Uint64
	drops                                             [numDropReasons]atomic.Uint64
}

// either is ifOK if ok, else ifNot.
func either(ok bool, ifOK, ifNot dropReason) dropReason {
	if ok {
		return ifOK
	}
	return ifNot
}

// drop counts a packet dropped for reason r.
func (c *counters) drop(r dropReason) { c.drops[r].Add(1) }

// in and out count n bytes in pkts packets (a super-packet counts its
// segments).
func (c *counters) in(n, pkts int)  { c.bytesIn.Add(uint64(n)); c.packetsIn.Add(uint64(pkts)) }
func (c *counters) out(n, pkts int) { c.bytesOut.Add(uint64(n)); c.packetsOut.Add(uint64(pkts)) }

func (c *counters) fill(s *Stats) {
	s.BytesIn, s.PacketsIn = c.bytesIn.Load(), c.packetsIn.Load()
	s.BytesOut, s.PacketsOut = c.bytesOut.Load(), c.packetsOut.Load()
	s.Dropped, s.Drops = 0, nil
	for r := range c.drops {
		if n := c.drops[r].Load(); n > 0 {
			if s.Drops == nil {
				s.Drops = map[string]uint64{}
			}
			s.Drops[dropNames[r]] = n
			s.Dropped += n
		}
	}
	s.Refused = c.refused.Load()
	s.GSOIn, s.GSOOut = c.gsoIn.Load(), c.gsoOut.Load()
}

// ipv4Addrs returns the source and destination of an IPv4 packet, or
// false if p is not a well-formed IPv4 packet (header length, total
// length within p).
func ipv4Addrs(p []byte) (src, dst netip.Addr, ok bool) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return src, dst, false
	}
	ihl := int(p[0]&0x0f) * 4
	total := int(p[2])<<8 | int(p[3])
	if ihl < 20 || total < ihl || total > len(p) {
		return src, dst, false
	}
	return netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20])), true
}
