package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/keys"
)

func TestParseStrict(t *testing.T) {
	tests := []struct {
		name, doc       string
		wantKey, wantIn string
		wantLine        int
	}{
		{"unknown top-level key", "colour = 1\n", "colour", "unknown key", 1},
		{"unknown table key", "[viscript]\nstate_dir = \"/x\"\nlog_kep = 3\n", "viscript.log_kep", "unknown key", 3},
		{"unknown app key", "[apps.a]\npath = \"/bin/true\"\n\n[apps.b]\nrestrat = \"always\"\n", "apps.b.restrat", "unknown key", 5},
		{"bad restart", "[apps.a]\npath = \"x\"\n\nrestart = \"sometimes\"\n", "apps.a.restart", "must be", 4},
		{"bad duration", "[apps.a]\nstop_timeout = \"soon\"\n", "apps.a.stop_timeout", "not a duration", 2},
		{"bare number duration", "[node]\nlink_keepalive = 5\n", "node.link_keepalive", "nanoseconds", 2},
		{"bad type", "[viscript]\nlog_keep = \"three\"\n", "viscript.log_keep", `want a whole number, got the string "three"`, 2},
		{"bad type in a list", "[nodes.b]\npeers = [{ public_key = 5, addr = \"127.0.0.1:1\" }]\n", "nodes.b.peers[0].public_key", "want a string, got the number 5", 2},
		{"list for a string", "[node]\n\nlisten_addr = [\"a\"]\n", "node.listen_addr", "want a string, got a list", 3},
		{"port out of range", "[node]\nlisten_addr = \"127.0.0.1:70000\"\n", "node.listen_addr", "outside 0-65535", 2},
		{"dial port 0", "[node]\nmanagers = [{ public_key = \"pk:1a9822028f32a05c41a569e8eb1978859e9347f4322d4a0305688f9050fd9302\", addr = \"127.0.0.1:0\" }]\n", "node.managers[0].addr", "outside 1-65535", 2},
		{"no port", "[manager]\nlisten_addr = \"127.0.0.1\"\n", "manager.listen_addr", "HOST:PORT", 2},
		{"app listen port", "[socks_client]\nlisten = \"127.0.0.1:99999\"\n", "socks_client.listen", "outside", 2},
		{"integer port too large", "[socks_server]\nport = 70000\n", "socks_server.port", "at most 65535", 2},
		{"negative port", "[messenger]\nport = -1\n", "messenger.port", "negative", 2},
		{"placeholder", "[node]\nmanagers = [{ public_key = \"" + ManagerKeyPlaceholder + "\", addr = \"" + ManagerAddrPlaceholder + "\" }]\n", "node.managers", "placeholder", 2},
		{"syntax", "[viscript\n", "", "table name", 0},
		{"bad app name", "[apps.\"a b\"]\npath = \"x\"\n", "apps.a b", "letters", 0},
		{"token needed", "[viscript]\ncontrol_tcp = \"127.0.0.1:1\"\n", "viscript.control_token", "token", 0},
		{"dashboard off loopback without a token", "[viscript]\nweb = \"0.0.0.0:8000\"\n", "viscript.web_token", "not a loopback address", 0},
		{"dashboard token too short", "[viscript]\nweb = \"192.0.2.1:8000\"\nweb_token = \"short\"\n", "viscript.web_token", "at least 16", 0},
		{"dashboard token without web", "[viscript]\nweb_token = \"0123456789abcdef\"\n", "viscript.web_token", "viscript.web", 0},
		{"dashboard address", "[viscript]\nweb = \"localhost\"\n", "viscript.web", "HOST:PORT", 2},
		{"bad public key", "[identity]\npublic_key = \"pk:zz\"\n", "", "", 2},
		{"small log size", "[viscript]\nlog_max_bytes = 10\n", "viscript.log_max_bytes", "at least", 2},
		{"bad admin key", "[viscript]\nadmins = [\"pk:zz\"]\n", "", "", 2},
		{"admin not a list", "[viscript]\nadmins = \"pk:1a9822028f32a05c41a569e8eb1978859e9347f4322d4a0305688f9050fd9302\"\n", "viscript.admins", "want a list", 2},
		{"viscript node unknown", "[viscript]\nnode = \"zz\"\n", "viscript.node", "no node profile", 2},
		{"remote clients", "[viscript]\nmax_remote_clients = 5000\n", "viscript.max_remote_clients", "between 1 and 1024", 2},
		{"remote port", "[viscript]\nremote_port = 70000\n", "viscript.remote_port", "at most 65535", 2},
		{"bad restart line", "[apps.a]\npath = \"x\"\nrestart = \"sometimes\"\n", "apps.a.restart", "must be", 3},
		{"after unknown", "[apps.a]\npath = \"x\"\nafter = [\"b\"]\n", "apps.a.after", `"b" is not an app`, 3},
		{"after cycle", "[apps.a]\nafter = [\"b\"]\n[apps.b]\nafter = [\"a\"]\n", "apps.a.after", "a -> b -> a", 2},
		{"unknown limit", "[apps.a]\nlimits = { nofile = 64, cpu = 2 }\n", "apps.a.limits.cpu", "unknown key", 2},
		{"bad memory", "[apps.a]\n\nlimits = { memory = \"lots\" }\n", "apps.a.limits.memory", "not a size", 3},
		{"bad start_secs", "[apps.a]\nstart_secs = \"-1s\"\n", "apps.a.start_secs", "between", 2},
		{"bad instances", "[apps.a]\ninstances = -2\n", "apps.a.instances", "between", 2},
		{"bad user", "[apps.a]\nuser = \"a b\"\n", "apps.a.user", "user name", 2},
		{"reserved name", "[apps.all]\npath = \"x\"\n", "apps.all", "reserved", 1},
		{"autostart type", "[apps.a]\nautostart = \"yes\"\n", "", "autostart", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "test.toml")
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v (%T), want *config.Error", err, err)
			}
			if tt.wantKey != "" && ce.Key != tt.wantKey {
				t.Errorf("key = %q, want %q (%v)", ce.Key, tt.wantKey, err)
			}
			if tt.wantLine != 0 && ce.Line != tt.wantLine {
				t.Errorf("line = %d, want %d (%v)", ce.Line, tt.wantLine, err)
			}
			if !strings.Contains(err.Error(), tt.wantIn) || !strings.HasPrefix(err.Error(), "test.toml") {
				t.Errorf("error %q should start with the file and contain %q", err, tt.wantIn)
			}
		})
	}
}

func TestParseDefaultsAndApps(t *testing.T) {
	doc := `
[viscript]
state_dir = "/tmp/x"
[apps.sleeper]
path = "/bin/sleep"
default_args = ["60"]
daemon = true
restart = "on-failure"
stop_timeout = "2s"
env = { A = "1" }
`
	f, err := Parse([]byte(doc), "t")
	if err != nil {
		t.Fatal(err)
	}
	a := f.Apps["sleeper"]
	if !a.Daemon || a.Path != "/bin/sleep" || a.DefaultArgs[0] != "60" || a.StopTimeout != 2*time.Second || a.Env["A"] != "1" || a.Restart != "on-failure" {
		t.Errorf("app decoded wrong: %+v", a)
	}
	if f.Viscript.LogKeep != 3 || f.Viscript.LogMaxBytes != 10<<20 {
		t.Errorf("defaults not applied: %+v", f.Viscript)
	}
	f3, err := Parse([]byte(`
[apps.node]
autostart = true
[apps.web]
after = ["node"]
after_timeout = "10s"
start_secs = "3s"
instances = 2
user = "nobody"
limits = { nofile = 4096, memory = "256M" }
`), "t")
	if err != nil {
		t.Fatal(err)
	}
	w := f3.Apps["web"]
	if !f3.Apps["node"].Autostart || w.After[0] != "node" || w.AfterTimeout != 10*time.Second || w.StartWindow != 3*time.Second || w.Instances != 2 || w.User != "nobody" ||
		w.Limits.NoFile != 4096 || w.Limits.Memory != "256M" {
		t.Errorf("supervisor keys decoded wrong: %+v", w)
	}
	f2, _ := Parse([]byte("[apps.x]\npath=\"y\"\n"), "t")
	if f2.Apps["x"].Restart != "no" || f2.Apps["x"].StopTimeout != 5*time.Second {
		t.Errorf("app defaults not applied: %+v", f2.Apps["x"])
	}
}

func TestEmbeddedDefaultParses(t *testing.T) {
	data, err := os.ReadFile("../../../skywire.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(data, "skywire.toml"); err != nil {
		t.Fatalf("the shipped default config is invalid: %v", err)
	}
	if _, err := Parse(DemoConfig(data), "init"); err != nil {
		t.Fatalf("config init --demo template invalid: %v", err)
	}
}

func TestFindOrder(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg"))
	t.Setenv(EnvConfig, "")
	if _, err := Find(""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty dir: %v, want ErrNotFound", err)
	}
	f, err := Load("", []byte("[viscript]\nlog_keep = 7\n"))
	if err != nil || !f.Embedded || f.Viscript.LogKeep != 7 {
		t.Fatalf("embedded fallback: %+v %v", f, err)
	}
	xdg := filepath.Join(dir, "xdg", "skywire", "skywire.toml")
	os.MkdirAll(filepath.Dir(xdg), 0o755)
	os.WriteFile(xdg, nil, 0o644)
	if p, _ := Find(""); p != xdg {
		t.Errorf("got %q, want xdg %q", p, xdg)
	}
	os.WriteFile("skywire.toml", nil, 0o644)
	if p, _ := Find(""); p != "skywire.toml" {
		t.Errorf("got %q, want ./skywire.toml", p)
	}
	env := filepath.Join(dir, "env.toml")
	os.WriteFile(env, nil, 0o644)
	t.Setenv(EnvConfig, env)
	if p, _ := Find(""); p != env {
		t.Errorf("got %q, want $SKYWIRE_CONFIG %q", p, env)
	}
	if p, _ := Find(xdg); p != xdg {
		t.Errorf("explicit must win: got %q", p)
	}
	if _, err := Find(filepath.Join(dir, "missing.toml")); err == nil {
		t.Error("a missing explicit config must be an error")
	}
}

func TestSecretKeyModes(t *testing.T) {
	dir := t.TempDir()
	kp, _ := keys.Generate()
	inline := filepath.Join(dir, "inline.toml")
	os.WriteFile(inline, ManagerConfigText(ManagerTemplate{Identity: kp}), 0o644)
	if _, err := ReadFile(inline); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable config with a secret key: %v, want refusal", err)
	}
	os.Chmod(inline, 0o600)
	f, err := ReadFile(inline)
	if err != nil {
		t.Fatal(err)
	}
	if sk, err := f.SecretKey(); err != nil || sk != kp.Secret {
		t.Errorf("SecretKey: %v", err)
	}

	keyFile := filepath.Join(dir, "node.key")
	if err := keys.WriteSecretKeyFile(keyFile, kp.Secret); err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(dir, "ref.toml")
	os.WriteFile(ref, []byte("[identity]\nsecret_key_file = \"node.key\"\n"), 0o644)
	f, err = ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	if sk, err := f.SecretKey(); err != nil || sk != kp.Secret {
		t.Errorf("key file relative to config: %v", err)
	}
	os.Chmod(keyFile, 0o640)
	if _, err := f.SecretKey(); !errors.Is(err, keys.ErrKeyFileMode) {
		t.Errorf("0640 key file: %v, want ErrKeyFileMode", err)
	}
	other, _ := keys.Generate()
	bad := []byte("[identity]\npublic_key = \"" + other.Public.String() + "\"\nsecret_key = \"" + kp.Secret.Text() + "\"\n")
	if _, err := Parse(bad, "t"); err == nil || !strings.Contains(err.Error(), "identity.public_key") {
		t.Errorf("mismatched public key: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	data, _ := os.ReadFile("../../../skywire.toml")
	f.Add(data)
	f.Add([]byte("[apps.a]\npath='x'\nrestart='always'\n"))
	f.Add([]byte("[viscript]\nlog_keep = 1\n[[x]]\n"))
	f.Add([]byte("[nodes.b]\npeers = [{ public_key = 5, addr = \"127.0.0.1:0\" }]\n[socks_server]\nport = 70000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if f, err := Parse(b, "fuzz"); err == nil { // must not panic
			_ = f.CheckMesh()
		}
		_ = lineOfKey(b, []string{"apps", "a", "b"})
	})
}

// config check (CheckMesh) catches what fails only at start: two roles
// with one key, a demo key off loopback, and a bad app section, each with
// its key and line.
func TestCheckMesh(t *testing.T) {
	mgr := `[manager]
identity = "demo:m"
listen_addr = "127.0.0.1:7900"
`
	tests := []struct {
		name, doc, key, in string
		line               int
	}{
		{"manager and node share a key", mgr + "\n[node]\nidentity = \"demo:m\"\nlisten_addr = \"127.0.0.1:7901\"\n", "node.identity", "same key", 6},
		{"two nodes share a key", "[nodes.a]\nidentity = \"demo:x\"\n[nodes.b]\nidentity = \"demo:x\"\n", "nodes.b.identity", "as [nodes.a]", 4},
		{"demo key off loopback", "[node]\nidentity = \"demo:a\"\nlisten_addr = \"0.0.0.0:7901\"\n", "node.identity", "only on loopback", 2},
		{"bad app section", "[messenger]\nnode = \"\"\nmax_message = -5\n", "messenger.max_message", "outside", 3},
		{"vpn mtu", "[vpn_server]\nmtu = 70\n", "vpn_server.mtu", "outside", 2},
		{"bad node name", "[node]\nidentity = \"demo:a\"\nname = \"kitchen pi\"\n", "node.name", "letters, digits", 3},
		{"two nodes share a name", "[nodes.a]\nidentity = \"demo:x\"\nname = \"pi\"\n[nodes.b]\nidentity = \"demo:y\"\nname = \"PI\"\n", "nodes.b.name", "also the name of [nodes.a]", 6},
		{"fine", mgr + "[node]\nidentity = \"demo:a\"\nlisten_addr = \"127.0.0.1:7901\"\n", "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.doc), "test.toml")
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			err = f.CheckMesh()
			if tt.key == "" {
				if err != nil {
					t.Fatalf("CheckMesh: %v", err)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v (%T), want *config.Error", err, err)
			}
			if ce.Key != tt.key || ce.Line != tt.line || !strings.Contains(err.Error(), tt.in) {
				t.Errorf("got %v (key %q line %d), want key %q line %d and %q", err, ce.Key, ce.Line, tt.key, tt.line, tt.in)
			}
		})
	}
}

// TestViscriptRemoteKeys: [viscript] admins, node, remote_port and
// max_remote_clients decode into viscript.Config.
func TestViscriptRemoteKeys(t *testing.T) {
	const k = "pk:1a9822028f32a05c41a569e8eb1978859e9347f4322d4a0305688f9050fd9302"
	f, err := Parse([]byte("[viscript]\nadmins = [\""+k+"\"]\nnode = \"b\"\nremote_port = 9\nmax_remote_clients = 3\n\n[nodes.b]\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	v := f.Viscript
	if len(v.Admins) != 1 || v.Admins[0].String() != k || v.Node != "b" || v.RemotePort != 9 || v.MaxRemoteClients != 3 {
		t.Errorf("decoded %+v", v)
	}
}
