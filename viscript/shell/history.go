package shell

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// history is term.History kept in memory and appended to a file.
type history struct {
	max     int
	entries []string // oldest first
	file    *os.File // nil: memory only
	log     *slog.Logger
}

// openHistory loads path (if not empty) and opens it for appending. A
// file that grew past twice max lines is rewritten with the last max.
// Problems with the file are logged; history then stays in memory.
func openHistory(path string, max int, log *slog.Logger) *history {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &history{max: max, log: log}
	if path == "" {
		return h
	}
	lines, err := readLines(path)
	if err != nil && !os.IsNotExist(err) {
		log.Warn("shell: read history", "path", path, "err", err)
	}
	if len(lines) > max {
		h.entries = lines[len(lines)-max:]
	} else {
		h.entries = lines
	}
	if len(lines) > 2*max {
		if err := rewrite(path, h.entries); err != nil {
			log.Warn("shell: compact history", "path", path, "err", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		log.Warn("shell: open history", "path", path, "err", err)
		return h
	}
	h.file = f
	return h
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for sc.Scan() {
		if l := sc.Text(); strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		return lines, fmt.Errorf("read %s: %w", path, err)
	}
	return lines, nil
}

func rewrite(path string, lines []string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".history-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	for _, l := range lines {
		w.WriteString(l + "\n")
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Add implements term.History: blank lines and repeats of the last entry
// are not recorded.
func (h *history) Add(entry string) {
	if strings.TrimSpace(entry) == "" || strings.ContainsAny(entry, "\r\n") {
		return
	}
	if n := len(h.entries); n > 0 && h.entries[n-1] == entry {
		return
	}
	h.entries = append(h.entries, entry)
	if len(h.entries) > h.max {
		h.entries = append(h.entries[:0], h.entries[len(h.entries)-h.max:]...)
	}
	if h.file != nil {
		if _, err := h.file.WriteString(entry + "\n"); err != nil {
			h.log.Warn("shell: write history", "err", err)
		}
	}
}

// Len implements term.History.
func (h *history) Len() int { return len(h.entries) }

// At implements term.History: 0 is the most recent entry.
func (h *history) At(idx int) string { return h.entries[len(h.entries)-1-idx] }

func (h *history) close() {
	if h.file != nil {
		h.file.Close()
	}
}
