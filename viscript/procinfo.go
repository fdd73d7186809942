package viscript

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/procfs"
)

// userHZ is the kernel's USER_HZ, the unit of /proc/PID/stat times. It is
// 100 on every Linux architecture Go supports (procfs assumes the same).
const userHZ = 100

// errProcGone means the process does not exist (any more).
var errProcGone = errors.New("process does not exist")

// procReader reads /proc. bootTime is read once: it does not change.
type procReader struct {
	fs       procfs.FS
	bootTime time.Time
}

func newProcReader() (procReader, error) {
	fs, err := procfs.NewFS(procfs.DefaultMountPoint)
	if err != nil {
		return procReader{}, fmt.Errorf("open /proc: %w", err)
	}
	st, err := fs.Stat()
	if err != nil {
		return procReader{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	return procReader{fs: fs, bootTime: time.Unix(int64(st.BootTime), 0)}, nil
}

// stat reads /proc/PID/stat; errProcGone if there is no such process.
func (p procReader) stat(pid int) (procfs.ProcStat, error) {
	if pid <= 0 {
		return procfs.ProcStat{}, errProcGone
	}
	proc, err := p.fs.Proc(pid)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return procfs.ProcStat{}, errProcGone
		}
		return procfs.ProcStat{}, fmt.Errorf("read /proc/%d: %w", pid, err)
	}
	st, err := proc.Stat()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return procfs.ProcStat{}, errProcGone
		}
		return procfs.ProcStat{}, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// startTicks returns the process start time in clock ticks since boot.
func (p procReader) startTicks(pid int) (uint64, error) {
	st, err := p.stat(pid)
	if err != nil {
		return 0, err
	}
	return st.Starttime, nil
}

// startTime converts start ticks to wall-clock time.
func (p procReader) startTime(ticks uint64) time.Time {
	return p.bootTime.Add(time.Duration(ticks) * (time.Second / userHZ))
}

// procStatus says what /proc knows about a recorded process.
type procStatus int

const (
	procDead   procStatus = iota // no such pid, or a zombie
	procAlive                    // pid alive and its start time matches
	procReused                   // pid alive but it is another process
)

func (s procStatus) String() string {
	switch s {
	case procAlive:
		return "alive"
	case procReused:
		return "reused"
	default:
		return "dead"
	}
}

// check says whether pid is still the process that started at ticks.
// Errors other than "gone" count as alive: better to keep watching than
// to declare a live process dead.
func (p procReader) check(pid int, ticks uint64) procStatus {
	st, err := p.stat(pid)
	switch {
	case errors.Is(err, errProcGone):
		return procDead
	case err != nil:
		return procAlive
	case st.Starttime != ticks:
		return procReused
	case st.State == "Z" || st.State == "X":
		return procDead
	default:
		return procAlive
	}
}

// sample is one reading of a process's counters.
type sample struct {
	at      time.Time
	cpu     float64 // seconds of user+system time
	ticks   uint64  // start time
	rss     uint64
	threads int
}

func (p procReader) sample(pid int) (sample, error) {
	st, err := p.stat(pid)
	if err != nil {
		return sample{}, err
	}
	if st.State == "Z" || st.State == "X" {
		return sample{}, errProcGone
	}
	rss := st.ResidentMemory()
	if rss < 0 {
		rss = 0
	}
	return sample{
		at:      time.Now(),
		cpu:     st.CPUTime(),
		ticks:   st.Starttime,
		rss:     uint64(rss),
		threads: st.NumThreads,
	}, nil
}

// fdsAndIO reads the open descriptor count and I/O byte counters. Either
// may be unreadable for another user's process; those read as 0.
func (p procReader) fdsAndIO(pid int) (fds int, read, write uint64) {
	proc, err := p.fs.Proc(pid)
	if err != nil {
		return 0, 0, 0
	}
	if n, err := proc.FileDescriptorsLen(); err == nil {
		fds = n
	}
	if io, err := proc.IO(); err == nil {
		read, write = io.ReadBytes, io.WriteBytes
	}
	return fds, read, write
}
