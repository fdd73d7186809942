package proto

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxName bounds a node name. At 63 bytes a name can never be read as a
// public key (64 hex digits, with or without "pk:").
const MaxName = 63

// ErrBadName is wrapped by CheckName errors.
var ErrBadName = errors.New("bad node name")

// CheckName reports whether name is a valid node name (Hello.Name,
// NodeEntry.Name, [node] name): 1 to 63 ASCII letters, digits, '-', '_'
// and '.', starting with a letter or a digit. ASCII only, so that no two
// names look alike in a terminal while differing in bytes (no homoglyphs,
// no control or invisible characters); without ':' or spaces, so that a
// name is never read as a key, a PUBKEY:PORT or two arguments. Names are
// compared without regard to case (EqualName). "local" is reserved: the
// viscript shell's `connect local` means this machine.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrBadName)
	case len(name) > MaxName:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBadName, len(name), MaxName)
	case !isAlnum(name[0]):
		return fmt.Errorf("%w: %q must start with a letter or a digit", ErrBadName, name)
	case EqualName(name, "local"):
		return fmt.Errorf("%w: %q is reserved (connect local means this machine)", ErrBadName, name)
	}
	for i, r := range name { // by rune, so that "küche" names 'ü', not its first byte
		if r >= utf8.RuneSelf || !isAlnum(byte(r)) && r != '-' && r != '_' && r != '.' {
			what := fmt.Sprintf("%q", r)
			if r == utf8.RuneError {
				what = fmt.Sprintf("byte %#x (not UTF-8)", name[i])
			}
			return fmt.Errorf("%w: %q has %s at byte %d: use ASCII letters, digits, '-', '_' and '.'", ErrBadName, name, what, i)
		}
	}
	return nil
}

// EqualName compares two node names as names are compared everywhere:
// ASCII case-insensitively ("Kitchen-Pi" and "kitchen-pi" are one name).
func EqualName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
