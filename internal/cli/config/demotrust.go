package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/skywire-mesh/skywire/keys"
)

// commonDemoNames are demo identities people copy from the shipped config,
// the docs and the tests: the manager, one letter per node, m1…m9.
var commonDemoNames = func() []string {
	names := []string{"manager"}
	for c := 'a'; c <= 'z'; c++ {
		names = append(names, string(c))
	}
	for i := 1; i <= 9; i++ {
		names = append(names, "m"+strconv.Itoa(i))
	}
	return names
}()

// demoKeyName reports which demo identity pk is, if it is one we can
// recognise: a common demo name, or one this file uses. Trusting such a
// key anywhere off loopback trusts a secret everyone knows.
func (f *File) demoKeyName(pk keys.PublicKey) (string, bool) {
	names := append([]string(nil), commonDemoNames...)
	for _, sel := range f.identitySelectors() {
		if n, ok := strings.CutPrefix(sel, demoPrefix); ok && n != "" {
			names = append(names, n)
		}
	}
	for _, n := range names {
		if DemoKeyPair(n).Public == pk {
			return n, true
		}
	}
	return "", false
}

// identitySelectors returns every identity selector the file has.
func (f *File) identitySelectors() []string {
	sels := []string{f.Manager.Identity, f.Node.Identity}
	for _, n := range sortedKeys(f.Nodes) {
		sels = append(sels, f.Nodes[n].Identity)
	}
	return sels
}

// checkDemoTrust refuses a table that trusts a demo public key across the
// network: a manager or peer at an address off loopback whose key is a demo
// key, or a key list (accept_peers, members) of a table listening off
// loopback. The secret half of a demo key is public, so anyone could pose
// as that manager or peer.
func (f *File) checkDemoTrust(table string, listen []string, trusted []trustedKey) error {
	public := ""
	for _, a := range listen {
		if a != "" && !loopback(a) {
			public = a
			break
		}
	}
	for _, t := range trusted {
		name, ok := f.demoKeyName(t.key)
		if !ok {
			continue
		}
		where := t.addr
		if where == "" {
			where = public
		}
		if where == "" || loopback(where) {
			continue
		}
		return &Error{File: f.Path, Key: table + "." + t.field, Msg: fmt.Sprintf(
			"%s is the public key of demo:%s, whose secret key is public: anyone can pose as it at %s (use the real key, see skywire config init)",
			t.key.Short(), name, where)}
	}
	return nil
}

// trustedKey is a key a table trusts, with the address it is trusted at
// ("" when it may come from anywhere the table listens).
type trustedKey struct {
	field string
	key   keys.PublicKey
	addr  string
}
