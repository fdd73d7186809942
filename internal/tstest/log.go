package tstest

import (
	"io"
	"log/slog"
	"strings"
	"testing"
)

// Logger returns a logger that writes every record, debug included, to
// tb's log (printed for a failing test, or with -v), each line starting
// with prefix.
func Logger(tb testing.TB, prefix string) *slog.Logger {
	return slog.New(slog.NewTextHandler(LogWriter(tb, prefix), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// VerboseLogger is Logger under go test -v and nil otherwise (the code
// under test then logs nothing): for tests whose logs are too many to keep
// for every run.
func VerboseLogger(tb testing.TB, prefix string) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return Logger(tb, prefix)
}

// LogWriter returns a writer that logs each Write to tb (without its final
// newline), starting with prefix.
func LogWriter(tb testing.TB, prefix string) io.Writer { return logWriter{tb, prefix} }

type logWriter struct {
	tb     testing.TB
	prefix string
}

func (w logWriter) Write(p []byte) (int, error) {
	w.tb.Log(w.prefix + strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
