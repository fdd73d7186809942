package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/skywire-mesh/skywire/keys"
)

// ErrConfig is wrapped by Config.Validate errors.
var ErrConfig = errors.New("manager cluster config")

// Peer is one member of the cluster: its raft server ID, the address its
// raft traffic listens on and its manager public key (the key its raft
// link must authenticate with).
type Peer struct {
	ID        string         `toml:"id"`
	RaftAddr  string         `toml:"raft_addr"`
	PublicKey keys.PublicKey `toml:"public_key"`
}

// Config is [manager] cluster: this member's ID and raft address, every
// other member (this one may be listed too, with its own key), and where
// the raft log, stable store and snapshots live.
type Config struct {
	ID       string `toml:"id"`
	RaftAddr string `toml:"raft_addr"`
	Peers    []Peer `toml:"peers"`
	DataDir  string `toml:"data_dir"`
	// Join: this member is being added to a running cluster (skywire
	// manager cluster add, on the leader), so it must not bootstrap a
	// cluster of its own on its first start; it waits for the leader.
	Join bool `toml:"join"`

	// Timing (raft's own defaults are for a WAN; these suit a LAN or
	// loopback and keep an election within about a second). Zero means
	// the default.
	HeartbeatTimeout time.Duration `toml:"heartbeat_timeout"`
	ElectionTimeout  time.Duration `toml:"election_timeout"`
	// SnapshotThreshold is how many log entries since the last snapshot
	// make raft take another (and compact the log).
	SnapshotThreshold uint64 `toml:"snapshot_threshold"`

	// Listener, if set, is used instead of listening on RaftAddr, and
	// Dial, if set, instead of dialling TCP (tests: partitions).
	Listener net.Listener                                             `toml:"-"`
	Dial     func(ctx context.Context, addr string) (net.Conn, error) `toml:"-"`
}

// Defaults.
const (
	DefaultHeartbeatTimeout  = 500 * time.Millisecond
	DefaultElectionTimeout   = 500 * time.Millisecond
	DefaultSnapshotThreshold = 8192
	// MaxPeers bounds the cluster's size (raft clusters are 3, 5 or 7).
	MaxPeers = 9
)

// Validate fills in defaults and returns an error naming the first bad key
// (as manager.cluster.KEY). self is the manager's own public key.
func (c *Config) Validate(self keys.PublicKey) error {
	c.HeartbeatTimeout = cmp.Or(c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	c.ElectionTimeout = cmp.Or(c.ElectionTimeout, DefaultElectionTimeout)
	c.SnapshotThreshold = cmp.Or(c.SnapshotThreshold, DefaultSnapshotThreshold)
	const p = "manager.cluster."
	switch {
	case c.ID == "":
		return fmt.Errorf("%w: %sid is empty: name this member (e.g. \"m1\")", ErrConfig, p)
	case c.RaftAddr == "" && c.Listener == nil:
		return fmt.Errorf("%w: %sraft_addr is empty: the host:port other managers reach this one's raft on", ErrConfig, p)
	case c.DataDir == "":
		return fmt.Errorf("%w: %sdata_dir is empty: where the raft log and snapshots are kept", ErrConfig, p)
	case c.HeartbeatTimeout < 10*time.Millisecond:
		return fmt.Errorf("%w: %sheartbeat_timeout = %v, want at least 10ms", ErrConfig, p, c.HeartbeatTimeout)
	case c.ElectionTimeout < c.HeartbeatTimeout:
		return fmt.Errorf("%w: %selection_timeout = %v must be at least heartbeat_timeout = %v", ErrConfig, p, c.ElectionTimeout, c.HeartbeatTimeout)
	case len(c.Peers) > MaxPeers:
		return fmt.Errorf("%w: %speers has %d members, at most %d", ErrConfig, p, len(c.Peers), MaxPeers)
	}
	if c.Listener == nil {
		if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
			return fmt.Errorf("%w: %sraft_addr = %q: %w", ErrConfig, p, c.RaftAddr, err)
		}
	}
	ids := map[string]bool{c.ID: true}
	addrs := map[string]bool{c.RaftAddr: true}
	ks := map[keys.PublicKey]bool{self: true}
	for i, peer := range c.Peers {
		at := fmt.Sprintf("%speers[%d]", p, i)
		if peer.ID == c.ID { // this member listed too: it must agree
			switch {
			case peer.RaftAddr != c.RaftAddr && c.Listener == nil:
				return fmt.Errorf("%w: %s is this member (id %q) but its raft_addr %q is not raft_addr %q", ErrConfig, at, peer.ID, peer.RaftAddr, c.RaftAddr)
			case !peer.PublicKey.IsZero() && peer.PublicKey != self:
				return fmt.Errorf("%w: %s is this member (id %q) but its public_key is not this manager's key %s", ErrConfig, at, peer.ID, self)
			}
			continue
		}
		switch {
		case peer.ID == "":
			return fmt.Errorf("%w: %s.id is empty", ErrConfig, at)
		case ids[peer.ID]:
			return fmt.Errorf("%w: %s.id = %q is listed twice", ErrConfig, at, peer.ID)
		case peer.PublicKey.IsZero():
			return fmt.Errorf("%w: %s.public_key is empty: the peer manager's key (skywire keys show)", ErrConfig, at)
		case ks[peer.PublicKey]:
			return fmt.Errorf("%w: %s.public_key %s is listed twice (or is this manager's own key)", ErrConfig, at, peer.PublicKey)
		case addrs[peer.RaftAddr]:
			return fmt.Errorf("%w: %s.raft_addr = %q is listed twice", ErrConfig, at, peer.RaftAddr)
		}
		if _, _, err := net.SplitHostPort(peer.RaftAddr); err != nil {
			return fmt.Errorf("%w: %s.raft_addr = %q: %w", ErrConfig, at, peer.RaftAddr, err)
		}
		ids[peer.ID], addrs[peer.RaftAddr], ks[peer.PublicKey] = true, true, true
	}
	return nil
}
