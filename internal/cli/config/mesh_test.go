package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager"
)

func TestDefaultMeshProfiles(t *testing.T) {
	data, err := os.ReadFile("../../../skywire.toml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(data, "skywire.toml")
	if err != nil {
		t.Fatal(err)
	}
	f.Viscript.StateDir = "/state"
	mgr, msec, err := f.ManagerConfig()
	if err != nil {
		t.Fatal(err)
	}
	if mgr.Identity != DemoKeyPair("manager") || msec.ControlSocket != "/state/manager.ctl" {
		t.Errorf("manager: %v %q", mgr.Identity.Public, msec.ControlSocket)
	}
	for profile, name := range map[string]string{"": "a", "b": "b", "c": "c"} {
		cfg, sec, err := f.NodeProfile(profile)
		if err != nil {
			t.Fatalf("profile %q: %v", profile, err)
		}
		if cfg.Identity != DemoKeyPair(name) {
			t.Errorf("profile %q has key %s, want demo:%s", profile, cfg.Identity.Public.Short(), name)
		}
		if len(cfg.Managers) != 1 || cfg.Managers[0].PublicKey != mgr.Identity.Public {
			t.Errorf("profile %q does not trust the demo manager: %+v", profile, cfg.Managers)
		}
		wantSock := "/state/node.sock"
		if profile != "" {
			wantSock = "/state/node-" + profile + ".sock"
		}
		if sec.AppSocket != wantSock {
			t.Errorf("profile %q app socket %q, want %q", profile, sec.AppSocket, wantSock)
		}
	}
	// The comments in the shipped config name the demo keys; keep them true.
	for _, name := range []string{"manager", "a", "b", "c"} {
		if !strings.Contains(string(data), DemoKeyPair(name).Public.String()) {
			t.Errorf("skywire.toml does not mention demo:%s's key %s", name, DemoKeyPair(name).Public)
		}
	}
	if _, _, err := f.NodeProfile("zz"); err == nil || !strings.Contains(err.Error(), "nodes.zz") {
		t.Errorf("unknown profile: %v", err)
	}
}

func TestIdentitySelectors(t *testing.T) {
	dir := t.TempDir()
	kp, _ := keys.Generate()
	keyFile := filepath.Join(dir, "n.key")
	if err := keys.WriteSecretKeyFile(keyFile, kp.Secret); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, doc string
		want      keys.PublicKey
		errIn     string
	}{
		{"demo on loopback", "[node]\nidentity = \"demo:x\"\nlisten_addr = \"127.0.0.1:1\"\n", DemoKeyPair("x").Public, ""},
		{"demo on localhost", "[node]\nidentity = \"demo:x\"\nlisten_addr = \"localhost:1\"\n", DemoKeyPair("x").Public, ""},
		{"demo off loopback", "[node]\nidentity = \"demo:x\"\nlisten_addr = \"0.0.0.0:1\"\n", keys.PublicKey{}, "only on loopback"},
		{"demo advertised elsewhere", "[node]\nidentity = \"demo:x\"\nlisten_addr = \"127.0.0.1:1\"\nadvertise_addrs = [\"192.0.2.1:1\"]\n", keys.PublicKey{}, "only on loopback"},
		{"demo with a public manager", "[node]\nidentity = \"demo:x\"\nlisten_addr = \"127.0.0.1:1\"\nmanagers = [{ public_key = \"" + kp.Public.String() + "\", addr = \"192.0.2.1:7900\" }]\n", keys.PublicKey{}, "only on loopback"},
		{"demo with a public peer", "[node]\nidentity = \"demo:x\"\npeers = [{ public_key = \"" + kp.Public.String() + "\", addr = \"example.com:7901\" }]\n", keys.PublicKey{}, "only on loopback"},
		{"demo with loopback manager and peer", "[node]\nidentity = \"demo:x\"\nmanagers = [{ public_key = \"" + kp.Public.String() + "\", addr = \"127.0.0.1:7900\" }]\npeers = [{ public_key = \"" + kp.Public.String() + "\", addr = \"[::1]:7901\" }]\n", DemoKeyPair("x").Public, ""},
		{"demo without name", "[node]\nidentity = \"demo:\"\n", keys.PublicKey{}, "needs a name"},
		{"key file", "[node]\nidentity = \"file:" + keyFile + "\"\n", kp.Public, ""},
		{"missing key file", "[node]\nidentity = \"file:/nonexistent/k\"\n", keys.PublicKey{}, "node.identity"},
		{"bad selector", "[node]\nidentity = \"magic\"\n", keys.PublicKey{}, "must be empty"},
		{"no identity at all", "[node]\n", keys.PublicKey{}, "skywire config init"},
		{"inline identity", "[identity]\nsecret_key = \"" + kp.Secret.Text() + "\"\n[node]\n", kp.Public, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.doc), "t.toml")
			if err != nil {
				t.Fatal(err)
			}
			cfg, _, err := f.NodeProfile("")
			if tt.errIn != "" {
				var ce *Error
				if err == nil || !strings.Contains(err.Error(), tt.errIn) || !errors.As(err, &ce) {
					t.Fatalf("err = %v, want a config error containing %q", err, tt.errIn)
				}
				return
			}
			if err != nil || cfg.Identity.Public != tt.want {
				t.Fatalf("got %s, %v", cfg.Identity.Public.Short(), err)
			}
		})
	}
}

func TestLinkCost(t *testing.T) {
	b := DemoKeyPair("b").Public
	doc := "[node]\nidentity = \"demo:a\"\nlink_cost = { \"" + b.String() + "\" = \"25ms\" }\n"
	f, err := Parse([]byte(doc), "t")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := f.NodeProfile("")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.ReportRTT(b, time.Millisecond); got != 26*time.Millisecond {
		t.Errorf("cost not applied: %v", got)
	}
	if got := cfg.ReportRTT(DemoKeyPair("c").Public, time.Millisecond); got != time.Millisecond {
		t.Errorf("cost applied to another peer: %v", got)
	}
	f, _ = Parse([]byte("[node]\nidentity = \"demo:a\"\nlink_cost = { \"pk:nope\" = \"1ms\" }\n"), "t")
	if _, _, err := f.NodeProfile(""); err == nil || !strings.Contains(err.Error(), "node.link_cost") {
		t.Errorf("bad key in link_cost: %v", err)
	}
}

func TestMembershipConfig(t *testing.T) {
	kp, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := keys.Generate()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id.key")
	if err := keys.WriteSecretKeyFile(keyFile, kp.Secret); err != nil {
		t.Fatal(err)
	}
	parse := func(body string) (*File, error) {
		return Parse([]byte(body), "t.toml")
	}
	// Defaults: members for a real identity, open for a demo one.
	f, err := parse("[viscript]\nstate_dir = \"/st\"\n[manager]\nidentity = \"file:" + keyFile + "\"\nlisten_addr = \"0.0.0.0:7900\"\n")
	if err != nil {
		t.Fatal(err)
	}
	mc, _, err := f.ManagerConfig()
	if err != nil || mc.Admit != "members" || mc.MembersFile != "/st/manager-members.json" {
		t.Fatalf("real identity: admit %q file %q (%v)", mc.Admit, mc.MembersFile, err)
	}
	f, _ = parse("[manager]\nidentity = \"demo:m\"\n")
	if mc, _, err := f.ManagerConfig(); err != nil || mc.Admit != "open" {
		t.Fatalf("demo identity: admit %q (%v)", mc.Admit, err)
	}
	f, _ = parse("[manager]\nidentity = \"demo:m\"\nadmit = \"members\"\nmembers = [\"" + other.Public.String() + "\"]\n")
	if mc, _, err := f.ManagerConfig(); err != nil || mc.Admit != "members" || len(mc.Members) != 1 || mc.Members[0] != other.Public {
		t.Fatalf("explicit members: %+v (%v)", mc, err)
	}
	tok := "swinv1-" + strings.Repeat("0", 56)
	for _, tt := range []struct{ body, key string }{
		{"[manager]\nidentity = \"demo:m\"\nadmit = \"friends\"\n", "admit"},
		{"[manager]\nidentity = \"demo:m\"\nmembers = [\"pk:zz\"]\n", "members"},
		{"[manager]\nidentity = \"demo:m\"\nadmit = \"open\"\nmembers = [\"" + other.Public.String() + "\"]\n", "members"},
		{"[node]\nidentity = \"demo:a\"\njoin = \"" + tok + "\"\n", "join"},
		{"[node]\nidentity = \"demo:a\"\njoin = \"hello\"\n", "join"},
		{"[node]\nidentity = \"demo:a\"\naccept_peers = \"everyone\"\n", "node.accept_peers"},
		{"[node]\nidentity = \"demo:a\"\naccept_peers = []\n", "node.accept_peers"},
		{"[node]\nidentity = \"demo:a\"\naccept_peers = [\"pk:00\"]\n", "node.accept_peers"},
		{"[node]\nidentity = \"demo:a\"\naccept_peers = 3\n", "node.accept_peers"},
		{"[nodes.x]\nidentity = \"demo:x\"\naccept_peers = [1]\n", "nodes.x.accept_peers"},
	} {
		f, err := parse(tt.body)
		if err == nil {
			err = f.CheckMesh()
		}
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%q: %v, want a config error naming %s", tt.body, err, tt.key)
		}
	}
	f, err = parse("[node]\nidentity = \"demo:a\"\naccept_peers = [\"" + other.Public.String() + "\"]\n[nodes.y]\nidentity = \"demo:y\"\naccept_peers = \"any\"\n")
	if err != nil {
		t.Fatal(err)
	}
	nc, _, err := f.NodeProfile("")
	if err != nil || nc.AcceptPeers.Mode != "list" || nc.AcceptPeers.Keys[0] != other.Public {
		t.Fatalf("list: %+v (%v)", nc.AcceptPeers, err)
	}
	if nc, _, err := f.NodeProfile("y"); err != nil || nc.AcceptPeers.Mode != "any" {
		t.Fatalf("any: %+v (%v)", nc.AcceptPeers, err)
	}
}

// A real node or manager that trusts a demo public key across the network
// trusts a secret everyone knows: refused, naming the key and the address.
func TestDemoPublicKeysNotTrustedOffLoopback(t *testing.T) {
	kp := tstest.KeyPair(t)
	id := "[identity]\nsecret_key = \"" + kp.Secret.Text() + "\"\n"
	demoMgr := DemoKeyPair("manager").Public.String()
	demoB := DemoKeyPair("b").Public.String()
	custom := DemoKeyPair("kitchen").Public.String()
	realMgr := tstest.KeyPair(t).Public.String()
	tests := []struct {
		name, doc, errIn string
		manager          bool
	}{
		{"demo manager at a public address", "[node]\nmanagers = [{ public_key = \"" + demoMgr + "\", addr = \"192.0.2.1:7900\" }]\n", "node.managers[0]: " + DemoKeyPair("manager").Public.Short() + " is the public key of demo:manager", false},
		{"demo peer at a public address", "[node]\npeers = [{ public_key = \"" + demoB + "\", addr = \"example.com:7901\" }]\n", "node.peers[0]: " + DemoKeyPair("b").Public.Short() + " is the public key of demo:b", false},
		{"demo key accepted on a public listener", "[node]\nlisten_addr = \"0.0.0.0:7901\"\naccept_peers = [\"" + demoB + "\"]\n", "node.accept_peers[0]", false},
		{"demo member of a public manager", "[manager]\nlisten_addr = \"0.0.0.0:7900\"\nmembers = [\"" + demoB + "\"]\n", "manager.members[0]", true},
		// A name the file itself uses as a demo identity is recognised too.
		{"this file's own demo name", "[manager]\nidentity = \"demo:kitchen\"\n[node]\nmanagers = [{ public_key = \"" + custom + "\", addr = \"192.0.2.1:7900\" }]\n", "demo:kitchen", false},
		// On loopback demo keys are what the demo mesh is made of.
		{"demo manager on loopback", "[node]\nmanagers = [{ public_key = \"" + demoMgr + "\", addr = \"127.0.0.1:7900\" }]\n", "", false},
		{"demo key accepted on a loopback listener", "[node]\nlisten_addr = \"127.0.0.1:7901\"\naccept_peers = [\"" + demoB + "\"]\n", "", false},
		{"demo member of a loopback manager", "[manager]\nlisten_addr = \"127.0.0.1:7900\"\nmembers = [\"" + demoB + "\"]\n", "", true},
		{"real manager at a public address", "[node]\nmanagers = [{ public_key = \"" + realMgr + "\", addr = \"192.0.2.1:7900\" }]\n", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(id+tt.doc), "t.toml")
			if err != nil {
				t.Fatal(err)
			}
			if tt.manager {
				_, _, err = f.ManagerConfig()
			} else {
				_, _, err = f.NodeProfile("")
			}
			if tt.errIn == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ce *Error
			if err == nil || !strings.Contains(err.Error(), tt.errIn) || !strings.Contains(err.Error(), "secret key is public") || !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a config error containing %q", err, tt.errIn)
			}
			// config check says the same.
			if err := f.CheckMesh(); err == nil || !strings.Contains(err.Error(), tt.errIn) {
				t.Fatalf("CheckMesh: %v, want %q", err, tt.errIn)
			}
		})
	}
	// A manager whose own identity is a demo key listens only on loopback.
	f, err := Parse([]byte("[manager]\nidentity = \"demo:manager\"\nlisten_addr = \"0.0.0.0:7900\"\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.ManagerConfig(); err == nil || !strings.Contains(err.Error(), "manager.identity") || !strings.Contains(err.Error(), "only on loopback") {
		t.Fatalf("demo manager on 0.0.0.0: %v", err)
	}
}

// metrics is a host:port with its host written out, in every table that
// has one, checked when the file is parsed (and so by config check), with
// the key and its line in the error.
func TestMetricsAddress(t *testing.T) {
	for _, tt := range []struct {
		doc, errIn string
	}{
		{"[node]\nidentity = \"demo:a\"\nmetrics = \"127.0.0.1:9101\"\n", ""},
		{"[node]\nidentity = \"demo:a\"\nmetrics = \"127.0.0.1:0\"\n", ""},
		{"[node]\nidentity = \"demo:a\"\nmetrics = \"9101\"\n", "t.toml:3: node.metrics: \"9101\": want host:port"},
		{"[nodes.b]\nidentity = \"demo:b\"\nmetrics = \"localhost:http\"\n", "nodes.b.metrics: \"localhost:http\": port \"http\""},
		{"[manager]\nidentity = \"demo:m\"\nmetrics = \"127.0.0.1:70000\"\n", "manager.metrics"},
		{"[manager]\nidentity = \"demo:m\"\nmetrics = \"[::1]:9100\"\n", ""},
		// Off loopback only when the address says so.
		{"[manager]\nidentity = \"demo:m\"\nmetrics = \":9100\"\n", "manager.metrics: \":9100\" has no host"},
		{"[manager]\nidentity = \"demo:m\"\nmetrics = \"0.0.0.0:9100\"\n", ""},
		{"[viscript]\nmetrics = \"127.0.0.1:9109\"\n", ""},
		{"[viscript]\nmetrics = \":9109\"\n", "t.toml:2: viscript.metrics: \":9109\" has no host, which would serve the metrics (no login) on every interface: write \"127.0.0.1:9109\""},
		{"[viscript]\nmetrics = 9109\n", "viscript.metrics: want a string"},
		{"[socks_client]\nserver = \"pk:ac23c0b1775e2e6b84a58bb2a732b1ade5ffa4773fa9e7f239edf73d7a3e3254\"\nmetrics = \"127.0.0.1:9110\"\n", ""},
		{"[socks_server]\nmetrics = \"127.0.0.1\"\n", "socks_server.metrics: \"127.0.0.1\": want host:port"},
		{"[vpn_client]\nmetrics = \"localhost:-1\"\n", "vpn_client.metrics"},
		{"[vpn_server]\nmetrics = \":0\"\n", "vpn_server.metrics"},
		{"[messenger]\nmetrics = \"127.0.0.1:9114\"\n", ""},
		{"[messenger]\nmetrics = \"[::]\"\n", "messenger.metrics"},
		// Two roles cannot serve one address (port 0 picks one each).
		{"[viscript]\nmetrics = \"127.0.0.1:9101\"\n[node]\nidentity = \"demo:a\"\nmetrics = \"127.0.0.1:9101\"\n", "t.toml:5: node.metrics: 127.0.0.1:9101 is [viscript]'s metrics address too"},
		{"[viscript]\nmetrics = \"127.0.0.1:0\"\n[node]\nidentity = \"demo:a\"\nmetrics = \"127.0.0.1:0\"\n", ""},
	} {
		f, err := Parse([]byte(tt.doc), "t.toml")
		if err == nil {
			err = f.CheckMesh()
		}
		if tt.errIn == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.doc, err)
			}
			continue
		}
		var ce *Error
		if err == nil || !strings.Contains(err.Error(), tt.errIn) || !errors.As(err, &ce) {
			t.Errorf("%q: err = %v, want a config error with %q", tt.doc, err, tt.errIn)
		}
	}
	// The tables hand the address on.
	f, err := Parse([]byte("[socks_server]\nmetrics = \"127.0.0.1:9111\"\n[viscript]\nmetrics = \"127.0.0.1:9109\"\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	if f.SocksServer.Metrics != "127.0.0.1:9111" || f.Viscript.Metrics != "127.0.0.1:9109" {
		t.Errorf("socks_server.metrics %q, viscript.metrics %q", f.SocksServer.Metrics, f.Viscript.Metrics)
	}
}

// [manager] cluster is decoded strictly and validated with the key named;
// no cluster is a single manager.
func TestManagerCluster(t *testing.T) {
	b, c := DemoKeyPair("b").Public, DemoKeyPair("c").Public
	peers := `peers = [{ id = "m2", raft_addr = "127.0.0.1:7912", public_key = "` + b.String() + `" }, { id = "m3", raft_addr = "127.0.0.1:7913", public_key = "` + c.String() + `" }]`
	head := "[viscript]\nstate_dir = \"/state\"\n[manager]\nidentity = \"demo:manager\"\n"
	for _, tt := range []struct {
		name, doc, errIn string
	}{
		{"none", "", ""},
		{"three", `cluster = { id = "m1", raft_addr = "127.0.0.1:7911", ` + peers + ` }`, ""},
		{"unknown key", `cluster = { id = "m1", raft_addr = "127.0.0.1:7911", leader = true }`, "leader"},
		{"no id", `cluster = { raft_addr = "127.0.0.1:7911" }`, "manager.cluster.id"},
		{"no raft_addr", `cluster = { id = "m1" }`, "manager.cluster.raft_addr"},
		{"bad raft_addr", `cluster = { id = "m1", raft_addr = "7911" }`, "manager.cluster.raft_addr"},
		{"peer without key", `cluster = { id = "m1", raft_addr = "127.0.0.1:7911", peers = [{ id = "m2", raft_addr = "127.0.0.1:7912" }] }`, "manager.cluster.peers[0].public_key"},
		{"peer twice", `cluster = { id = "m1", raft_addr = "127.0.0.1:7911", peers = [{ id = "m2", raft_addr = "127.0.0.1:7912", public_key = "` + b.String() + `" }, { id = "m2", raft_addr = "127.0.0.1:7913", public_key = "` + c.String() + `" }] }`, "manager.cluster.peers[1].id"},
		{"self with another key", `cluster = { id = "m1", raft_addr = "127.0.0.1:7911", peers = [{ id = "m1", raft_addr = "127.0.0.1:7911", public_key = "` + b.String() + `" }] }`, "manager.cluster.peers[0]"},
		{"election below heartbeat", `cluster = { id = "m1", raft_addr = "127.0.0.1:7911", heartbeat_timeout = "1s", election_timeout = "100ms" }`, "election_timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(head+tt.doc+"\n"), "t.toml")
			if err == nil {
				var cfg manager.Config
				cfg, _, err = f.ManagerConfig()
				if err == nil && tt.doc == "" && cfg.Cluster != nil {
					t.Fatalf("no cluster table gave a cluster: %+v", cfg.Cluster)
				}
				if err == nil && cfg.Cluster != nil && cfg.Cluster.DataDir != "/state/"+ClusterDirName {
					t.Fatalf("data_dir = %q, want the state directory's", cfg.Cluster.DataDir)
				}
			}
			switch {
			case tt.errIn == "" && err != nil:
				t.Fatal(err)
			case tt.errIn != "" && (err == nil || !strings.Contains(err.Error(), tt.errIn)):
				t.Fatalf("err = %v, want one naming %s", err, tt.errIn)
			}
		})
	}
}
