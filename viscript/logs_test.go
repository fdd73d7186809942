package viscript

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

func TestLogsCapture(t *testing.T) {
	e, s := openEnv(t)
	info := e.start(s, "print", "")
	tstest.WaitFor(t, "output captured", func() bool {
		fi, err := os.Stat(s.logPath(info.ID, "print"))
		return err == nil && fi.Size() == 5000
	})
	ctx := context.Background()
	tests := []struct {
		offset   int64
		max      int
		wantLen  int
		wantNext int64
	}{
		{0, 100, 100, 100},
		{4990, 100, 10, 5000},
		{-10, 100, 10, 5000},
		{-1000, 100, 100, 5000}, // tail bounded by max: the last max bytes
		{5000, 100, 0, 5000},    // follow at the end: nothing new
		{9000, 100, 100, 100},   // past the end (rotated): start again
		{0, 0, 5000, 5000},      // max <= 0: default bound
	}
	for _, tt := range tests {
		c, err := s.Logs(ctx, info.ID, tt.offset, tt.max)
		if err != nil {
			t.Fatalf("Logs(%d, %d): %v", tt.offset, tt.max, err)
		}
		if len(c.Data) != tt.wantLen || c.Next != tt.wantNext {
			t.Errorf("Logs(%d, %d) = %d bytes, next %d; want %d, %d", tt.offset, tt.max, len(c.Data), c.Next, tt.wantLen, tt.wantNext)
		}
	}
	c, _ := s.Logs(ctx, info.ID, 0, 64)
	if want := strings.Repeat("x", 63) + "\n"; string(c.Data) != want {
		t.Errorf("content %q", c.Data)
	}
}

func TestLogRotation(t *testing.T) {
	tstest.CheckLeaks(t)
	e := newEnv(t)
	e.cfg.LogMaxBytes = 1000
	e.cfg.LogKeep = 2
	s := e.open()
	info := e.start(s, "print", "")
	path := s.logPath(info.ID, "print")
	tstest.WaitFor(t, "log rotated", func() bool {
		fi, err := os.Stat(path + ".1")
		return err == nil && fi.Size() == 5000
	})
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != 0 {
		t.Fatalf("current log after rotation: %v %v", fi, err)
	}
	// The app keeps writing to the truncated file at its new end.
	if _, err := s.Restart(context.Background(), info.ID); err != nil {
		t.Fatal(err)
	}
	e.track(s)
	tstest.WaitFor(t, "second rotation", func() bool {
		_, err := os.Stat(path + ".2")
		return err == nil
	})
}

func TestRotateFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/a.log"
	for i, content := range []string{"one", "two", "three", "four"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := rotateFile(path, 3); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
	}
	want := map[string]string{path: "", path + ".1": "four", path + ".2": "three", path + ".3": "two"}
	for p, w := range want {
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, []byte(w)) {
			t.Errorf("%s = %q, %v; want %q", p, got, err, w)
		}
	}
	if _, err := os.Stat(path + ".4"); err == nil {
		t.Errorf("kept more than 3 rotated files")
	}
}
