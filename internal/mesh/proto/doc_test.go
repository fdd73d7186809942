package proto

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// docVectors parses the "vector NAME" blocks of docs/protocol.md.
func docVectors(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	var name string
	var cur []byte
	for _, line := range tstest.DocLines(t, "../../../docs/protocol.md") {
		switch {
		case strings.HasPrefix(line, "vector "):
			name, cur = strings.TrimPrefix(line, "vector "), nil
		case name != "" && strings.HasPrefix(line, "```"):
			out[name] = cur
			name = ""
		case name != "":
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			for _, tok := range strings.Fields(line) {
				rep := 1
				if b, n, ok := strings.Cut(tok, "*"); ok {
					tok = b
					var err error
					if rep, err = strconv.Atoi(n); err != nil {
						t.Fatalf("vector %s: bad repeat %q", name, tok)
					}
				}
				b, err := hex.DecodeString(tok)
				if err != nil || len(b) != 1 {
					t.Fatalf("vector %s: bad byte %q", name, tok)
				}
				cur = append(cur, bytes.Repeat(b, rep)...)
			}
		}
	}
	return out
}

// Every vector in docs/protocol.md matches the encoder byte for byte, and
// every vector in the tests is documented.
func TestDocVectors(t *testing.T) {
	doc := docVectors(t)
	want := map[string][]byte{
		"data-ping": AppendData(nil, 0x01020304, KindPing, []byte{0xaa, 0xbb}),
	}
	for _, v := range vectors {
		want[v.name] = mustHex(v.hex)
	}
	for name, b := range want {
		got, ok := doc[name]
		if !ok {
			t.Errorf("vector %s is not in docs/protocol.md", name)
			continue
		}
		if !bytes.Equal(got, b) {
			t.Errorf("vector %s:\n doc  %x\n code %x", name, got, b)
		}
	}
	for name := range doc {
		if _, ok := want[name]; !ok {
			t.Errorf("docs/protocol.md vector %s is not checked", name)
		}
	}
}
