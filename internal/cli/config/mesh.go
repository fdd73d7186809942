package config

import (
	"crypto/sha256"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager"
	"github.com/skywire-mesh/skywire/node"
	"github.com/skywire-mesh/skywire/viscript"
)

// NodeSection is a [node] or [nodes.NAME] table: node.Config plus what the
// command layer needs to run it as a process.
type NodeSection struct {
	node.Config
	// Identity selects the key pair: "" uses [identity]; "file:PATH" a
	// secret key file (mode 0600); "demo:NAME" a well-known demo key
	// derived from NAME, allowed only when every address is on loopback.
	Identity string `toml:"identity"`
	// AppSocket is the unix socket (mode 0600) local apps register on;
	// empty: STATE/node.sock ([node]) or STATE/node-NAME.sock.
	AppSocket string `toml:"app_socket"`
	// ControlSocket serves `skywire node status|links|routes|sessions`,
	// `skywire route` and `skywire ping`; empty: STATE/node[-NAME].ctl.
	ControlSocket string `toml:"control_socket"`
	// LinkCost adds a fixed latency, by peer public key, to what this node
	// reports for its link to that peer, so that routes avoid the link
	// unless it is needed (a metered backup line, a slow detour). The
	// manager keeps the latest report of either end: set it on both ends.
	LinkCost map[string]time.Duration `toml:"link_cost"`
	// AcceptPeers is "members" (default), "any" or a list of "pk:…" keys:
	// which peers the node links with (node.Config.AcceptPeers).
	AcceptPeers any `toml:"accept_peers"`
	// Metrics, if set, is the host:port where the node serves Prometheus
	// metrics (docs/metrics.md).
	Metrics string `toml:"metrics"`
}

// ManagerSection is the [manager] table.
type ManagerSection struct {
	manager.Config
	Identity      string `toml:"identity"`
	ControlSocket string `toml:"control_socket"` // empty: STATE/manager.ctl
	// Metrics, if set, is the host:port where the manager serves
	// Prometheus metrics (docs/metrics.md).
	Metrics string `toml:"metrics"`
}

// MembersFileName is the file in the state directory where the manager
// keeps members that joined and its invitations.
const MembersFileName = "manager-members.json"

// ClusterDirName is the directory in the state directory where a manager
// in a cluster keeps its raft log and snapshots when [manager] cluster
// has no data_dir.
const ClusterDirName = "manager-raft"

// demoPrefix marks a demo identity.
const demoPrefix = "demo:"

// DemoKeyPair returns the demo key pair named name. Its secret key is
// public knowledge (it is derived from the name alone): demo identities
// exist so that the embedded default config runs a mesh on loopback with
// no key files, and are refused anywhere else.
func DemoKeyPair(name string) keys.KeyPair {
	sum := sha256.Sum256([]byte("skywire demo identity v1: " + name))
	return keys.SecretKey(sum).Pair()
}

// StateDir is the state directory every role uses: viscript.state_dir or
// the default.
func (f *File) StateDir() string {
	if f.Viscript.StateDir != "" {
		return f.Viscript.StateDir
	}
	return viscript.DefaultStateDir()
}

// NodeProfile returns the node table named profile ("" is [node]) with its
// identity resolved and its socket paths filled in.
func (f *File) NodeProfile(profile string) (node.Config, NodeSection, error) {
	sec, key := f.Node, "node"
	if profile != "" {
		var ok bool
		if sec, ok = f.Nodes[profile]; !ok {
			return node.Config{}, sec, &Error{File: f.Path, Key: "nodes." + profile, Msg: fmt.Sprintf("no such node profile (have: %s)", strings.Join(sortedKeys(f.Nodes), ", "))}
		}
		key = "nodes." + profile
	}
	appSock, ctlSock := f.defaultSockets(profile)
	if sec.AppSocket == "" {
		sec.AppSocket = appSock
	}
	if sec.ControlSocket == "" {
		sec.ControlSocket = ctlSock
	}
	// A demo key is public: a node using one may talk only on loopback, to
	// its peers and managers as much as on its own addresses.
	addrs := append([]string{sec.ListenAddr}, sec.AdvertiseAddrs...)
	for _, p := range append(sec.Peers, sec.Managers...) {
		addrs = append(addrs, p.Addr)
	}
	kp, err := f.identity(key, sec.Identity, addrs)
	if err != nil {
		return node.Config{}, sec, err
	}
	cfg := sec.Config
	cfg.Identity = kp
	accept, err := acceptPeers(sec.AcceptPeers)
	if err != nil {
		return node.Config{}, sec, &Error{File: f.Path, Key: key + ".accept_peers", Msg: err.Error()}
	}
	var trusted []trustedKey
	for i, p := range sec.Managers {
		trusted = append(trusted, trustedKey{fmt.Sprintf("managers[%d]", i), p.PublicKey, p.Addr})
	}
	for i, p := range sec.Peers {
		trusted = append(trusted, trustedKey{fmt.Sprintf("peers[%d]", i), p.PublicKey, p.Addr})
	}
	for i, k := range accept.Keys {
		trusted = append(trusted, trustedKey{fmt.Sprintf("accept_peers[%d]", i), k, ""})
	}
	if err := f.checkDemoTrust(key, append([]string{sec.ListenAddr}, sec.AdvertiseAddrs...), trusted); err != nil {
		return node.Config{}, sec, err
	}
	if err := CheckMetricsAddr(sec.Metrics); err != nil {
		return node.Config{}, sec, &Error{File: f.Path, Key: key + ".metrics", Msg: err.Error()}
	}
	if sec.Name != "" {
		if err := proto.CheckName(sec.Name); err != nil {
			return node.Config{}, sec, &Error{File: f.Path, Key: key + ".name", Msg: err.Error()}
		}
	}
	cfg.AcceptPeers = accept
	if len(sec.LinkCost) > 0 {
		costs := make(map[keys.PublicKey]time.Duration, len(sec.LinkCost))
		for k, d := range sec.LinkCost {
			pk, err := keys.ParsePublicKey(k)
			if err != nil {
				return node.Config{}, sec, &Error{File: f.Path, Key: key + ".link_cost", Msg: err.Error()}
			}
			if d < 0 {
				return node.Config{}, sec, &Error{File: f.Path, Key: key + ".link_cost", Msg: fmt.Sprintf("cost of %s is negative", pk.Short())}
			}
			costs[pk] = d
		}
		cfg.ReportRTT = func(peer keys.PublicKey, measured time.Duration) time.Duration {
			return measured + costs[peer]
		}
	}
	if err := cfg.Validate(); err != nil {
		return node.Config{}, sec, &Error{File: f.Path, Key: key, Msg: err.Error()}
	}
	return cfg, sec, nil
}

// defaultSockets returns the default app and control socket paths of a
// node profile.
func (f *File) defaultSockets(profile string) (appSock, ctlSock string) {
	name := "node"
	if profile != "" {
		name += "-" + profile
	}
	return filepath.Join(f.StateDir(), name+".sock"), filepath.Join(f.StateDir(), name+".ctl")
}

// CheckMesh resolves the [manager] table and every node table that says
// anything, as starting them would: an identity that cannot be loaded, or a
// demo identity on an address off loopback, is an error here and not only
// when the role starts.
//
// It also refuses two roles with one key (a manager and a node, or two
// nodes, would each take the other's place in the mesh), and validates each
// app section the file has, as the app would at start.
func (f *File) CheckMesh() error {
	owner := map[keys.PublicKey]string{} // key → the table that uses it
	named := map[string]string{}         // lower-cased name → the table that claims it
	claimName := func(table, name string) error {
		if name == "" {
			return nil
		}
		if other, ok := named[strings.ToLower(name)]; ok {
			return f.withLine(&Error{File: f.Path, Key: table + ".name", Msg: fmt.Sprintf(
				"%q is also the name of [%s]: tools would refuse the name as claimed by two nodes; give each node its own", name, other)})
		}
		named[strings.ToLower(name)] = table
		return nil
	}
	claim := func(table string, k keys.PublicKey) error {
		if other, ok := owner[k]; ok {
			return f.withLine(&Error{File: f.Path, Key: table + ".identity", Msg: fmt.Sprintf(
				"uses the same key %s as [%s]: every node and manager needs its own (skywire config init --node or --manager writes one; or identity = \"file:PATH\" with a key from skywire keygen --out PATH)", k, other)})
		}
		owner[k] = table
		return nil
	}
	if m := f.Manager; m.Identity != "" || m.ListenAddr != "" {
		cfg, _, err := f.ManagerConfig()
		if err != nil {
			return f.withLine(err)
		}
		owner[cfg.Identity.Public] = "manager"
	}
	if n := f.Node; n.Identity != "" || n.ListenAddr != "" || len(n.Managers) > 0 || len(n.Peers) > 0 {
		cfg, _, err := f.NodeProfile("")
		if err != nil {
			return f.withLine(err)
		}
		if err := claim("node", cfg.Identity.Public); err != nil {
			return err
		}
		if err := claimName("node", cfg.Name); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(f.Nodes) {
		cfg, _, err := f.NodeProfile(name)
		if err != nil {
			return f.withLine(err)
		}
		if err := claim("nodes."+name, cfg.Identity.Public); err != nil {
			return err
		}
		if err := claimName("nodes."+name, cfg.Name); err != nil {
			return err
		}
	}
	if err := f.checkMetricsClash(); err != nil {
		return err
	}
	return f.checkApps()
}

// checkMetricsClash refuses two tables with the same metrics address: the
// second role to start could not serve it.
func (f *File) checkMetricsClash() error {
	type use struct{ table, addr string }
	uses := []use{{"viscript", f.Viscript.Metrics}, {"manager", f.Manager.Metrics}, {"node", f.Node.Metrics}}
	for _, name := range sortedKeys(f.Nodes) {
		uses = append(uses, use{"nodes." + name, f.Nodes[name].Metrics})
	}
	uses = append(uses, use{"socks_client", f.SocksClient.Metrics}, use{"socks_server", f.SocksServer.Metrics},
		use{"vpn_client", f.VPNClient.Metrics}, use{"vpn_server", f.VPNServer.Metrics}, use{"messenger", f.Messenger.Metrics})
	seen := map[string]string{}
	for _, u := range uses {
		if _, port, err := net.SplitHostPort(u.addr); err != nil || port == "0" {
			continue
		}
		if other, ok := seen[u.addr]; ok {
			return f.withLine(&Error{File: f.Path, Key: u.table + ".metrics", Msg: fmt.Sprintf(
				"%s is [%s]'s metrics address too: each role needs its own", u.addr, other)})
		}
		seen[u.addr] = u.table
	}
	return nil
}

// appSections are the app tables; checkApps validates those a file has.
var appSections = []string{"socks_client", "socks_server", "vpn_client", "vpn_server", "messenger"}

func (f *File) checkApps() error {
	validators := map[string]func() error{
		"socks_client": func() error { c := f.SocksClient.ClientConfig; return c.Validate() },
		"socks_server": func() error { c := f.SocksServer.ServerConfig; return c.Validate() },
		"vpn_client":   func() error { c := f.VPNClient.ClientConfig; return c.Validate() },
		"vpn_server": func() error {
			c := f.VPNServer.ServerConfig
			if c.StateDir == "" { // as the role fills it in
				c.StateDir = filepath.Join(f.StateDir(), "vpn")
			}
			return c.Validate()
		},
		"messenger": func() error { c := f.Messenger.Config; return c.Validate() },
	}
	for _, sec := range appSections {
		if !f.defined[sec] {
			continue
		}
		if err := validators[sec](); err != nil {
			key, msg := sec, err.Error()
			// The apps' errors name their key as "SECTION.KEY" after a
			// prefix of their own: keep what follows the key.
			if i := strings.Index(msg, sec+"."); i >= 0 {
				rest := msg[i+len(sec)+1:]
				j := strings.IndexFunc(rest, func(r rune) bool { return !(r == '_' || r >= 'a' && r <= 'z') })
				if j < 0 {
					j = len(rest)
				}
				if j > 0 {
					key = sec + "." + rest[:j]
					if m, ok := strings.CutPrefix(rest[j:], ": "); ok && m != "" {
						msg = m
					} else {
						msg = msg[i:]
					}
				}
			}
			return &Error{File: f.Path, Key: key, Line: lineOfKey(f.data, toml.Key(strings.Split(key, "."))), Msg: msg}
		}
	}
	return nil
}

// ManagerConfig returns the [manager] table with its identity resolved.
func (f *File) ManagerConfig() (manager.Config, ManagerSection, error) {
	sec := f.Manager
	if sec.ControlSocket == "" {
		sec.ControlSocket = filepath.Join(f.StateDir(), "manager.ctl")
	}
	kp, err := f.identity("manager", sec.Identity, []string{sec.ListenAddr})
	if err != nil {
		return manager.Config{}, sec, err
	}
	cfg := sec.Config
	cfg.Identity = kp
	var trusted []trustedKey
	for i, k := range sec.Members {
		trusted = append(trusted, trustedKey{fmt.Sprintf("members[%d]", i), k, ""})
	}
	if c := sec.Cluster; c != nil {
		for i, p := range c.Peers {
			trusted = append(trusted, trustedKey{fmt.Sprintf("cluster.peers[%d]", i), p.PublicKey, p.RaftAddr})
		}
		cc := *c
		cc.Peers = slices.Clone(c.Peers)
		if cc.DataDir == "" {
			cc.DataDir = filepath.Join(f.StateDir(), ClusterDirName)
		}
		cfg.Cluster = &cc
	}
	if err := f.checkDemoTrust("manager", []string{sec.ListenAddr}, trusted); err != nil {
		return manager.Config{}, sec, err
	}
	if err := CheckMetricsAddr(sec.Metrics); err != nil {
		return manager.Config{}, sec, &Error{File: f.Path, Key: "manager.metrics", Msg: err.Error()}
	}
	// A demo identity is public and runs only on loopback (demos, tests):
	// open by default there, members only everywhere else.
	if cfg.Admit == "" && strings.HasPrefix(sec.Identity, demoPrefix) {
		cfg.Admit = manager.AdmitOpen
	}
	cfg.MembersFile = filepath.Join(f.StateDir(), MembersFileName)
	if err := cfg.Validate(); err != nil {
		return manager.Config{}, sec, &Error{File: f.Path, Key: "manager", Msg: err.Error()}
	}
	return cfg, sec, nil
}

// acceptPeers decodes accept_peers: "members", "any" or a list of keys.
func acceptPeers(v any) (node.AcceptPeers, error) {
	switch v := v.(type) {
	case nil:
		return node.AcceptPeers{}, nil
	case string:
		if v != node.AcceptMembers && v != node.AcceptAny {
			return node.AcceptPeers{}, fmt.Errorf("%q: want %q, %q or a list of \"pk:…\" keys", v, node.AcceptMembers, node.AcceptAny)
		}
		return node.AcceptPeers{Mode: v}, nil
	case []any:
		a := node.AcceptPeers{Mode: node.AcceptList}
		if len(v) == 0 {
			return a, fmt.Errorf("an empty list accepts no peer; list keys, or use %q or %q", node.AcceptMembers, node.AcceptAny)
		}
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return a, fmt.Errorf("[%d]: want a \"pk:…\" string, got %T", i, e)
			}
			k, err := keys.ParsePublicKey(s)
			if err != nil {
				return a, fmt.Errorf("[%d]: %w", i, err)
			}
			a.Keys = append(a.Keys, k)
		}
		return a, nil
	}
	return node.AcceptPeers{}, fmt.Errorf("want %q, %q or a list of \"pk:…\" keys, got %T", node.AcceptMembers, node.AcceptAny, v)
}

// identity resolves an identity selector of the table key.
func (f *File) identity(table, sel string, addrs []string) (keys.KeyPair, error) {
	bad := func(format string, args ...any) error {
		return &Error{File: f.Path, Key: table + ".identity", Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case sel == "":
		sk, err := f.SecretKey()
		if err != nil {
			return keys.KeyPair{}, err
		}
		return sk.Pair(), nil
	case strings.HasPrefix(sel, "file:"):
		p := strings.TrimPrefix(sel, "file:")
		if !filepath.IsAbs(p) && !f.Embedded {
			p = filepath.Join(filepath.Dir(f.Path), p)
		}
		sk, err := keys.LoadSecretKeyFile(p)
		if err != nil {
			return keys.KeyPair{}, bad("%v", err)
		}
		return sk.Pair(), nil
	case strings.HasPrefix(sel, demoPrefix):
		name := strings.TrimPrefix(sel, demoPrefix)
		if name == "" {
			return keys.KeyPair{}, bad("demo identity needs a name: \"demo:NAME\"")
		}
		for _, a := range addrs {
			if a != "" && !loopback(a) {
				return keys.KeyPair{}, bad("demo identities are public and allowed only on loopback, but %s is not (use skywire config init for a real key)", a)
			}
		}
		return DemoKeyPair(name), nil
	}
	return keys.KeyPair{}, bad("must be empty (use [identity]), \"file:PATH\" or \"demo:NAME\", got %q", sel)
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckMetricsAddr checks a metrics address: HOST:PORT with the host
// written out. An empty host would listen on every interface without
// anyone having said so: the metrics have no login, so serving them
// beyond this machine takes an address that says it ("0.0.0.0:9101", or
// one of the host's addresses). "" is no endpoint.
func CheckMetricsAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port, e.g. \"127.0.0.1:9101\"", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host == "" {
		return fmt.Errorf("%q has no host, which would serve the metrics (no login) on every interface: write \"127.0.0.1:%s\" for this machine only, or \"0.0.0.0:%s\" (or one of its addresses) to serve the network", addr, port, port)
	}
	return nil
}
