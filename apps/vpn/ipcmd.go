package vpn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// ErrNetConfig is wrapped by errors of IPCommand: a command failed.
var ErrNetConfig = errors.New("network configuration failed")

// ExecFunc runs the program name with args and stdin (nil: none) and
// returns its standard output; a failure includes its standard error.
type ExecFunc func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)

// IPCommand is the NetConfig that runs iproute2's `ip` (addresses,
// links, routes), nftables' `nft` (masquerade) and writes
// /proc/sys/net/ipv4/ip_forward. Everything applies to the network
// namespace of the process.
type IPCommand struct {
	// Exec runs a command; nil runs it with os/exec.
	Exec ExecFunc
	// ForwardPath is the ip_forward sysctl file; empty means
	// /proc/sys/net/ipv4/ip_forward.
	ForwardPath string
}

var _ NetConfig = (*IPCommand)(nil)

func runCommand(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (c *IPCommand) run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	ex := c.Exec
	if ex == nil {
		ex = runCommand
	}
	out, err := ex(ctx, stdin, name, args...)
	if err != nil {
		return out, fmt.Errorf("%w: %s %s: %w", ErrNetConfig, name, strings.Join(args, " "), err)
	}
	return out, nil
}

func (c *IPCommand) ip(ctx context.Context, args ...string) error {
	_, err := c.run(ctx, nil, "ip", args...)
	return err
}

// SetLink implements NetConfig.
func (c *IPCommand) SetLink(ctx context.Context, dev string, mtu int, addr netip.Prefix) error {
	if err := c.ip(ctx, "addr", "flush", "dev", dev); err != nil {
		return err
	}
	if err := c.ip(ctx, "addr", "add", addr.String(), "dev", dev); err != nil {
		return err
	}
	return c.ip(ctx, "link", "set", "dev", dev, "mtu", strconv.Itoa(mtu), "up")
}

func routeArgs(verb string, r Route) []string {
	args := []string{"route", verb, r.Dst.String()}
	if r.Via.IsValid() {
		args = append(args, "via", r.Via.String())
	}
	if r.Dev != "" {
		args = append(args, "dev", r.Dev)
	}
	return args
}

// AddRoute implements NetConfig. It uses `ip route replace`, so a stale
// identical route (left by a killed process) is not an error.
func (c *IPCommand) AddRoute(ctx context.Context, r Route) error {
	return c.ip(ctx, routeArgs("replace", r)...)
}

// DelRoute implements NetConfig.
func (c *IPCommand) DelRoute(ctx context.Context, r Route) error {
	return c.ip(ctx, routeArgs("del", r)...)
}

// RouteTo implements NetConfig with `ip -j route get`.
func (c *IPCommand) RouteTo(ctx context.Context, dst netip.Addr) (Route, error) {
	out, err := c.run(ctx, nil, "ip", "-j", "route", "get", dst.String())
	if err != nil {
		return Route{}, err
	}
	return parseRouteGet(dst, out)
}

// parseRouteGet decodes the JSON of `ip -j route get dst`.
func parseRouteGet(dst netip.Addr, out []byte) (Route, error) {
	var rs []struct {
		Type    string `json:"type"`
		Gateway string `json:"gateway"`
		Dev     string `json:"dev"`
	}
	if err := json.Unmarshal(out, &rs); err != nil || len(rs) == 0 {
		return Route{}, fmt.Errorf("%w: route get %s: unexpected output %q", ErrNetConfig, dst, bytes.TrimSpace(out))
	}
	r := Route{Dst: netip.PrefixFrom(dst, dst.BitLen()), Dev: rs[0].Dev}
	if rs[0].Type == "local" {
		r.Dev = "lo"
	}
	if rs[0].Gateway != "" {
		gw, err := netip.ParseAddr(rs[0].Gateway)
		if err != nil {
			return Route{}, fmt.Errorf("%w: route get %s: gateway %q: %w", ErrNetConfig, dst, rs[0].Gateway, err)
		}
		r.Via = gw
	}
	if r.Dev == "" {
		return Route{}, fmt.Errorf("%w: route get %s: no device in %q", ErrNetConfig, dst, bytes.TrimSpace(out))
	}
	return r, nil
}

// SetForwarding implements NetConfig.
func (c *IPCommand) SetForwarding(_ context.Context, on bool) (bool, error) {
	path := c.ForwardPath
	if path == "" {
		path = "/proc/sys/net/ipv4/ip_forward"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("%w: read ip_forward: %w", ErrNetConfig, err)
	}
	old := strings.TrimSpace(string(b)) == "1"
	v := "0\n"
	if on {
		v = "1\n"
	}
	if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
		return old, fmt.Errorf("%w: write ip_forward: %w", ErrNetConfig, err)
	}
	return old, nil
}

// nftTable is the name of the nftables table of the server on tun.
func nftTable(tun string) string {
	var b strings.Builder
	b.WriteString("skywire_vpn_")
	for _, r := range tun {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// nftRuleset is the script given to `nft -f -`: it (re)creates one table
// of the server's own, so a stale table of a killed server is replaced
// and nothing else in the ruleset is touched.
func nftRuleset(pool netip.Prefix, tun string) string {
	t := nftTable(tun)
	return fmt.Sprintf(`table ip %[1]s {}
delete table ip %[1]s
table ip %[1]s {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr %[2]s oifname != %[3]q masquerade
	}
}
`, t, pool.Masked(), tun)
}

// Masquerade implements NetConfig with nftables.
func (c *IPCommand) Masquerade(ctx context.Context, pool netip.Prefix, tun string) (func(context.Context) error, error) {
	if _, err := c.run(ctx, []byte(nftRuleset(pool, tun)), "nft", "-f", "-"); err != nil {
		return nil, err
	}
	t := nftTable(tun)
	return func(ctx context.Context) error {
		_, err := c.run(ctx, nil, "nft", "delete", "table", "ip", t)
		return err
	}, nil
}
