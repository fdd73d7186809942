package tstest

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// Unhex decodes s, hex digits with any spaces between them for
// readability; bad hex fails the test at once.
func Unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		tb.Fatalf("bad hex %q in the test: %v", s, err)
	}
	return b
}

// DecodeCase is an input of a decoder, in hex (spaces allowed), and the
// error decoding it must give: one that matches Want (errors.Is), or
// none when Want is nil. It is an alias of a plain struct, so that tables
// list their cases unkeyed, one a line.
type DecodeCase = struct {
	Name string
	Hex  string
	Want error
}

// CheckDecodeErrors is the check of a table of hostile and malformed
// inputs: decode runs on each case's input in a subtest named after it.
func CheckDecodeErrors(t *testing.T, decode func([]byte) error, cases []DecodeCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			err := decode(Unhex(t, c.Hex))
			if !errors.Is(err, c.Want) {
				t.Fatalf("decode(%s) = %v, want %v", c.Hex, err, c.Want)
			}
		})
	}
}

// DecodeWant is an input of a decoder, in hex (spaces allowed), and the
// value it must decode to; a plain struct, like DecodeCase.
type DecodeWant[M any] = struct {
	Name string
	Hex  string
	Want M
}

// CheckDecodes is the check of a table of valid inputs (other encoders'
// choices: wide integers, unknown fields): each decodes without an error
// to a value deeply equal to Want, in a subtest named after the case.
func CheckDecodes[M any](t *testing.T, decode func([]byte) (M, error), cases []DecodeWant[M]) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			got, err := decode(Unhex(t, c.Hex))
			if err != nil {
				t.Fatalf("decode(%s): %v", c.Hex, err)
			}
			if !reflect.DeepEqual(got, c.Want) {
				t.Fatalf("decode(%s) = %#v, want %#v", c.Hex, got, c.Want)
			}
		})
	}
}

// CheckReencode is the heart of a decoder's fuzz target, for an input that
// decoded to m: m must encode without an error, the encoding must decode
// to a value deeply equal to m (both through norm, if not nil: for nil
// versus empty slices), and that value must encode to the same bytes.
func CheckReencode[M any](tb testing.TB, m M, encode func(M) ([]byte, error), decode func([]byte) (M, error), norm func(M) M) {
	tb.Helper()
	if norm == nil {
		norm = func(m M) M { return m }
	}
	b, err := encode(m)
	if err != nil {
		tb.Fatalf("re-encode %#v: %v", m, err)
	}
	m2, err := decode(b)
	if err != nil {
		tb.Fatalf("decode of re-encoded %x: %v", b, err)
	}
	if !reflect.DeepEqual(norm(m), norm(m2)) {
		tb.Fatalf("round trip changed %#v to %#v (via %x)", m, m2, b)
	}
	if b2, err := encode(m2); err != nil || !bytes.Equal(b, b2) {
		tb.Fatalf("encoding not canonical: %x, then %x (%v)", b, b2, err)
	}
}

// DocLines returns the lines of a document the tests check (test vectors
// in docs/*.md), failing the test if it cannot be read.
func DocLines(tb testing.TB, path string) []string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read %s: %v", path, err)
	}
	return strings.Split(string(b), "\n")
}
