package shell

import (
	"bytes"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// tableWriter aligns columns of text output.
type tableWriter struct {
	out io.Writer
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

func newTable(w io.Writer) *tableWriter {
	t := &tableWriter{out: w}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 0, 2, ' ', 0)
	return t
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

// flush writes the table without the padding of empty last cells.
func (t *tableWriter) flush() {
	t.tw.Flush()
	var b strings.Builder
	for _, l := range strings.SplitAfter(t.buf.String(), "\n") {
		if l == "" {
			continue
		}
		b.WriteString(strings.TrimRight(l, " \n"))
		b.WriteByte('\n')
	}
	io.WriteString(t.out, b.String())
	t.buf.Reset()
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
