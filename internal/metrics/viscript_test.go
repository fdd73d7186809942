//go:build linux

package metrics

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/viscript"
	"github.com/skywire-mesh/skywire/viscript/control"
)

// A viscript supervisor scraped over HTTP: an app that keeps failing
// under restart = "on-failure" moves its restarts and the failed exits;
// a running app shows up with its start time; stopping it counts a
// stopped exit.
func TestViscriptMetrics(t *testing.T) {
	tstest.CheckLeaks(t)
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	cfg := viscript.Config{
		StateDir: filepath.Join(t.TempDir(), "state"),
		Apps: map[string]viscript.AppSpec{
			"crashy": {Path: sh, DefaultArgs: []string{"-c", "exit 3"}, Restart: viscript.RestartOnFailure, StopTimeout: 2 * time.Second},
			"idle":   {Path: sh, DefaultArgs: []string{"-c", "exec sleep 600"}, StopTimeout: 2 * time.Second},
		},
	}
	sup, err := viscript.New(cfg, tstest.VerboseLogger(t, "viscript: "))
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	addr := serve(t, Viscript(sup)).Addr().String()
	fams := scrape(t, addr)
	for _, st := range []string{"running", "stopping", "backoff", "exited", "failed"} {
		if v, ok := value(fams, "skywire_viscript_apps", "state", st); !ok || v != 0 {
			t.Errorf("apps{state=%q} = %v (present %v), want 0", st, v, ok)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(30*time.Second))
	defer cancel()
	idle, err := sup.Start(ctx, control.StartRequest{Name: "idle"})
	if err != nil {
		t.Fatal(err)
	}
	crashy, err := sup.Start(ctx, control.StartRequest{Name: "crashy"})
	if err != nil {
		t.Fatal(err)
	}
	idleID, crashyID := itoa(idle.ID), itoa(crashy.ID)
	tstest.WaitFor(t, "crashy's restarts to be counted", func() bool {
		fams := scrape(t, addr)
		app, _ := value(fams, "skywire_viscript_app_restarts_total", "id", crashyID, "name", "crashy")
		policy, _ := value(fams, "skywire_viscript_restarts_total", "kind", "policy")
		failed, _ := value(fams, "skywire_viscript_exits_total", "status", "failed")
		launches, _ := value(fams, "skywire_viscript_launches_total")
		return app >= 2 && policy >= 2 && failed >= 2 && launches >= 4
	})
	logScrapeTime(t, "viscript (2 apps)", addr)
	fams = scrape(t, addr)
	if v, ok := value(fams, "skywire_viscript_app_up", "id", idleID, "name", "idle"); !ok || v != 1 {
		t.Errorf("idle app_up = %v (present %v), want 1", v, ok)
	}
	if v, ok := value(fams, "skywire_viscript_app_start_time_seconds", "id", idleID); !ok || time.Since(time.Unix(int64(v), 0)) > time.Hour {
		t.Errorf("idle start time %v (present %v), want about now", v, ok)
	}
	if v, ok := value(fams, "skywire_viscript_apps", "state", "running"); !ok || v < 1 {
		t.Errorf("apps{state=running} = %v (present %v), want at least idle", v, ok)
	}

	if _, err := sup.Shutdown(ctx, idle.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := sup.Shutdown(ctx, crashy.ID); err != nil {
		t.Fatal(err)
	}
	tstest.WaitFor(t, "idle's stop to be counted", func() bool {
		fams := scrape(t, addr)
		stopped, _ := value(fams, "skywire_viscript_exits_total", "status", "stopped")
		up, _ := value(fams, "skywire_viscript_app_up", "id", idleID, "name", "idle")
		return stopped >= 1 && up == 0
	})
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
