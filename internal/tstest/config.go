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

// ConfigCase is one row of a Validate table: Mod changes a valid config,
// and Key is what CheckConfigErr wants the error to name ("" = still
// valid). It is an alias of a plain struct, like DecodeCase, so that
// tables list their cases unkeyed, one a line.
type ConfigCase[C any] = struct {
	Name string
	Mod  func(*C)
	Key  string
}

// DefaultsWith is the base of a Validate table whose defaults are not
// valid alone: each call returns a fresh def() with set applied (the
// fields that have no default, such as a client's server key).
func DefaultsWith[C any](def func() C, set func(*C)) func() C {
	return func() C {
		c := def()
		set(&c)
		return c
	}
}

// CheckValidate runs each case as a subtest: a config from base, changed
// by Mod, checked with validate and CheckConfigErr. valid (may be nil)
// further checks a config that passed: the defaults Validate fills in.
func CheckValidate[C any](t *testing.T, sentinel error, base func() C, validate func(*C) error, cases []ConfigCase[C], valid func(t *testing.T, c *C)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			c := base()
			tc.Mod(&c)
			err := validate(&c)
			CheckConfigErr(t, err, sentinel, tc.Key)
			if err == nil && valid != nil {
				valid(t, &c)
			}
		})
	}
}
