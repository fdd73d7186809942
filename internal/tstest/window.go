package tstest

import "testing"

// UnlinkableWindow is the run of bytes CheckUnlinkable looks for.
const UnlinkableWindow = 32

// CheckUnlinkable fails if a run of UnlinkableWindow bytes of what crossed
// hop2 (named so in the failure) also crossed hop1, so that an observer of
// both links could match a relayed packet, or if one of plain crossed
// either link in the clear.
func CheckUnlinkable(t testing.TB, plain []byte, hop1 string, wire1 []byte, hop2 string, wire2 []byte) {
	t.Helper()
	const w = UnlinkableWindow
	if i := sharedWindow(wire1, wire2, w); i >= 0 {
		t.Fatalf("%d bytes at offset %d of link %s also crossed link %s: relayed packets are recognisable across hops\n%x", w, i, hop2, hop1, wire2[i:i+w])
	}
	for _, hop := range []struct {
		name string
		wire []byte
	}{{hop1, wire1}, {hop2, wire2}} {
		if i := sharedWindow(plain, hop.wire, w); i >= 0 {
			t.Fatalf("plaintext in clear on link %s at offset %d", hop.name, i)
		}
	}
}

// sharedWindow reports the offset in b of the first n-byte window that
// also occurs in a, or -1.
func sharedWindow(a, b []byte, n int) int {
	seen := make(map[string]struct{}, len(a))
	for i := 0; i+n <= len(a); i++ {
		seen[string(a[i:i+n])] = struct{}{}
	}
	for i := 0; i+n <= len(b); i++ {
		if _, ok := seen[string(b[i:i+n])]; ok {
			return i
		}
	}
	return -1
}
