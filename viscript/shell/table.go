package shell

import (
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// tableWriter aligns columns of text output.
type tableWriter struct{ tw *tabwriter.Writer }

func newTable(w io.Writer) *tableWriter {
	return &tableWriter{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

func (t *tableWriter) row(cells ...string) {
	for i, c := range cells {
		// Tabs and newlines in values would break the layout.
		cells[i] = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, c)
	}
	io.WriteString(t.tw, strings.Join(cells, "\t")+"\n")
}

func (t *tableWriter) flush() { t.tw.Flush() }

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
