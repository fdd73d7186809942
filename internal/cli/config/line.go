package config

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/BurntSushi/toml"
)

// lineOfKey finds the line where key is set in a TOML document. The TOML
// library does not report positions of undecoded keys, so this follows
// table headers and key/value lines; it understands bare and quoted keys,
// dotted keys and [table] / [[array]] headers, which is all a config uses.
// It returns 0 when it cannot tell.
func lineOfKey(data []byte, key toml.Key) int {
	want := strings.Join(key, "\x00")
	var table []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			h := strings.Trim(line[:strings.LastIndexByte(line, ']')+1], "[]")
			table = splitKey(h)
			if strings.Join(table, "\x00") == want {
				return n
			}
			continue
		}
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			continue
		}
		full := append(append([]string{}, table...), splitKey(line[:eq])...)
		joined := strings.Join(full, "\x00")
		if joined == want || strings.HasPrefix(want, joined+"\x00") {
			return n
		}
	}
	return 0
}

// splitKey splits a dotted TOML key into its parts, unquoting quoted parts.
func splitKey(s string) []string {
	var parts []string
	var cur strings.Builder
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, strings.TrimSpace(cur.String()))
}
