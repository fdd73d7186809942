package vpn

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// recorder is an ExecFunc that records commands and answers route get.
type recorder struct {
	cmds []string
	out  map[string]string
	fail string
}

func (r *recorder) exec(_ context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	c := name + " " + strings.Join(args, " ")
	if stdin != nil {
		c += " <<" + string(stdin)
	}
	r.cmds = append(r.cmds, c)
	if r.fail != "" && strings.HasPrefix(c, r.fail) {
		return nil, errors.New("exit status 2: RTNETLINK answers: File exists")
	}
	return []byte(r.out[c]), nil
}

func TestIPCommand(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{out: map[string]string{
		"ip -j route get 198.51.100.7": `[{"dst":"198.51.100.7","gateway":"192.0.2.1","dev":"eth0","prefsrc":"192.0.2.10","flags":[],"uid":0,"cache":[]}]`,
	}}
	c := &IPCommand{Exec: rec.exec}
	if err := c.SetLink(ctx, "skyvpn0", 1400, netip.MustParsePrefix("10.77.0.2/24")); err != nil {
		t.Fatal(err)
	}
	r, err := c.RouteTo(ctx, addr("198.51.100.7"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Route{Dst: netip.MustParsePrefix("198.51.100.7/32"), Via: addr("192.0.2.1"), Dev: "eth0"}); r != want {
		t.Errorf("RouteTo = %v, want %v", r, want)
	}
	if err := c.AddRoute(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := c.AddRoute(ctx, Route{Dst: netip.MustParsePrefix("0.0.0.0/1"), Dev: "skyvpn0"}); err != nil {
		t.Fatal(err)
	}
	if err := c.DelRoute(ctx, r); err != nil {
		t.Fatal(err)
	}
	undo, err := c.Masquerade(ctx, netip.MustParsePrefix("10.77.0.0/24"), "skyvpns0")
	if err != nil {
		t.Fatal(err)
	}
	if err := undo(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ip addr flush dev skyvpn0",
		"ip addr add 10.77.0.2/24 dev skyvpn0",
		"ip link set dev skyvpn0 mtu 1400 up",
		"ip -j route get 198.51.100.7",
		"ip route replace 198.51.100.7/32 via 192.0.2.1 dev eth0",
		"ip route replace 0.0.0.0/1 dev skyvpn0",
		"ip route del 198.51.100.7/32 via 192.0.2.1 dev eth0",
		"nft -f - <<" + nftRuleset(netip.MustParsePrefix("10.77.0.0/24"), "skyvpns0"),
		"nft delete table ip skywire_vpn_skyvpns0",
	}
	if !slices.Equal(rec.cmds, want) {
		t.Errorf("commands:\n%s\nwant\n%s", strings.Join(rec.cmds, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(want[7], `ip saddr 10.77.0.0/24 oifname != "skyvpns0" masquerade`) {
		t.Errorf("ruleset does not masquerade the pool:\n%s", want[7])
	}

	rec.fail = "ip route replace"
	err = c.AddRoute(ctx, r)
	if !errors.Is(err, ErrNetConfig) || !strings.Contains(err.Error(), "File exists") {
		t.Errorf("failing command: %v, want ErrNetConfig with the command's message", err)
	}
}

func TestParseRouteGet(t *testing.T) {
	tests := []struct {
		name, out string
		want      Route
		ok        bool
	}{
		{"gateway", `[{"dst":"1.2.3.4","gateway":"10.0.0.1","dev":"eth0"}]`, Route{Via: addr("10.0.0.1"), Dev: "eth0"}, true},
		{"on link", `[{"dst":"10.0.0.9","dev":"veth1","prefsrc":"10.0.0.2"}]`, Route{Dev: "veth1"}, true},
		{"local", `[{"type":"local","dst":"1.2.3.4","dev":"eth0"}]`, Route{Dev: "lo"}, true},
		{"empty", `[]`, Route{}, false},
		{"not json", `1.2.3.4 via 10.0.0.1 dev eth0`, Route{}, false},
		{"bad gateway", `[{"gateway":"x","dev":"eth0"}]`, Route{}, false},
		{"no dev", `[{"gateway":"10.0.0.1"}]`, Route{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := addr("1.2.3.4")
			r, err := parseRouteGet(a, []byte(tc.out))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			tc.want.Dst = netip.PrefixFrom(a, 32)
			if tc.ok && r != tc.want {
				t.Errorf("got %v, want %v", r, tc.want)
			}
		})
	}
}

func TestSetForwarding(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ip_forward")
	if err := os.WriteFile(path, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &IPCommand{ForwardPath: path}
	old, err := c.SetForwarding(context.Background(), true)
	if err != nil || old {
		t.Fatalf("SetForwarding(true) = %v, %v; want false, nil", old, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "1\n" {
		t.Errorf("file has %q", b)
	}
	if old, _ := c.SetForwarding(context.Background(), false); !old {
		t.Error("old value not reported as on")
	}
}

func TestNFTTableName(t *testing.T) {
	if got := nftTable("sky-vpn.0"); got != "skywire_vpn_sky_vpn_0" {
		t.Errorf("nftTable = %q", got)
	}
}

// FuzzParseRouteGet: no output of `ip -j route get` panics the parser.
func FuzzParseRouteGet(f *testing.F) {
	f.Add([]byte(`[{"dst":"1.2.3.4","gateway":"10.0.0.1","dev":"eth0"}]`))
	f.Add([]byte(`[{"type":"local","dev":"lo"}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, out []byte) {
		r, err := parseRouteGet(addr("1.2.3.4"), out)
		if err == nil && r.Dev == "" {
			t.Fatalf("route without a device from %q", out)
		}
	})
}
