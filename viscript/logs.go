package viscript

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/skywire-mesh/skywire/viscript/control"
)

// maxLogChunk bounds one Logs answer.
const maxLogChunk = 1 << 20

// logPath is STATE/logs/<id>-<name>.log.
func (s *Supervisor) logPath(id uint64, name string) string {
	return filepath.Join(s.cfg.StateDir, logsDir, strconv.FormatUint(id, 10)+"-"+name+".log")
}

// Logs reads the app's current log file from offset (offset < 0: the last
// -offset bytes). If the file was rotated under a follower (offset past its
// end), reading starts again at 0.
func (s *Supervisor) Logs(ctx context.Context, id uint64, offset int64, max int) (control.LogChunk, error) {
	a, err := s.lookup(id)
	if err != nil {
		return control.LogChunk{}, fmt.Errorf("logs: %w", err)
	}
	s.mu.Lock()
	path := s.logPath(id, a.rec.Name)
	s.mu.Unlock()
	if max <= 0 || max > maxLogChunk {
		max = maxLogChunk
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return control.LogChunk{Next: 0}, nil
	}
	if err != nil {
		return control.LogChunk{}, fmt.Errorf("logs of app %d: %w", id, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return control.LogChunk{}, fmt.Errorf("logs of app %d: %w", id, err)
	}
	size := fi.Size()
	if offset < 0 {
		offset = max64(size+offset, size-int64(max), 0)
	} else if offset > size {
		offset = 0
	}
	n := min(int64(max), size-offset)
	buf := make([]byte, n)
	m, err := f.ReadAt(buf, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return control.LogChunk{}, fmt.Errorf("logs of app %d: %w", id, err)
	}
	return control.LogChunk{Data: buf[:m], Next: offset + int64(m)}, nil
}

func max64(a, b, c int64) int64 { return max(a, b, c) }

// rotateLogs copy-truncates the log of every live app that grew past
// LogMaxBytes. Apps write with O_APPEND, so they continue at the new end.
func (s *Supervisor) rotateLogs() {
	type target struct {
		id   uint64
		path string
	}
	var ts []target
	s.mu.Lock()
	for id, a := range s.apps {
		if a.rec.live() {
			ts = append(ts, target{id, s.logPath(id, a.rec.Name)})
		}
	}
	s.mu.Unlock()
	for _, t := range ts {
		fi, err := os.Stat(t.path)
		if err != nil || fi.Size() <= s.cfg.LogMaxBytes {
			continue
		}
		if err := rotateFile(t.path, s.cfg.LogKeep); err != nil {
			s.log.Warn("log rotation failed", "id", t.id, "path", t.path, "err", err)
		}
	}
}

// rotateFile shifts path.1 .. path.(keep-1) up by one, copies path to
// path.1 and truncates path.
func rotateFile(path string, keep int) error {
	if keep < 1 {
		keep = 1
	}
	for i := keep - 1; i >= 1; i-- {
		from, to := path+"."+strconv.Itoa(i), path+"."+strconv.Itoa(i+1)
		if err := os.Rename(from, to); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate %s: %w", from, err)
		}
	}
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	defer src.Close()
	dst, err := os.OpenFile(path+".1", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("rotate: copy %s: %w", path, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	if err := os.Truncate(path, 0); err != nil {
		return fmt.Errorf("rotate: truncate %s: %w", path, err)
	}
	return nil
}
