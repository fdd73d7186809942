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
		{"bad restart", "[apps.a]\nrestart = \"sometimes\"\n", "apps.a.restart", "must be", 0},
		{"bad duration", "[apps.a]\nstop_timeout = \"soon\"\n", "", "", 2},
		{"bad type", "[viscript]\nlog_keep = \"three\"\n", "", `line 2 (last key "viscript.log_keep")`, 0},
		{"syntax", "[viscript\n", "", "table name", 0},
		{"bad app name", "[apps.\"a b\"]\npath = \"x\"\n", "apps.a b", "letters", 0},
		{"token needed", "[viscript]\ncontrol_tcp = \"127.0.0.1:1\"\n", "viscript.control_token", "token", 0},
		{"bad public key", "[identity]\npublic_key = \"pk:zz\"\n", "", "", 2},
		{"small log size", "[viscript]\nlog_max_bytes = 10\n", "viscript.log_max_bytes", "at least", 0},
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
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Parse(b, "fuzz") // must not panic
		_ = lineOfKey(b, []string{"apps", "a", "b"})
	})
}
