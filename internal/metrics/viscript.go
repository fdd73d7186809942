package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skywire-mesh/skywire/viscript"
	"github.com/skywire-mesh/skywire/viscript/control"
)

var (
	visApps         = newMetric("viscript", "apps", "Launched apps (sequence IDs in the app table), by state.", gauge, "state")
	visAppUp        = newMetric("viscript", "app_up", "Whether an app's process runs (1) or not (0).", gauge, "id", "name")
	visAppRestarts  = newMetric("viscript", "app_restarts_total", "Restarts of an app, by its policy or by hand (kept across viscript restarts).", counter, "id", "name")
	visAppStart     = newMetric("viscript", "app_start_time_seconds", "When a running app's process started, in seconds since the Unix epoch.", gauge, "id", "name")
	visAppConnected = newMetric("viscript", "app_signal_connected", "Whether an app's signal client is connected (1) or not (0).", gauge, "id", "name")
	visRestarts     = newMetric("viscript", "restarts_total", "App restarts, by kind: policy (the app's restart policy) or manual (restart ID).", counter, "kind")
	visExits        = newMetric("viscript", "exits_total", "App processes that ended, by status: ok (exit status 0), failed (other status, killed by a signal), stopped (asked to stop).", counter, "status")

	viscriptCounters = []counterOf[viscript.Stats]{
		{newMetric("viscript", "launches_total", "App processes started (first starts and restarts).", counter), nil, func(s viscript.Stats) uint64 { return s.Launches }},
		{newMetric("viscript", "launch_failures_total", "App starts that failed (program missing, limits …).", counter), nil, func(s viscript.Stats) uint64 { return s.LaunchFailures }},
		{visRestarts, []string{"policy"}, func(s viscript.Stats) uint64 { return s.PolicyRestarts }},
		{visRestarts, []string{"manual"}, func(s viscript.Stats) uint64 { return s.ManualRestarts }},
		{visExits, []string{"ok"}, func(s viscript.Stats) uint64 { return s.ExitsOK }},
		{visExits, []string{"failed"}, func(s viscript.Stats) uint64 { return s.ExitsFailed }},
		{visExits, []string{"stopped"}, func(s viscript.Stats) uint64 { return s.ExitsStopped }},
	}

	appStates = []control.AppState{control.StateRunning, control.StateStopping, control.StateBackoff, control.StateExited, control.StateFailed}
)

// ViscriptSupervisor is a viscript server's supervisor.
type ViscriptSupervisor interface {
	List(ctx context.Context) ([]control.AppInfo, error)
	Stats() viscript.Stats
}

// Viscript returns the collector of a viscript server's metrics.
func Viscript(s ViscriptSupervisor) prometheus.Collector {
	return collector[viscript.Stats]{
		metrics:  []metric{visApps, visAppUp, visAppRestarts, visAppStart, visAppConnected, visRestarts, visExits},
		counters: viscriptCounters,
		stats:    func() viscript.Stats { return s.Stats() },
		collect:  func(ch chan<- prometheus.Metric, _ viscript.Stats) { collectApps(ch, s) },
	}
}

// collectApps sends the app table's metrics.
func collectApps(ch chan<- prometheus.Metric, s ViscriptSupervisor) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	apps, err := s.List(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(visApps.desc, err)
		return
	}
	states := map[control.AppState]int{}
	for _, a := range apps {
		states[a.State]++
		id := strconv.FormatUint(a.ID, 10)
		up := a.State == control.StateRunning || a.State == control.StateStopping
		visAppUp.emit(ch, b2f(up), id, a.Name)
		visAppRestarts.emit(ch, float64(a.Restarts), id, a.Name)
		visAppConnected.emit(ch, b2f(a.Connected), id, a.Name)
		if up && !a.StartedAt.IsZero() {
			visAppStart.emit(ch, float64(a.StartedAt.UnixNano())/1e9, id, a.Name)
		}
	}
	for _, s := range appStates {
		visApps.emit(ch, float64(states[s]), string(s))
	}
}
