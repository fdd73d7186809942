package shell

import (
	"context"
	"io"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// TestRunOnPTY drives Run on a real pseudo-terminal: raw mode, prompt,
// Ctrl-C interrupting logs -f, quit, and the terminal restored after.
func TestRunOnPTY(t *testing.T) {
	tstest.CheckLeaks(t)
	master, slave := tstest.OpenPTY(t)
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	out := newNotifyBuffer()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(out, master) // ends when master is closed
	}()
	defer func() {
		slave.Close() // the master then reads EIO
		master.Close()
		<-copied
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, newFake(), slave, Options{Out: slave, FollowInterval: 5 * time.Millisecond})
	}()
	out.waitFor(t, Prompt, 1)
	type_ := func(s string) {
		if _, err := master.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	type_("la\r")
	out.waitFor(t, "1h2m3s", 1)
	out.waitFor(t, Prompt, 2)
	type_("logs 1 -f\r")
	out.waitFor(t, "hello from echo", 1)
	type_("\x03")
	out.waitFor(t, Prompt, 3)
	type_("quit\r")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-ctx.Done():
		t.Fatalf("Run did not return; output:\n%q", out.String())
	}
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Errorf("terminal mode not restored: %+v -> %+v", before, after)
	}
}
