package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"

	"github.com/skywire-mesh/skywire/apps/vpn"
	"github.com/skywire-mesh/skywire/internal/cli/config"
	"github.com/skywire-mesh/skywire/internal/tstest"
)

// resolveApp parses args with the flags of role (as `skywire --config
// FILE ROLE ARGS…` would) and returns what resolve makes of them: the
// role's config as it would start with.
func resolveApp[T any](t *testing.T, role func(*env) *ucli.Command, resolve func(*ucli.Context, *config.File) (T, error), cfgText string, args ...string) (T, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "skywire.toml")
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &env{}
	var got T
	var rerr error
	ran := false
	app := &ucli.App{
		Flags:          globalFlags(),
		ExitErrHandler: func(*ucli.Context, error) {},
		Commands: []*ucli.Command{{Name: "role", Flags: role(e).Flags, Action: func(c *ucli.Context) error {
			ran = true
			f, err := e.loadConfig(c)
			if err != nil {
				return err
			}
			got, rerr = resolve(c, f)
			return nil
		}}},
	}
	if err := app.Run(append([]string{"skywire", "--config", path, "role"}, args...)); err != nil {
		return got, err
	}
	if !ran {
		t.Fatalf("%v: the role did not run", args)
	}
	return got, rerr
}

const appsTestConfig = `
[nodes.a]
identity = "demo:a"
listen_addr = "127.0.0.1:7901"

[nodes.b]
identity = "demo:b"
listen_addr = "127.0.0.1:7902"

[socks_client]
node = "a"
listen = "127.0.0.1:1080"
server = "pk:ac23c0b1775e2e6b84a58bb2a732b1ade5ffa4773fa9e7f239edf73d7a3e3254"
port = 1081

[socks_server]
node = "b"
allow_all = true

[vpn_client]
node = "a"
server = "pk:ac23c0b1775e2e6b84a58bb2a732b1ade5ffa4773fa9e7f239edf73d7a3e3254"

[vpn_server]
node = "b"
allow_all = true
`

// TestVPNServerStateDir: vpn-server keeps its leases where every role
// keeps its state ($SKYWIRE_STATE_DIR, viscript.state_dir), not in a fixed
// /var/lib/skywire/vpn; vpn_server.state_dir and --state-dir choose
// another place.
func TestVPNServerStateDir(t *testing.T) {
	env := t.TempDir()
	t.Setenv("SKYWIRE_STATE_DIR", env)
	for _, tt := range []struct {
		name, extra string
		args        []string
		want        string
	}{
		{"$SKYWIRE_STATE_DIR", "", nil, filepath.Join(env, "vpn")},
		{"viscript.state_dir", "[viscript]\nstate_dir = \"/srv/sky\"\n", nil, "/srv/sky/vpn"},
		{"vpn_server.state_dir", "", nil, "/srv/leases"},
		{"--state-dir", "", []string{"--state-dir", "/run/inst2"}, "/run/inst2/vpn"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			text := appsTestConfig + tt.extra
			if tt.name == "vpn_server.state_dir" {
				text = strings.Replace(text, "[vpn_server]\n", "[vpn_server]\nstate_dir = \"/srv/leases\"\n", 1)
			}
			cfg, err := resolveApp(t, vpnServerCommand, vpnServerConfig, text, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.StateDir != tt.want {
				t.Errorf("leases in %q, want %q", cfg.StateDir, tt.want)
			}
			if err := cfg.Validate(); err != nil {
				t.Errorf("resolved config does not validate: %v", err)
			}
		})
	}
	// A --state-dir also wins over vpn_server.state_dir.
	text := strings.Replace(appsTestConfig, "[vpn_server]\n", "[vpn_server]\nstate_dir = \"/srv/leases\"\n", 1)
	if cfg, err := resolveApp(t, vpnServerCommand, vpnServerConfig, text, "--state-dir", "/run/i"); err != nil || cfg.StateDir != "/run/i/vpn" {
		t.Errorf("--state-dir with vpn_server.state_dir set: %q, %v; want /run/i/vpn", cfg.StateDir, err)
	}
	if d := (vpn.DefaultServerConfig()).StateDir; d != "" {
		t.Errorf("the vpn package's default state dir is %q: a fixed path ignores the roles' state-dir rules", d)
	}
}

// TestAppRoleFlags: what a launcher passes per instance overrides the
// config file, and a bad value names its flag.
func TestAppRoleFlags(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SKYWIRE_STATE_DIR", dir)
	t.Setenv(config.EnvNodeSocket, "")
	other := tstest.KeyPair(t).Public
	sc, err := resolveApp(t, socksClientCommand, socksClientConfig, appsTestConfig,
		"--listen", "127.0.0.1:1090", "--server", other.String(), "--port", "1091", "--node", "b")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Listen != "127.0.0.1:1090" || sc.Server != other || sc.Port != 1091 || sc.NodeSocket != filepath.Join(dir, "node-b.sock") {
		t.Errorf("socks-client with flags: %+v", sc)
	}
	sc, err = resolveApp(t, socksClientCommand, socksClientConfig, appsTestConfig)
	if err != nil || sc.Listen != "127.0.0.1:1080" || sc.Port != 1081 || sc.NodeSocket != filepath.Join(dir, "node-a.sock") {
		t.Errorf("socks-client without flags: %+v, %v", sc, err)
	}
	ss, err := resolveApp(t, socksServerCommand, socksServerConfig, appsTestConfig, "--port", "2000", "--profile", "a")
	if err != nil || ss.Port != 2000 || ss.NodeSocket != filepath.Join(dir, "node-a.sock") {
		t.Errorf("socks-server with flags: %+v, %v", ss, err)
	}
	vc, err := resolveApp(t, vpnClientCommand, vpnClientConfig, appsTestConfig, "--tun", "skyvpn1", "--port", "46", "--server", other.String())
	if err != nil || vc.Tun != "skyvpn1" || vc.Port != 46 || vc.Server != other {
		t.Errorf("vpn-client with flags: %+v, %v", vc, err)
	}
	vs, err := resolveApp(t, vpnServerCommand, vpnServerConfig, appsTestConfig, "--tun", "skyvpns1", "--port", "47")
	if err != nil || vs.Tun != "skyvpns1" || vs.Port != 47 {
		t.Errorf("vpn-server with flags: %+v, %v", vs, err)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--server", "pk:nope"}, "--server"},
		{[]string{"--port", "0"}, "--port 0"},
		{[]string{"--port", "70000"}, "--port 70000"},
		{[]string{"--listen", "1090"}, "--listen"},
		{[]string{"--node", "zz"}, "--node \"zz\""},
	} {
		_, err := resolveApp(t, socksClientCommand, socksClientConfig, appsTestConfig, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("socks-client %v: %v, want an error naming %s", tt.args, err, tt.want)
		}
	}
}

// TestAppStatsStateDir: `ROLE stats --state-dir D` reads the instance
// started with --state-dir D.
func TestAppStatsStateDir(t *testing.T) {
	t.Setenv("SKYWIRE_STATE_DIR", t.TempDir())
	dir := tstest.SocketDir(t)
	for _, args := range [][]string{
		{"skywire", "socks-client", "stats", "--state-dir", dir},
		{"skywire", "socks-client", "--state-dir", dir, "stats"},
		{"skywire", "vpn-server", "stats", "--state-dir", dir},
	} {
		code, _, stderr := run(t, args...)
		if want := filepath.Join(dir, args[1]+".ctl"); code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("%v with nothing running: code %d, %q; want an error naming %s", args, code, stderr, want)
		}
	}
}

// TestAppMetricsFlag: --metrics is checked like the config's metrics, and
// a bad one stops the role before it registers with its node.
func TestAppMetricsFlag(t *testing.T) {
	t.Setenv("SKYWIRE_STATE_DIR", t.TempDir())
	cfg := filepath.Join(t.TempDir(), "skywire.toml")
	if err := os.WriteFile(cfg, []byte("[socks_client]\nserver = \"pk:ac23c0b1775e2e6b84a58bb2a732b1ade5ffa4773fa9e7f239edf73d7a3e3254\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, role := range [][]string{{"socks-client"}, {"socks-server"}, {"vpn-client"}, {"vpn-server"}, {"messenger", "serve"}} {
		for _, tt := range []struct{ addr, want string }{
			{":9110", `--metrics: ":9110" has no host`},
			{"127.0.0.1", `--metrics: "127.0.0.1": want host:port`},
		} {
			args := append(append([]string{"skywire", "--config", cfg}, role...), "--metrics", tt.addr)
			code, _, stderr := run(t, args...)
			if code == 0 || !strings.Contains(stderr, tt.want) {
				t.Errorf("%v: code %d, stderr %q; want an error with %q", args[3:], code, stderr, tt.want)
			}
		}
	}
}
