package cli

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// role is a program the binary can be started as: by subcommand
// (`skywire viscript`) or by name (a symlink `skywire-viscript` or
// `viscript`). Adding a role is one entry in roleCommands.
type role struct {
	name    string
	command func(*env) *ucli.Command
}

// roleCommands lists every role that works. Tools that are not roles
// (config, keygen, version, links) are in toolCommands.
func roleCommands() []role {
	return []role{
		{"viscript", viscriptCommand},
		{"node", nodeCommand},
		{"manager", managerCommand},
		{"socks-client", socksClientCommand},
		{"socks-server", socksServerCommand},
		{"vpn-client", vpnClientCommand},
		{"vpn-server", vpnServerCommand},
		{"messenger", messengerCommand},
	}
}

func roleNames() []string {
	var names []string
	for _, r := range roleCommands() {
		names = append(names, r.name)
	}
	sort.Strings(names)
	return names
}

// roleFromArgv0 finds the role named by argv0: it looks at the basename,
// then follows the symlink chain one link at a time, and returns the first
// name that is a role ("ROLE" or "skywire-ROLE"). multi is true when no role
// matched and the binary was started under a name skywire* (the multi-call
// binary itself: the role comes from the first argument). A link under any
// other name is no role, as busybox has it: `ln -s skywire nosuchrole`
// does not make a second skywire.
func roleFromArgv0(argv0 string) (name string, multi bool) {
	known := map[string]bool{}
	for _, r := range roleCommands() {
		known[r.name] = true
	}
	invoked := strings.TrimSuffix(filepath.Base(argv0), ".exe")
	p := argv0
	if !strings.ContainsRune(p, filepath.Separator) {
		if lp, err := lookPath(p); err == nil {
			p = lp
		}
	}
	for i := 0; i < 40; i++ {
		base := strings.TrimSuffix(filepath.Base(p), ".exe")
		if known[base] {
			return base, false
		}
		if r, ok := strings.CutPrefix(base, "skywire-"); ok && known[r] {
			return r, false
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", strings.HasPrefix(invoked, "skywire")
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = target
	}
	return "", false
}

func lookPath(name string) (string, error) {
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(dir, name)
		if st, err := os.Lstat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}
