package shell

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/skywire-mesh/skywire/viscript/control"
)

// completer completes command names, and app names after the commands
// that take one (start, help, status, ping, …), on Tab.
type completer struct {
	names []string // commands and aliases
	apps  func() []string
}

func newCompleter(ctx context.Context, c control.Controller, timeout time.Duration) *completer {
	var names []string
	for _, cmd := range commands {
		names = append(names, cmd.name)
		names = append(names, cmd.aliases...)
	}
	slices.Sort(names)
	var (
		apps   []string
		loaded bool
	)
	return &completer{
		names: names,
		apps: func() []string { // asked once, at the first app completion
			if !loaded {
				loaded = true
				cctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				if cat, err := c.Catalog(cctx); err == nil {
					for _, e := range cat {
						apps = append(apps, e.Name)
					}
					slices.Sort(apps)
				}
			}
			return apps
		},
	}
}

// takesApp: the commands whose first argument may be an app name.
var takesApp = map[string]bool{"start": true, "help": true, "status": true, "ping": true, "ru": true,
	"sd": true, "restart": true, "logs": true, "rm": true}

// complete implements term.Terminal.AutoCompleteCallback.
func (c *completer) complete(line string, pos int, key rune) (string, int, bool) {
	if key != '\t' || pos != len(line) {
		return "", 0, false
	}
	// Complete the last word of the last command only.
	start := strings.LastIndexByte(line, ';') + 1
	cmdText := line[start:]
	words := strings.Fields(cmdText)
	endsBlank := cmdText == "" || strings.HasSuffix(cmdText, " ")
	var cands []string
	var prefix string
	switch {
	case len(words) == 0 || len(words) == 1 && !endsBlank:
		cands = c.names
		if len(words) == 1 {
			prefix = words[0]
		}
	case (len(words) == 1 && endsBlank) || (len(words) == 2 && !endsBlank):
		if cmd := lookup(words[0]); cmd == nil || !takesApp[cmd.name] {
			return "", 0, false
		}
		cands = c.apps()
		if len(words) == 2 {
			prefix = words[1]
		}
	default:
		return "", 0, false
	}
	var match []string
	for _, n := range cands {
		if strings.HasPrefix(n, prefix) {
			match = append(match, n)
		}
	}
	if len(match) == 0 {
		return "", 0, false
	}
	common := match[0]
	for _, m := range match[1:] {
		for !strings.HasPrefix(m, common) {
			common = common[:len(common)-1]
		}
	}
	if len(match) == 1 {
		common += " "
	}
	if len(common) <= len(prefix) {
		return "", 0, false
	}
	nl := line + common[len(prefix):]
	return nl, len(nl), true
}
