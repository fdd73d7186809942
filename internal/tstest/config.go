package tstest

import (
	"errors"
	"strings"
	"testing"
)

// CheckConfigErr is the check of a Validate table test: with key empty,
// err must be nil; otherwise err must wrap sentinel (the package's
// ErrConfig) and its text must contain key (the dotted config key, with
// a trailing ":" where the test pins that the key is the error's
// subject).
func CheckConfigErr(tb testing.TB, err, sentinel error, key string) {
	tb.Helper()
	switch {
	case key == "" && err != nil:
		tb.Errorf("Validate = %v, want nil", err)
	case key != "" && !errors.Is(err, sentinel):
		tb.Errorf("Validate = %v, want %v naming %s", err, sentinel, key)
	case key != "" && !strings.Contains(err.Error(), key):
		tb.Errorf("Validate = %v, want it to name %s", err, key)
	}
}
