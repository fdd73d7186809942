package vpn

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/skywire-mesh/skywire/keys"
)

// ErrPoolFull is returned when every address of the pool is in use by a
// connected client.
var ErrPoolFull = errors.New("address pool exhausted")

// leaseFile is the name of the server's state file in StateDir.
const leaseFile = "leases.json"

type lease struct {
	Key      keys.PublicKey `json:"key"`
	Addr     netip.Addr     `json:"addr"`
	LastSeen time.Time      `json:"last_seen"`
}

type leaseState struct {
	Version int      `json:"version"`
	Pool    string   `json:"pool"`
	Leases  []*lease `json:"leases"`
}

// leases assigns each client key a stable address of the pool and keeps
// the assignments in a JSON file. Not safe for concurrent use: the
// server holds its lock around every call.
type leases struct {
	path   string
	pool   netip.Prefix
	server netip.Addr // the pool's first host address, the server's own
	byKey  map[keys.PublicKey]*lease
	byAddr map[netip.Addr]*lease
	now    func() time.Time
}

// loadLeases reads dir/leases.json (a missing file is an empty state).
// Leases outside pool are forgotten, so changing the pool re-numbers.
func loadLeases(dir string, pool netip.Prefix) (*leases, []string, error) {
	l := &leases{
		path:   filepath.Join(dir, leaseFile),
		pool:   pool,
		server: pool.Masked().Addr().Next(),
		byKey:  map[keys.PublicKey]*lease{},
		byAddr: map[netip.Addr]*lease{},
		now:    time.Now,
	}
	b, err := os.ReadFile(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load leases: %w", err)
	}
	var st leaseState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, nil, fmt.Errorf("load leases: %s is corrupt (move it away to start afresh): %w", l.path, err)
	}
	var dropped []string
	for _, ls := range st.Leases {
		if ls == nil || ls.Key.IsZero() || !l.usable(ls.Addr) || l.byKey[ls.Key] != nil || l.byAddr[ls.Addr] != nil {
			if ls != nil {
				dropped = append(dropped, ls.Key.Short()+"="+ls.Addr.String())
			}
			continue
		}
		l.byKey[ls.Key] = ls
		l.byAddr[ls.Addr] = ls
	}
	return l, dropped, nil
}

// usable reports whether a is a client address of the pool: not the
// network, the server's or the broadcast address.
func (l *leases) usable(a netip.Addr) bool {
	return a.IsValid() && l.pool.Contains(a) && a != l.pool.Masked().Addr() && a != l.server && a != broadcast(l.pool)
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// assign returns k's address: its lease if it has one, else the lowest
// free address, else the address of the least recently seen client that
// is not active. The state is saved before assign returns a new lease.
func (l *leases) assign(k keys.PublicKey, active func(netip.Addr) bool) (netip.Addr, error) {
	if ls := l.byKey[k]; ls != nil {
		ls.LastSeen = l.now().UTC()
		return ls.Addr, l.save()
	}
	var addr netip.Addr
	for a := l.server.Next(); l.usable(a); a = a.Next() {
		if l.byAddr[a] == nil {
			addr = a
			break
		}
	}
	if !addr.IsValid() {
		var oldest *lease
		for _, ls := range l.byKey {
			if active(ls.Addr) {
				continue
			}
			if oldest == nil || ls.LastSeen.Before(oldest.LastSeen) {
				oldest = ls
			}
		}
		if oldest == nil {
			return netip.Addr{}, fmt.Errorf("assign address to %s: %w (%s)", k.Short(), ErrPoolFull, l.pool)
		}
		delete(l.byKey, oldest.Key)
		delete(l.byAddr, oldest.Addr)
		addr = oldest.Addr
	}
	ls := &lease{Key: k, Addr: addr, LastSeen: l.now().UTC()}
	l.byKey[k] = ls
	l.byAddr[addr] = ls
	return addr, l.save()
}

// owner returns the key leased a, if any.
func (l *leases) owner(a netip.Addr) (keys.PublicKey, bool) {
	ls := l.byAddr[a]
	if ls == nil {
		return keys.PublicKey{}, false
	}
	return ls.Key, true
}

// save writes the state atomically (temp file, fsync, rename).
func (l *leases) save() error {
	st := leaseState{Version: 1, Pool: l.pool.String()}
	for _, ls := range l.byAddr {
		st.Leases = append(st.Leases, ls)
	}
	slices.SortFunc(st.Leases, func(a, b *lease) int { return a.Addr.Compare(b.Addr) })
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("save leases: %w", err)
	}
	dir := filepath.Dir(l.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save leases: %w", err)
	}
	f, err := os.CreateTemp(dir, leaseFile+".*")
	if err != nil {
		return fmt.Errorf("save leases: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, l.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save leases to %s: %w", l.path, err)
	}
	return nil
}
