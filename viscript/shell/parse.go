package shell

import (
	"errors"
	"fmt"
	"strings"
)

// errUnterminatedQuote is returned by split for a quote left open.
var errUnterminatedQuote = errors.New("unterminated quote")

// split breaks a command line into commands (separated by ';') and each
// command into words. Words are separated by blanks; single quotes keep
// everything literally, double quotes keep blanks and ';' and honour
// backslash escapes, a backslash outside quotes escapes the next byte.
// Empty commands are dropped.
func split(line string) ([][]string, error) {
	var (
		cmds  [][]string
		words []string
		word  strings.Builder
		inW   bool // a word has started (possibly empty, as in "")
	)
	endWord := func() {
		if inW {
			words = append(words, word.String())
			word.Reset()
			inW = false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
			words = nil
		}
	}
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == ';':
			endCmd()
		case ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n':
			endWord()
		case ch == '\\':
			inW = true
			if i+1 < len(line) {
				i++
				word.WriteByte(line[i])
			}
		case ch == '\'':
			inW = true
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("parse %q: %w", line, errUnterminatedQuote)
			}
			word.WriteString(line[i+1 : i+1+j])
			i += j + 1
		case ch == '"':
			inW = true
			closed := false
			for i++; i < len(line); i++ {
				c := line[i]
				if c == '"' {
					closed = true
					break
				}
				if c == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\') {
					i++
					c = line[i]
				}
				word.WriteByte(c)
			}
			if !closed {
				return nil, fmt.Errorf("parse %q: %w", line, errUnterminatedQuote)
			}
		default:
			inW = true
			word.WriteByte(ch)
		}
	}
	endCmd()
	return cmds, nil
}
