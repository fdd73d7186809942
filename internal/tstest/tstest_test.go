package tstest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB that keeps what is logged and reported.
type recorder struct {
	testing.TB
	logs, errors []string
}

func (r *recorder) Helper()         {}
func (r *recorder) Log(args ...any) { r.logs = append(r.logs, fmt.Sprint(args...)) }
func (r *recorder) Errorf(format string, a ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, a...))
}

func TestWaitFor(t *testing.T) {
	CheckLeaks(t)
	var n atomic.Int32
	WaitFor(t, "the fifth poll", func() bool { return n.Add(1) == 5 })
	if got := n.Load(); got != 5 {
		t.Errorf("cond ran %d times, want 5", got)
	}
}

// SyncBuffer.WaitFor returns once a write from another goroutine
// completes the text, also when it arrives in pieces.
func TestSyncBufferWaitFor(t *testing.T) {
	CheckLeaks(t)
	var b SyncBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, p := range []string{"log: ", "node ", "connection ", "lost\n"} {
			b.Write([]byte(p))
		}
	}()
	b.WaitFor(t, "connection lost", time.Minute)
	if got := b.String(); !strings.Contains(got, "connection lost") {
		t.Errorf("WaitFor returned with %q in the buffer", got)
	}
	<-done

	// Text that never comes fails the test, showing what there is.
	r := &fatalRecorder{recorder: recorder{TB: t}}
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		b.WaitFor(r, "never", time.Millisecond)
	}()
	<-waited
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], `"never"`) || !strings.Contains(r.errors[0], "node connection lost") {
		t.Errorf("failures %q, want one naming the text and showing the buffer", r.errors)
	}
}

// fatalRecorder is a recorder whose Fatalf ends the goroutine, as
// testing's does.
type fatalRecorder struct{ recorder }

func (r *fatalRecorder) Fatalf(format string, a ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, a...))
	runtime.Goexit()
}

func TestLogWriter(t *testing.T) {
	r := &recorder{TB: t}
	Logger(r, "a: ").Debug("hello", "k", 1)
	LogWriter(r, "b: ").Write([]byte("line\n"))
	if len(r.logs) != 2 || r.logs[1] != "b: line" {
		t.Fatalf("logged %q", r.logs)
	}
	if want := "a: time="; !strings.HasPrefix(r.logs[0], want) {
		t.Errorf("logged %q, want it to start with %q", r.logs[0], want)
	}
}

func TestImports(t *testing.T) {
	imps := Imports(t, ".")
	if !slices.Contains(imps, Import{File: "imports.go", Path: "go/parser"}) {
		t.Errorf("Imports(.) = %v, no go/parser in imports.go", imps)
	}
	if !slices.Contains(imps, Import{File: "tstest_test.go", Path: "sync/atomic"}) {
		t.Errorf("Imports(.) = %v, without test files", imps)
	}
	if slices.ContainsFunc(imps, func(i Import) bool { return i.File != "imports.go" && i.Path == "go/parser" }) {
		t.Errorf("Imports(.) = %v, from another directory", imps)
	}
	r := &recorder{TB: t}
	CheckImports(r, ".", "go/parse", "no/such")
	if len(r.errors) != 1 {
		t.Errorf("CheckImports reported %q, want one error for imports.go", r.errors)
	}
	// tstest imports no package of this module but keys, so that every
	// package's tests can use it.
	for _, imp := range Imports(t, ".") {
		if p := imp.Path; strings.HasPrefix(p, module+"/") && p != module+"/keys" {
			t.Errorf("%s imports %s", imp.File, p)
		}
	}
}

const module = "github.com/skywire-mesh/skywire"

func TestImportsRecursive(t *testing.T) {
	imps := Imports(t, "./...")
	if !slices.ContainsFunc(imps, func(i Import) bool { return i.File == "meshtest/mesh.go" }) {
		t.Errorf("Imports(./...) = %v, without meshtest", imps)
	}
}

func TestPipeListener(t *testing.T) {
	CheckLeaks(t)
	ln := NewPipeListener()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	c, err := ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	go c.Write([]byte("x"))
	if b := make([]byte, 1); func() error { _, err := io.ReadFull(s, b); return err }() != nil || b[0] != 'x' {
		t.Error("the accepted end does not read what the dialled end wrote")
	}
	c.Close()
	s.Close()
	ln.Close()
	ln.Close()
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	if _, err := ln.Dial(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial after Close: %v", err)
	}
	a, b := net.Pipe()
	defer a.Close()
	if err := ln.Push(b); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Push after Close: %v", err)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("the conn Push refused is not closed: Write = %v", err)
	}
}

func TestSocketDir(t *testing.T) {
	dir := SocketDir(t)
	if len(filepath.Join(dir, "node.sock")) > 100 {
		t.Errorf("SocketDir = %q: too long for a unix socket", dir)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("SocketDir = %q: %v", dir, err)
	}
}

func TestCheckConfigErr(t *testing.T) {
	errConfig := errors.New("config")
	named := fmt.Errorf("%w: a.b: must be set", errConfig)
	for _, tc := range []struct {
		err  error
		key  string
		fail bool
	}{
		{nil, "", false},
		{named, "", true},
		{named, "a.b:", false},
		{named, "a.c", true},
		{nil, "a.b", true},
		{errors.New("a.b: must be set"), "a.b", true},
	} {
		r := &recorder{TB: t}
		CheckConfigErr(r, tc.err, errConfig, tc.key)
		if got := len(r.errors) > 0; got != tc.fail {
			t.Errorf("CheckConfigErr(%v, %q) failed %v, want %v", tc.err, tc.key, got, tc.fail)
		}
	}
}

// TestCheckValidate: each case starts from a fresh base (here from
// DefaultsWith), Mod applies, and valid sees exactly the configs that
// passed.
func TestCheckValidate(t *testing.T) {
	type conf struct{ n, def int }
	errConfig := errors.New("config")
	validate := func(c *conf) error {
		if c.n < 0 {
			return fmt.Errorf("%w: t.n: negative", errConfig)
		}
		c.def = 7
		return nil
	}
	var checked []int
	base := DefaultsWith(func() conf { return conf{def: 7} }, func(c *conf) { c.n = 1 })
	CheckValidate(t, errConfig, base, validate, []ConfigCase[conf]{
		{"base", func(c *conf) {}, ""},
		{"bigger", func(c *conf) { c.n += 2 }, ""},
		{"negative", func(c *conf) { c.n = -1 }, "t.n:"},
	}, func(t *testing.T, c *conf) {
		if c.def != 7 {
			t.Errorf("valid saw a config Validate did not fill: %+v", *c)
		}
		checked = append(checked, c.n)
	})
	if !slices.Equal(checked, []int{1, 3}) {
		t.Errorf("valid saw n = %v, want [1 3] (each case from a fresh base)", checked)
	}
}

// TestServeTCP: the echo answers on every connection, and the cleanup
// waits for the serving goroutines (CheckLeaks would see them).
func TestServeTCP(t *testing.T) {
	CheckLeaks(t)
	t.Run("many", func(t *testing.T) {
		addr := ServeTCP(t, Echo)
		for i := range 3 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckEcho(c, []byte(fmt.Sprint("hello ", i))); err != nil {
				t.Error(err)
			}
			c.Close()
		}
	})
	t.Run("once", func(t *testing.T) {
		want := errors.New("served")
		addr, served := ServeTCPOnce(t, func(c net.Conn) error {
			_, err := io.WriteString(c, "x")
			return errors.Join(err, want)
		})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if b, err := io.ReadAll(c); err != nil || string(b) != "x" {
			t.Errorf("read %q, %v; want x and EOF (closed after serve)", b, err)
		}
		if err := Await(t, served, WaitTimeout, "serve's result"); !errors.Is(err, want) {
			t.Errorf("served = %v, want %v", err, want)
		}
	})
}
