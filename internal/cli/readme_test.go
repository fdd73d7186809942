package cli

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// readmeCommands returns the commands of README.md's "What works today"
// table: for each row, the names after `skywire` (a|b alternatives split)
// and the words after them.
func readmeCommands(t *testing.T) [][2][]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "## What works today")
	if start < 0 {
		t.Fatal(`README.md has no "## What works today" section`)
	}
	text = text[start:]
	if end := strings.Index(text[3:], "\n## "); end >= 0 {
		text = text[:end+3]
	}
	row := regexp.MustCompile("(?m)^\\| `skywire ([^`]*)`")
	var rows [][2][]string
	for _, m := range row.FindAllStringSubmatch(text, -1) {
		words := strings.Fields(strings.ReplaceAll(m[1], `\|`, "|"))
		var rest []string
		if len(words) > 1 {
			rest = strings.Split(words[1], "|")
		}
		rows = append(rows, [2][]string{strings.Split(words[0], "|"), rest})
	}
	if len(rows) == 0 {
		t.Fatal("README.md's role table has no rows")
	}
	return rows
}

// TestReadmeRoleTable: README's table lists every role and tool, no
// command that does not exist, and every subcommand of each; every role
// has a one-line description in --help. The table cannot drift from the
// command definitions.
func TestReadmeRoleTable(t *testing.T) {
	e := &env{}
	app := e.app()
	listed := map[string]bool{}
	subListed := map[string]bool{}
	for _, r := range readmeCommands(t) {
		for _, name := range r[0] {
			listed[name] = true
			cmd := app.Command(name)
			if cmd == nil {
				t.Errorf("README lists `skywire %s`, which is no command", name)
				continue
			}
			if len(cmd.Subcommands) == 0 || len(r[1]) == 0 {
				continue
			}
			for _, sub := range r[1] {
				if sub == "" || strings.HasPrefix(sub, "-") || strings.HasPrefix(sub, "[") || unicode.IsUpper(rune(sub[0])) {
					continue
				}
				if cmd.Command(sub) == nil {
					t.Errorf("README lists `skywire %s %s`, which is no command", name, sub)
				}
				subListed[name+" "+sub] = true
			}
		}
	}
	var want []string
	for _, cmd := range app.Commands {
		if cmd.Hidden || cmd.Name == "help" {
			continue
		}
		want = append(want, cmd.Name)
		if !listed[cmd.Name] {
			t.Errorf("README's table does not list `skywire %s` (%s)", cmd.Name, cmd.Usage)
		}
		for _, sub := range cmd.Subcommands {
			if !sub.Hidden && sub.Name != "help" && !subListed[cmd.Name+" "+sub.Name] {
				t.Errorf("README's table does not list `skywire %s %s` (%s)", cmd.Name, sub.Name, sub.Usage)
			}
		}
	}
	if len(want) < len(roleNames())+len(toolNames(e)) {
		t.Errorf("commands %v: fewer than the roles and tools", want)
	}
	_, help, _ := run(t, "skywire", "--help")
	for _, r := range roleCommands() {
		cmd := r.command(e)
		if cmd.Usage == "" || strings.Contains(cmd.Usage, "\n") {
			t.Errorf("role %s has no one-line description: %q", r.name, cmd.Usage)
			continue
		}
		if !slices.ContainsFunc(strings.Split(help, "\n"), func(l string) bool {
			f := strings.Fields(l)
			return len(f) > 1 && f[0] == r.name && strings.Contains(l, cmd.Usage)
		}) {
			t.Errorf("skywire --help does not show role %s with %q:\n%s", r.name, cmd.Usage, help)
		}
	}
}
