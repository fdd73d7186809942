package shell

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// session runs the interactive loop over a pipe, as a terminal would feed it.
type session struct {
	t    *testing.T
	pw   *io.PipeWriter
	out  *notifyBuffer
	done chan error
	stop func()

	size   termSize
	resize chan os.Signal
}

func startSession(t *testing.T, o Options) *session {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	in := startInput(ctx, pr, func() { pr.CloseWithError(errInputInterrupted) })
	s := &session{t: t, pw: pw, out: newNotifyBuffer(), done: make(chan error, 1), resize: make(chan os.Signal, 1)}
	s.size = termSize{get: func() (int, int, error) { return 80, 24, nil }, resized: s.resize}
	o.FollowInterval = 5 * time.Millisecond
	o = o.withDefaults()
	go func() { s.done <- interactive(ctx, newFake(), in, s.out, s.size, o) }()
	s.stop = func() {
		cancel()
		in.stop()
		pw.Close()
	}
	t.Cleanup(s.stop)
	return s
}

func (s *session) typ(keys string) {
	s.t.Helper()
	if _, err := s.pw.Write([]byte(keys)); err != nil {
		s.t.Fatal(err)
	}
}

// enter types line and Enter, and waits for want in the output and then
// for prompt to stand there the nth time (the command has finished).
func (s *session) enter(line, want, prompt string, nth int) {
	s.t.Helper()
	s.typ(line + "\r")
	s.out.waitFor(s.t, want, 1)
	s.out.waitFor(s.t, prompt, nth)
}

func (s *session) wait() error {
	s.t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(10 * time.Second):
		s.t.Fatal("interactive session did not end")
		return nil
	}
}

func TestInteractive(t *testing.T) {
	tstest.CheckLeaks(t)
	hist := filepath.Join(t.TempDir(), "history")
	if err := os.WriteFile(hist, []byte("apps\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startSession(t, Options{HistoryPath: hist})
	s.out.waitFor(t, Prompt, 1)

	s.enter("la", "1h2m3s", Prompt, 2)
	if !strings.Contains(s.out.String(), "ID  NAME  PID   STATE    UPTIME  SIGNAL  RESTARTS  EXIT\r\n") {
		t.Errorf("output not in terminal line endings:\n%q", s.out.String())
	}

	// Failing commands print and the shell goes on.
	s.enter("frob", "unknown command frob (try help)", Prompt, 3)

	// Ctrl-C at the prompt clears the line instead of quitting.
	s.enter("ping 99\x03ping 1", "pong from 1 (echo)", Prompt, 4)
	if strings.Contains(s.out.String(), "no app with that ID") {
		t.Error("Ctrl-C did not discard the line")
	}

	// Ctrl-C stops logs -f and returns to the prompt; keys typed while
	// following are kept for the next line.
	s.typ("logs 1 -f\r")
	s.out.waitFor(t, "hello from echo", 1)
	s.typ("pi\x03ng 1\r")
	s.out.waitFor(t, Prompt, 5)
	s.out.waitFor(t, "pong from 1 (echo)", 2)
	s.out.waitFor(t, Prompt, 6)

	// Up-arrow recalls history, including the line loaded from the file.
	s.typ("\x1b[A\r")
	s.out.waitFor(t, "pong from 1 (echo)", 3)

	s.typ("quit\r")
	if err := s.wait(); err != nil {
		t.Fatalf("session ended with %v", err)
	}
	data, err := os.ReadFile(hist)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), "apps\nla\nfrob\nping 1\nlogs 1 -f\nping 1\nquit\n"; got != want {
		t.Errorf("history file %q, want %q", got, want)
	}
	fi, err := os.Stat(hist)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("history mode %v %v", fi.Mode(), err)
	}
}

func TestInteractiveEOF(t *testing.T) {
	tstest.CheckLeaks(t)
	s := startSession(t, Options{})
	s.out.waitFor(t, Prompt, 1)
	s.typ("\x04") // Ctrl-D on an empty line
	if err := s.wait(); err != nil {
		t.Fatal(err)
	}
	s2 := startSession(t, Options{})
	s2.out.waitFor(t, Prompt, 1)
	s2.pw.Close() // terminal gone
	if err := s2.wait(); err != nil {
		t.Fatal(err)
	}
}

func TestHistoryBounded(t *testing.T) {
	p := filepath.Join(t.TempDir(), "h")
	var b strings.Builder
	for i := range 25 {
		b.WriteString(strings.Repeat("x", i+1) + "\n")
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	h := openHistory(p, 10, nil)
	if h.Len() != 10 || h.At(0) != strings.Repeat("x", 25) || h.At(9) != strings.Repeat("x", 16) {
		t.Fatalf("len %d at0 %q", h.Len(), h.At(0))
	}
	h.Add("new")
	h.Add("new")
	h.Add("  ")
	if h.Len() != 10 || h.At(0) != "new" || h.At(1) != strings.Repeat("x", 25) {
		t.Fatalf("after Add: len %d at0 %q at1 %q", h.Len(), h.At(0), h.At(1))
	}
	h.close()
	lines, err := readLines(p)
	if err != nil || len(lines) != 11 || lines[10] != "new" {
		t.Fatalf("file compacted to %d lines (%v): %q", len(lines), err, lines)
	}
}

func TestInteractiveCompletionAndResize(t *testing.T) {
	tstest.CheckLeaks(t)
	s := startSession(t, Options{})
	s.out.waitFor(t, Prompt, 1)
	s.resize <- os.Interrupt // any value: the size is asked again
	s.typ("pin\t1\r")        // "pin" + Tab -> "ping "
	s.out.waitFor(t, "pong from 1 (echo)", 1)
	s.typ("help ec\t\r")
	s.out.waitFor(t, "echo: echo server", 1)
	s.typ("q\r")
	if err := s.wait(); err != nil {
		t.Fatal(err)
	}
}

func TestComplete(t *testing.T) {
	c := newCompleter(context.Background(), newFake(), time.Second)
	tests := []struct {
		line, want string
		ok         bool
	}{
		{"pi", "ping ", true},
		{"rest", "restart ", true},
		{"rel", "reload ", true},
		{"res_", "res_usage ", true},
		{"la; sh", "la; shutdown ", true},
		{"start e", "start echo ", true},
		{"s n", "s node ", true},
		{"stop n", "stop node ", true},
		{"logs e", "logs echo ", true},
		{"help ", "help ", false}, // echo, node: no common prefix
		{"ping 1", "", false},
		{"xyz", "", false},
		{"start echo a", "", false},
	}
	for _, tt := range tests {
		got, pos, ok := c.complete(tt.line, len(tt.line), '\t')
		if ok != tt.ok || ok && (got != tt.want || pos != len(got)) {
			t.Errorf("complete(%q) = %q, %d, %v; want %q, %v", tt.line, got, pos, ok, tt.want, tt.ok)
		}
	}
	if _, _, ok := c.complete("pi", 2, 'x'); ok {
		t.Error("completed on a key other than Tab")
	}
}

// TestInteractiveConnectPrompt: after connect the prompt names the node
// and commands run there; connect local restores the prompt.
func TestInteractiveConnectPrompt(t *testing.T) {
	tstest.CheckLeaks(t)
	_, _, rem := remoteSetup()
	s := startSession(t, Options{Remote: rem})
	s.out.waitFor(t, Prompt, 1)
	s.typ("connect " + nodeR + "\r")
	remotePrompt := "viscript " + shortNode(nodeR) + "> "
	s.out.waitFor(t, remotePrompt, 1)
	s.enter("la", "web", remotePrompt, 2)
	s.enter("connect local", "back on the local viscript", Prompt, 2)
	s.typ("quit\r")
	if err := s.wait(); err != nil {
		t.Fatal(err)
	}
}
