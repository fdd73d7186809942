package cli

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/cli/rolectl"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager"
	"github.com/skywire-mesh/skywire/node"
)

// fakeMesh serves a node's and a manager's control sockets from fixed
// answers, for the commands that read them. The directory:
//
//	self        "home"
//	kitchen     "kitchen-pi"
//	twin1/2     "twin" and "Twin" (one name, two claims)
//	old         no name (an older node)
type fakeMesh struct {
	cfg                              string
	self, kitchen, twin1, twin2, old keys.PublicKey
	pings                            atomic.Int32
	pinged                           atomic.Value // the last key pinged
	directoryQueries, routeQueries   atomic.Int32
	unregistered                     atomic.Bool // status: no manager registered
}

func newFakeMesh(t *testing.T) *fakeMesh {
	t.Helper()
	f := &fakeMesh{self: tstest.KeyPair(t).Public, kitchen: tstest.KeyPair(t).Public, twin1: tstest.KeyPair(t).Public,
		twin2: tstest.KeyPair(t).Public, old: tstest.KeyPair(t).Public}
	state := tstest.SocketDir(t)
	f.cfg = shippedConfig(t, state)
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	entries := []node.DirectoryEntry{
		{Key: f.self, Name: "home", Since: since},
		{Key: f.kitchen, Name: "kitchen-pi", Apps: []proto.App{{Name: "chat", Port: 7}}, Since: since},
		{Key: f.twin1, Name: "twin", Since: since},
		{Key: f.twin2, Name: "Twin", Since: since},
		{Key: f.old, Since: since},
	}
	to := func(r *http.Request) (keys.PublicKey, error) {
		k, err := keys.ParsePublicKey(r.URL.Query().Get("to"))
		if err != nil {
			return k, rolectl.BadRequest{Err: err}
		}
		return k, nil
	}
	nodeCtl, err := rolectl.Listen(filepath.Join(state, "node.ctl"), map[string]rolectl.Handler{
		"/directory": func(*http.Request) (any, error) { f.directoryQueries.Add(1); return entries, nil },
		"/status": func(*http.Request) (any, error) {
			return node.Status{Key: f.self, Name: "home", Addr: "127.0.0.1:7901", Links: 2, Rules: 3, Endpoints: 1, Sessions: 1,
				Managers: []node.ManagerStatus{
					{Key: f.twin1, Addr: "127.0.0.1:7900", Registered: !f.unregistered.Load()},
					{Key: f.twin2, Addr: "10.0.0.1:7900", Refused: "not a member of this mesh"},
				},
				Membership: node.MembershipStatus{AcceptPeers: node.AcceptMembers, Known: true, Members: 4},
				Counters:   node.Counters{Forwarded: 7, BadHandshakeReplies: 2}}, nil
		},
		"/links": func(*http.Request) (any, error) {
			return []node.LinkInfo{{Peer: f.kitchen, RTT: time.Millisecond, Conns: 1}, {Peer: f.twin1, RTT: time.Millisecond, Conns: 1}}, nil
		},
		"/sessions": func(*http.Request) (any, error) {
			return []node.SessionInfo{{Remote: f.kitchen, Route: 7, Hops: []keys.PublicKey{f.self, f.kitchen}}}, nil
		},
		"/route": func(r *http.Request) (any, error) {
			f.routeQueries.Add(1)
			k, err := to(r)
			if err != nil {
				return nil, err
			}
			return node.PathInfo{Hops: []keys.PublicKey{f.self, f.twin1, k}, Per: []time.Duration{time.Millisecond, 2 * time.Millisecond}, Latency: 3 * time.Millisecond}, nil
		},
		"/ping": func(r *http.Request) (any, error) {
			k, err := to(r)
			if err != nil {
				return nil, err
			}
			f.pings.Add(1)
			f.pinged.Store(k)
			return map[string]int64{"rtt_ns": int64(1500 * time.Microsecond)}, nil
		},
	}, tstest.Logger(t, "node.ctl "))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nodeCtl.Close() })
	var infos []manager.NodeInfo
	for _, e := range entries {
		infos = append(infos, manager.NodeInfo{Key: e.Key, Name: e.Name, Addrs: []string{"127.0.0.1:1"}, Apps: e.Apps, Since: e.Since,
			Links: []manager.LinkInfo{{Peer: f.self, RTT: time.Millisecond, Up: true}}})
	}
	infos[4].AppsHidden = true
	mgrCtl, err := rolectl.Listen(filepath.Join(state, "manager.ctl"), map[string]rolectl.Handler{
		"/nodes": func(*http.Request) (any, error) { return infos, nil },
		"/routes": func(*http.Request) (any, error) {
			return []manager.RouteInfo{{ID: 9, Src: f.self, Dst: f.twin2, Hops: []keys.PublicKey{f.self, f.twin2}, Latency: time.Millisecond}}, nil
		},
	}, tstest.Logger(t, "manager.ctl "))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgrCtl.Close() })
	return f
}

func (f *fakeMesh) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return run(t, append([]string{"skywire", "--config", f.cfg}, args...)...)
}

// noRawStruct fails t if out looks like a Go struct or a JSON blob
// printed as is (what node status and manager nodes printed before).
func noRawStruct(t *testing.T, what, out string) {
	t.Helper()
	for _, bad := range []string{"{", "}", "map[", "&{", "\":"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s prints a raw struct or JSON (%q):\n%s", what, bad, out)
		}
	}
}

func contains(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

// ping and route take a node's name where they take its key, and show
// names beside keys.
func TestPingRouteByName(t *testing.T) {
	f := newFakeMesh(t)
	code, out, stderr := f.run(t, "ping", "-c", "1", "Kitchen-Pi")
	if code != 0 {
		t.Fatalf("ping kitchen-pi: exit %d\n%s%s", code, out, stderr)
	}
	if k, _ := f.pinged.Load().(keys.PublicKey); k != f.kitchen {
		t.Fatalf("pinged %v, want kitchen-pi's key", k)
	}
	contains(t, "ping", out, "PING "+f.kitchen.String()+" (kitchen-pi)", "reply from "+f.kitchen.Short()+" (kitchen-pi): seq=1 time=1.500 ms")

	code, out, stderr = f.run(t, "route", "kitchen-pi")
	if code != 0 {
		t.Fatalf("route kitchen-pi: exit %d\n%s%s", code, out, stderr)
	}
	noRawStruct(t, "route", out)
	contains(t, "route", out, "route to "+f.kitchen.Short()+" (kitchen-pi): 2 links, 3.000 ms", "HOP", "NAME",
		f.self.String()+"  home", "(this node)", f.kitchen.String()+"  kitchen-pi", "2.000 ms",
		// A relay whose name is claimed twice is labelled so.
		f.twin1.String()+"  twin (claimed by 2 nodes)")

	// By key: no name needed, the key's name is shown when the directory has one.
	code, out, _ = f.run(t, "ping", "-c", "1", f.old.String())
	if code != 0 || !strings.Contains(out, "PING "+f.old.String()+" across") {
		t.Errorf("ping by key: exit %d\n%s", code, out)
	}
}

// A name two nodes claim is refused, listing both keys; nothing is sent
// to either. So is an unknown name (listing the named nodes) and text that
// is neither a key nor a name (a usage error).
func TestNameAmbiguousOrUnknown(t *testing.T) {
	f := newFakeMesh(t)
	code, out, stderr := f.run(t, "ping", "-c", "1", "twin")
	if code == 0 || f.pings.Load() != 0 {
		t.Fatalf("ping of an ambiguous name: exit %d, %d pings sent\n%s", code, f.pings.Load(), out)
	}
	contains(t, "ping twin", stderr, "claimed by 2 nodes", f.twin1.String()+"  twin", f.twin2.String()+"  Twin")

	code, _, stderr = f.run(t, "route", "kitchen")
	if code == 0 || f.routeQueries.Load() != 0 {
		t.Fatalf("route to an unknown name: exit %d, %d route queries", code, f.routeQueries.Load())
	}
	contains(t, "route kitchen", stderr, `no node in the directory is named "kitchen"`, f.kitchen.String()+"  kitchen-pi")
	if strings.Index(stderr, "kitchen-pi") > strings.Index(stderr, "home") {
		t.Errorf("the closest name is not listed first:\n%s", stderr)
	}
	if strings.Contains(stderr, f.old.String()) {
		t.Errorf("a node without a name is listed as a candidate:\n%s", stderr)
	}

	queries := f.directoryQueries.Load()
	for _, bad := range []string{"kitchen pi", "pk:12", "local"} {
		code, _, stderr = f.run(t, "ping", "-c", "1", bad)
		if code != 2 || !strings.Contains(stderr, "public key") {
			t.Errorf("ping %q: exit %d, want 2 and a message naming what is wanted:\n%s", bad, code, stderr)
		}
	}
	code, _, stderr = f.run(t, "nc", "--retry", "0", "twin", "9")
	if code == 0 || !strings.Contains(stderr, f.twin2.String()) {
		t.Errorf("nc to an ambiguous name: exit %d\n%s", code, stderr)
	}
	if f.directoryQueries.Load() != queries+1 {
		t.Errorf("bad arguments queried the directory")
	}
}

// node status and manager nodes print aligned fields, never Go structs or
// JSON, and --json keeps the machine form.
func TestStatusAndNodesHuman(t *testing.T) {
	f := newFakeMesh(t)
	code, out, stderr := f.run(t, "node", "status")
	if code != 0 {
		t.Fatalf("node status: exit %d %s", code, stderr)
	}
	noRawStruct(t, "node status", out)
	contains(t, "node status", out, "key       "+f.self.String(), "name      home", "address   127.0.0.1:7901",
		"rules     3 (endpoints 1)", "4 members known", "managers\n  KEY", f.twin1.String()+"  127.0.0.1:7900  registered",
		"refused: not a member of this mesh", "forwarded              7", "bad handshake replies  2")
	if strings.Contains(out, "delivered") {
		t.Errorf("a zero counter is listed:\n%s", out)
	}
	_, out, _ = f.run(t, "node", "links")
	noRawStruct(t, "node links", out)
	contains(t, "node links", out, "PEER", "NAME", f.kitchen.String()+"  kitchen-pi ", f.twin1.String()+"  twin (claimed by 2 nodes)")
	_, out, _ = f.run(t, "node", "sessions")
	noRawStruct(t, "node sessions", out)
	contains(t, "node sessions", out, "REMOTE", f.kitchen.String()+"  kitchen-pi ")
	// With no manager registered, listings do not wait for a directory
	// query that would wait for one: keys alone, at once.
	f.unregistered.Store(true)
	queries := f.directoryQueries.Load()
	code, out, _ = f.run(t, "node", "links")
	if code != 0 || strings.Contains(out, "kitchen-pi") || !strings.Contains(out, f.kitchen.String()+"  -  ") || f.directoryQueries.Load() != queries {
		t.Errorf("node links without a manager: exit %d, %d directory queries:\n%s", code, f.directoryQueries.Load()-queries, out)
	}
	f.unregistered.Store(false)
	code, out, _ = f.run(t, "node", "status", "--json")
	var st node.Status
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Name != "home" || st.Counters.Forwarded != 7 {
		t.Errorf("node status --json: exit %d, %v, %+v", code, err, st)
	}

	code, out, stderr = f.run(t, "manager", "nodes")
	if code != 0 {
		t.Fatalf("manager nodes: exit %d %s", code, stderr)
	}
	noRawStruct(t, "manager nodes", out)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "NODE") {
		t.Fatalf("manager nodes: want a header and 5 rows:\n%s", out)
	}
	col := strings.Index(lines[0], "NAME")
	for _, l := range lines[1:] {
		if l[col-1] != ' ' || l[col-2] != ' ' {
			t.Errorf("NAME column not aligned in %q", l)
		}
	}
	contains(t, "manager nodes", out, f.kitchen.String()+"  kitchen-pi", "chat:7", "twin (claimed by 2 nodes)", "Twin (claimed by 2 nodes)",
		"(private)", f.self.Short()+"(1.000 ms)", "2026-01-02T03:04:05Z")
	_, out, _ = f.run(t, "manager", "routes")
	noRawStruct(t, "manager routes", out)
	contains(t, "manager routes", out, f.self.Short()+" (home)", f.twin2.Short()+" (Twin, claimed by 2 nodes)")
	code, out, _ = f.run(t, "manager", "nodes", "--json")
	var ns []manager.NodeInfo
	if err := json.Unmarshal([]byte(out), &ns); code != 0 || err != nil || len(ns) != 5 || ns[1].Name != "kitchen-pi" {
		t.Errorf("manager nodes --json: exit %d, %v, %+v", code, err, ns)
	}
}
