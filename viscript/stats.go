package viscript

import (
	"sync/atomic"
)

// Stats are the supervisor's counters since it started.
type Stats struct {
	// Launches counts app processes started (first starts and restarts);
	// LaunchFailures starts that failed (program missing, limits, …).
	Launches       uint64 `json:"launches"`
	LaunchFailures uint64 `json:"launch_failures"`
	// PolicyRestarts counts restarts by an app's restart policy,
	// ManualRestarts `restart ID`.
	PolicyRestarts uint64 `json:"policy_restarts"`
	ManualRestarts uint64 `json:"manual_restarts"`
	// Exits of app processes: ExitsStopped those asked to stop (shutdown,
	// restart), else ExitsOK with status 0 and ExitsFailed the others
	// (non-zero status, killed by a signal).
	ExitsOK      uint64 `json:"exits_ok"`
	ExitsFailed  uint64 `json:"exits_failed"`
	ExitsStopped uint64 `json:"exits_stopped"`
}

type counters struct {
	launches, launchFailures       atomic.Uint64
	policyRestarts, manualRestarts atomic.Uint64
	exitsOK, exitsFailed           atomic.Uint64
	exitsStopped                   atomic.Uint64
}

// Stats returns the supervisor's counters; List has each app's state and
// restarts.
func (s *Supervisor) Stats() Stats {
	c := &s.ctr
	return Stats{
		Launches: c.launches.Load(), LaunchFailures: c.launchFailures.Load(),
		PolicyRestarts: c.policyRestarts.Load(), ManualRestarts: c.manualRestarts.Load(),
		ExitsOK: c.exitsOK.Load(), ExitsFailed: c.exitsFailed.Load(), ExitsStopped: c.exitsStopped.Load(),
	}
}
