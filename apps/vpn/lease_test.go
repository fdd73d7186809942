package vpn

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/keys"
)

func none(netip.Addr) bool { return false }

func TestLeases(t *testing.T) {
	dir := t.TempDir()
	pool := netip.MustParsePrefix("10.77.0.0/29") // clients .2 to .6
	l, _, err := loadLeases(dir, pool)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(1000, 0)
	l.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	k := func(i byte) keys.PublicKey { return keys.PublicKey{i} }
	for i, want := range []string{"10.77.0.2", "10.77.0.3", "10.77.0.4", "10.77.0.5", "10.77.0.6"} {
		a, err := l.assign(k(byte(i+1)), none)
		if err != nil || a != addr(want) {
			t.Fatalf("client %d: %s, %v; want %s", i+1, a, err, want)
		}
	}
	// Known keys keep their address.
	if a, _ := l.assign(k(2), none); a != addr("10.77.0.3") {
		t.Errorf("client 2 again: %s", a)
	}
	// Full pool: the least recently seen inactive client gives way.
	a, err := l.assign(k(9), func(a netip.Addr) bool { return a == addr("10.77.0.2") })
	if err != nil || a != addr("10.77.0.4") {
		t.Errorf("client 9 on a full pool: %s, %v; want 10.77.0.4 (client 3, seen longest ago and inactive)", a, err)
	}
	if _, err := l.assign(k(10), func(netip.Addr) bool { return true }); !errors.Is(err, ErrPoolFull) {
		t.Errorf("every address active: %v, want ErrPoolFull", err)
	}
	// The state survives a reload.
	l2, dropped, err := loadLeases(dir, pool)
	if err != nil || len(dropped) != 0 {
		t.Fatalf("reload: %v, dropped %v", err, dropped)
	}
	for key, want := range map[keys.PublicKey]string{k(1): "10.77.0.2", k(2): "10.77.0.3", k(9): "10.77.0.4", k(5): "10.77.0.6"} {
		if got := l2.byKey[key]; got == nil || got.Addr != addr(want) {
			t.Errorf("reloaded lease of %s: %+v, want %s", key.Short(), got, want)
		}
	}
	if o, ok := l2.owner(addr("10.77.0.2")); !ok || o != k(1) {
		t.Errorf("owner of .2: %s %v", o.Short(), ok)
	}
	// A smaller pool forgets the leases outside it.
	l3, dropped, err := loadLeases(dir, netip.MustParsePrefix("10.77.0.0/30"))
	if err != nil || len(dropped) != 4 || len(l3.byKey) != 1 {
		t.Errorf("pool /30: %v, dropped %v, kept %d; want 4 dropped and 1 kept", err, dropped, len(l3.byKey))
	}
}

func TestLeasesCorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, leaseFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadLeases(dir, netip.MustParsePrefix(DefaultPool)); err == nil {
		t.Fatal("corrupt state loaded without error")
	}
}

func TestBroadcast(t *testing.T) {
	for p, want := range map[string]string{"10.77.0.0/24": "10.77.0.255", "10.0.0.0/8": "10.255.255.255", "192.168.4.0/30": "192.168.4.3"} {
		if got := broadcast(netip.MustParsePrefix(p)); got != addr(want) {
			t.Errorf("broadcast(%s) = %s, want %s", p, got, want)
		}
	}
}

// FuzzLoadLeases: any state file loads or fails cleanly, and what loads
// holds only usable, unique addresses.
func FuzzLoadLeases(f *testing.F) {
	f.Add([]byte(`{"version":1,"pool":"10.77.0.0/24","leases":[{"key":"pk:0100000000000000000000000000000000000000000000000000000000000000","addr":"10.77.0.2","last_seen":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"leases":[null,{"addr":"10.77.0.1"},{"addr":"10.77.0.255"}]}`))
	f.Add([]byte(`{`))
	pool := netip.MustParsePrefix("10.77.0.0/24")
	// One directory per fuzz worker, the state file rewritten in place
	// for each input. A t.TempDir per input (2.4 ms) or os.WriteFile's
	// truncate-then-write (5.3 ms: ext4 flushes a file truncated to zero
	// and rewritten, auto_da_alloc) cost far more than loadLeases itself;
	// writing over the old bytes and then cutting the file to length
	// costs 0.3 ms.
	dir := f.TempDir()
	path := filepath.Join(dir, leaseFile)
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := overwrite(path, b); err != nil {
			t.Fatal(err)
		}
		l, _, err := loadLeases(dir, pool)
		if err != nil {
			return
		}
		for a, ls := range l.byAddr {
			if !l.usable(a) || ls.Addr != a || l.byKey[ls.Key] != ls {
				t.Fatalf("loaded an inconsistent lease %+v", ls)
			}
		}
	})
}

// overwrite makes the file at path hold b without truncating it to zero
// first.
func overwrite(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Truncate(int64(len(b)))
	}
	return errors.Join(err, f.Close())
}
