package config

import (
	"encoding"
	"fmt"
	"iter"
	"net"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// The config's Go types, walked by reflection over their toml tags: to
// check the types of what a file holds in our words (with the key and its
// line) before the TOML library decodes it, and to list every key the code
// reads (TestShippedConfigDocumentsEveryKey).

var (
	durationType      = reflect.TypeFor[time.Duration]()
	textUnmarshalType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// tomlField is one key of a table: its name and Go field.
type tomlField struct {
	name  string
	index []int
	typ   reflect.Type
}

// tomlFields lists the keys of a struct type as BurntSushi/toml reads
// them: tagged names, untagged exported fields under their own name, and
// the fields of embedded structs in place. toml:"-" is skipped.
func tomlFields(t reflect.Type) []tomlField {
	var out []tomlField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == "-" {
			continue
		}
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			for _, sub := range tomlFields(f.Type) {
				sub.index = append([]int{i}, sub.index...)
				out = append(out, sub)
			}
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		out = append(out, tomlField{name: tag, index: []int{i}, typ: f.Type})
	}
	return out
}

// isText reports whether t decodes from a TOML string through UnmarshalText.
func isText(t reflect.Type) bool {
	return t.Implements(textUnmarshalType) || reflect.PointerTo(t).Implements(textUnmarshalType)
}

// Address keys: a string HOST:PORT. Listen addresses may use port 0 (any
// free port); addresses to dial may not.
var (
	listenKeys = map[string]bool{"listen_addr": true, "listen": true, "web": true, "control_tcp": true}
	dialKeys   = map[string]bool{"addr": true, "advertise_addrs": true}
)

// checkTypes decodes data loosely and checks every value against the type
// the config gives its key, and every address's port. It returns nil when
// the file does not parse at all: the strict decode reports that.
func checkTypes(data []byte, name string) error {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil
	}
	c := typeChecker{data: data, name: name}
	return c.value(reflect.TypeFor[File](), raw, nil, "")
}

type typeChecker struct {
	data []byte
	name string
}

func (c typeChecker) fail(path []string, label, format string, args ...any) error {
	return &Error{File: c.name, Key: label, Line: lineOfKey(c.data, toml.Key(path)), Msg: fmt.Sprintf(format, args...)}
}

// value checks v (as the TOML library produced it) against t. path is the
// key path for its line; label the dotted key with indexes for the message.
func (c typeChecker) value(t reflect.Type, v any, path []string, label string) error {
	key := ""
	if len(path) > 0 {
		key = path[len(path)-1]
	}
	switch {
	case t == durationType:
		s, ok := v.(string)
		if !ok {
			if _, isInt := v.(int64); isInt {
				return c.fail(path, label, "a duration is a string with a unit, such as \"5s\" or \"1m30s\" (a bare number would be nanoseconds), got %v", v)
			}
			return c.fail(path, label, "want a duration such as \"5s\", got %s", tomlTypeName(v))
		}
		if _, err := time.ParseDuration(s); err != nil {
			return c.fail(path, label, "%q is not a duration (write it like \"5s\", \"300ms\" or \"1m30s\")", s)
		}
		return nil
	case isText(t):
		if _, ok := v.(string); !ok {
			return c.fail(path, label, "want a string, got %s", tomlTypeName(v))
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Interface:
		return nil
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return c.fail(path, label, "want a string, got %s", tomlTypeName(v))
		}
		if s != "" && (listenKeys[key] || dialKeys[key]) {
			if err := checkAddr(s, listenKeys[key]); err != nil {
				return c.fail(path, label, "%q: %v", s, err)
			}
		}
		if key == "metrics" {
			if err := CheckMetricsAddr(s); err != nil {
				return c.fail(path, label, "%v", err)
			}
		}
		return nil
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return c.fail(path, label, "want true or false, got %s", tomlTypeName(v))
		}
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(int64)
		if !ok {
			return c.fail(path, label, "want a whole number, got %s", tomlTypeName(v))
		}
		z := reflect.New(t).Elem()
		switch {
		case z.CanUint() && n < 0:
			return c.fail(path, label, "must not be negative, got %d", n)
		case z.CanUint() && z.OverflowUint(uint64(n)):
			return c.fail(path, label, "%d is too large (at most %d)", n, uint64(1)<<(t.Bits())-1)
		case z.CanInt() && z.OverflowInt(n):
			return c.fail(path, label, "%d is out of range", n)
		}
		return nil
	case reflect.Float32, reflect.Float64:
		switch v.(type) {
		case float64, int64:
			return nil
		}
		return c.fail(path, label, "want a number, got %s", tomlTypeName(v))
	case reflect.Slice:
		var items []any
		switch v := v.(type) {
		case []any:
			items = v
		case []map[string]any:
			for _, m := range v {
				items = append(items, m)
			}
		default:
			return c.fail(path, label, "want a list [ … ], got %s", tomlTypeName(v))
		}
		for i, it := range items {
			if err := c.value(t.Elem(), it, path, fmt.Sprintf("%s[%d]", label, i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map, reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return c.fail(path, label, "want a table, got %s", tomlTypeName(v))
		}
		for k, kt := range tableKeys(t, m) {
			if err := c.value(kt, m[k], append(path[:len(path):len(path)], k), join(label, k)); err != nil {
				return err
			}
		}
		return nil
	}
	return nil
}

// tableKeys yields the keys of the table m that t, a map or a struct,
// has, each with the type of its value: every key of a map; the fields
// of a struct that m sets (an unknown key is the strict decode's to
// report).
func tableKeys(t reflect.Type, m map[string]any) iter.Seq2[string, reflect.Type] {
	return func(yield func(string, reflect.Type) bool) {
		if t.Kind() == reflect.Map {
			for k := range m {
				if !yield(k, t.Elem()) {
					return
				}
			}
			return
		}
		for _, f := range tomlFields(t) {
			if _, ok := m[f.name]; ok && !yield(f.name, f.typ) {
				return
			}
		}
	}
}

func join(label, key string) string {
	if label == "" {
		return key
	}
	return label + "." + key
}

// checkAddr checks a HOST:PORT string; listen addresses may use port 0.
func checkAddr(s string, listen bool) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want HOST:PORT: %v", err)
	}
	p, err := strconv.Atoi(port)
	low := 1
	if listen {
		low = 0
	}
	if err != nil || p < low || p > 65535 {
		return fmt.Errorf("port %q is outside %d-65535", port, low)
	}
	return nil
}

// tomlTypeName names the TOML type of a value as the library decodes it.
func tomlTypeName(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case int64:
		return fmt.Sprintf("the number %d", v)
	case float64:
		return fmt.Sprintf("the number %v", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case []any, []map[string]any:
		return "a list"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date"
	}
	return fmt.Sprintf("%T", v)
}
