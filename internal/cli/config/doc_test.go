package config

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// configKeys lists, per top-level table of skywire.toml, every key the
// code reads (by reflection over the toml tags of File), nested tables
// and inline tables (managers = [{ public_key, addr }]) included.
func configKeys() map[string][]string {
	out := map[string][]string{}
	var walk func(t reflect.Type, table string)
	walk = func(t reflect.Type, table string) {
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == durationType || isText(t) {
			return
		}
		for _, f := range tomlFields(t) {
			out[table] = append(out[table], f.name)
			walk(f.typ, table)
		}
	}
	for _, f := range tomlFields(reflect.TypeFor[File]()) {
		t := f.typ
		if t.Kind() == reflect.Map {
			t = t.Elem()
		}
		walk(t, f.name)
	}
	for k := range out {
		sort.Strings(out[k])
		out[k] = slicesCompact(out[k])
	}
	return out
}

func slicesCompact(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// sectionText returns the part of the shipped config that documents a
// top-level table: from its header ([T], [T.NAME] or a commented one) to
// the next header of another table. [apps.NAME] keys are documented in
// the comment block of the app catalog as well.
func sectionText(doc, table string) string {
	header := regexp.MustCompile(`^#?\s*\[{1,2}([a-z_]+)`)
	var b strings.Builder
	in := false
	for _, line := range strings.Split(doc, "\n") {
		if m := header.FindStringSubmatch(line); m != nil {
			in = m[1] == table
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	if table == "apps" {
		if i := strings.Index(doc, "# The app catalog"); i >= 0 {
			block := doc[i:]
			if j := strings.Index(block, "\n\n"); j >= 0 {
				block = block[:j]
			}
			b.WriteString(block)
		}
	}
	return b.String()
}

// TestShippedConfigDocumentsEveryKey: every key the code reads is in the
// shipped skywire.toml, set or in a comment (`KEY =`, or a word of the app
// catalog's key list), in its table's part of the file.
func TestShippedConfigDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../../skywire.toml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for table, keys := range configKeys() {
		if table == "nodes" {
			continue // [nodes.NAME] is [node]'s type: documented there
		}
		text := sectionText(doc, table)
		if text == "" {
			t.Errorf("skywire.toml has no [%s] (set or commented) to document %v", table, keys)
			continue
		}
		for _, k := range keys {
			set := regexp.MustCompile(`(?m)(^#?\s*|[{,]\s*)` + regexp.QuoteMeta(k) + `\s*=`)
			word := regexp.MustCompile(`\b` + regexp.QuoteMeta(k) + `\b`)
			if !set.MatchString(text) && !(table == "apps" && word.MatchString(text)) {
				t.Errorf("skywire.toml does not document %s.%s", table, k)
			}
		}
	}
}
