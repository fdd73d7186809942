package cli

import (
	"strings"
	"testing"
)

// TestUsageErrors: a command given the wrong number of arguments exits 2
// with its usage, made from its name and ArgsUsage (needArgs). The wanted
// texts are the ones these commands had typed by hand before, also when
// the role is chosen by a link's name (skywire-manager).
func TestUsageErrors(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	t.Setenv("SKYWIRE_STATE_DIR", t.TempDir())
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"skywire", "manager", "cluster", "add", "m2"}, "usage: skywire manager cluster add ID RAFT_ADDR PUBKEY"},
		{[]string{"skywire-manager", "cluster", "add"}, "usage: skywire manager cluster add ID RAFT_ADDR PUBKEY"},
		{[]string{"skywire", "manager", "cluster", "remove"}, "usage: skywire manager cluster remove ID"},
		{[]string{"skywire", "manager", "remove", "a", "b"}, "usage: skywire manager remove PUBKEY"},
		{[]string{"skywire", "messenger", "nick", "a"}, "usage: skywire messenger nick PUBKEY|NICK|NAME NICKNAME"},
		{[]string{"skywire", "messenger", "whois"}, "usage: skywire messenger whois PUBKEY|NICK|NAME"},
		{[]string{"skywire", "completion"}, "usage: skywire completion bash|zsh|fish"},
		{[]string{"skywire", "route"}, "usage: skywire route PUBKEY|NAME"},
		{[]string{"skywire", "ping", "a", "b"}, "usage: skywire ping PUBKEY|NAME"},
	} {
		code, _, stderr := run(t, tt.args...)
		if code != 2 || strings.TrimSpace(stderr) != "skywire: "+tt.want {
			t.Errorf("%q: code %d, stderr %q; want 2 and %q", tt.args, code, stderr, "skywire: "+tt.want)
		}
	}
}
