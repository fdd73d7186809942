package viscript

import (
	"fmt"
	"syscall"
)

// setLimits sets RLIMIT_NOFILE and RLIMIT_AS (soft and hard) on this
// process. syscall.Setrlimit (not x/sys/unix) also tells the runtime not
// to restore its own NOFILE soft limit at exec.
func setLimits(nofile, as uint64) error {
	set := func(res int, what string, v uint64) error {
		if v == 0 {
			return nil
		}
		var cur syscall.Rlimit
		_ = syscall.Getrlimit(res, &cur)
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: v, Max: v}); err != nil {
			return fmt.Errorf("viscript exec-shim: set %s to %d (hard limit now %d): %w", what, v, cur.Max, err)
		}
		return nil
	}
	if err := set(syscall.RLIMIT_NOFILE, "limits.nofile (RLIMIT_NOFILE)", nofile); err != nil {
		return err
	}
	return set(syscall.RLIMIT_AS, "limits.memory (RLIMIT_AS)", as)
}
