package shell

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/skywire-mesh/skywire/viscript/control"
)

// live reports whether an app has a process or will have one again.
func live(a control.AppInfo) bool {
	switch a.State {
	case control.StateRunning, control.StateStopping, control.StateBackoff:
		return true
	}
	return false
}

// resolve turns the one argument of cmd, an ID or an app name, into an ID.
// A name stands for the live app of that name; with none live, for the one
// launched app of that name. More than one is ErrAmbiguous, listing them.
func (sh *shell) resolve(ctx context.Context, cmd string, args []string) (uint64, error) {
	c := lookup(cmd)
	if len(args) != 1 {
		return 0, usageErr(c)
	}
	arg := args[0]
	if arg != "" && arg[0] >= '0' && arg[0] <= '9' {
		id, err := strconv.ParseUint(arg, 10, 64)
		if err != nil {
			shown, _, _ := strings.Cut(c.usage, " ")
			return 0, errorf(ErrUsage, "%s: ID %q is not a decimal number; usage: %s", shown, arg, c.usage)
		}
		return id, nil
	}
	if arg == "" || strings.HasPrefix(arg, "-") {
		return 0, usageErr(c)
	}
	shown, _, _ := strings.Cut(c.usage, " ")
	matches, err := sh.byName(ctx, arg)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", shown, arg, interrupted(ctx, shown, err))
	}
	var alive []control.AppInfo
	for _, a := range matches {
		if live(a) {
			alive = append(alive, a)
		}
	}
	pick := matches
	if len(alive) > 0 {
		pick = alive
	}
	switch len(pick) {
	case 0:
		return 0, errorf(control.ErrNoSuchApp, "%s %s: no launched app is named %s (list_apps shows the apps; start %s starts it)", shown, arg, arg, arg)
	case 1:
		return pick[0].ID, nil
	}
	ids := make([]string, len(pick))
	for i, a := range pick {
		ids[i] = fmt.Sprintf("%d (%s)", a.ID, a.State)
	}
	return 0, errorf(ErrAmbiguous, "%s %s: %d apps are named %s: %s; give one ID", shown, arg, len(pick), arg, strings.Join(ids, ", "))
}

// byName lists the launched apps called name.
func (sh *shell) byName(ctx context.Context, name string) ([]control.AppInfo, error) {
	cctx, cancel := sh.callCtx(ctx)
	defer cancel()
	list, err := sh.c.List(cctx)
	if err != nil {
		return nil, err
	}
	var out []control.AppInfo
	for _, a := range list {
		if a.Name == name {
			out = append(out, a)
		}
	}
	return out, nil
}

// startOrder sorts catalog names so that each comes after the apps it is
// after, otherwise alphabetically.
func startOrder(cat []control.CatalogEntry) []string {
	byName := make(map[string]control.CatalogEntry, len(cat))
	var names []string
	for _, e := range cat {
		byName[e.Name] = e
		names = append(names, e.Name)
	}
	slices.Sort(names)
	placed := map[string]bool{}
	var out []string
	var place func(string)
	place = func(n string) {
		if _, ok := byName[n]; !ok || placed[n] {
			return
		}
		placed[n] = true
		for _, d := range byName[n].After {
			place(d)
		}
		out = append(out, n)
	}
	for _, n := range names {
		place(n)
	}
	return out
}

// startAll starts every catalog app without a live instance, in after
// order, each with its default args; a failure does not stop the rest.
func (sh *shell) startAll(ctx context.Context) (obj, error) {
	cctx, cancel := sh.callCtx(ctx)
	cat, err := sh.c.Catalog(cctx)
	var list []control.AppInfo
	if err == nil {
		list, err = sh.c.List(cctx)
	}
	cancel()
	if err != nil {
		return nil, fmt.Errorf("start all: %w", interrupted(ctx, "start all", err))
	}
	running := map[string]bool{}
	for _, a := range list {
		if live(a) {
			running[a.Name] = true
		}
	}
	started, skipped := []obj{}, []string{}
	var failed []string
	var errs []error
	for _, name := range startOrder(cat) {
		if running[name] {
			skipped = append(skipped, name)
			sh.printf("%s: already running\n", name)
			continue
		}
		if ctx.Err() != nil {
			break
		}
		info, note, err := sh.startOne(ctx, control.StartRequest{Name: name, UseDefault: true, Owner: sh.o.Owner})
		if err != nil {
			failed = append(failed, name)
			errs = append(errs, err)
			if !sh.o.JSON {
				fmt.Fprintln(sh.o.Err, err)
			}
			continue
		}
		sh.printf("started %s: id %d, pid %d%s\n", info.Name, info.ID, info.Pid, note)
		started = append(started, obj{{"id", info.ID}, {"pid", info.Pid}, {"name", info.Name}, {"state", info.State}})
	}
	if ctx.Err() != nil {
		return nil, interrupted(ctx, "start all", ctx.Err())
	}
	if len(errs) > 0 {
		return nil, &allError{msg: fmt.Sprintf("start all: %d of %d apps failed to start: %s",
			len(failed), len(failed)+len(started), strings.Join(failed, ", ")), errs: errs, printed: !sh.o.JSON}
	}
	return obj{{"started", started}, {"skipped", skipped}}, nil
}

// allError is the error of start all / stop all: a summary whose parts
// have been printed already (in text mode), matching each part with
// errors.Is.
type allError struct {
	msg     string
	errs    []error
	printed bool
}

func (e *allError) Error() string {
	if e.printed {
		return e.msg
	}
	parts := make([]string, len(e.errs))
	for i, err := range e.errs {
		parts[i] = err.Error()
	}
	return e.msg + ": " + strings.Join(parts, "; ")
}

func (e *allError) Unwrap() []error { return e.errs }

// stopAll stops every live app, newest first (dependents were started
// after what they need).
func (sh *shell) stopAll(ctx context.Context) (obj, error) {
	list, err := fetch(ctx, sh, "stop all", sh.c.List)
	if err != nil {
		return nil, err
	}
	slices.Reverse(list)
	stopped := []obj{}
	var errs []error
	var failed []string
	for _, a := range list {
		if !live(a) {
			continue
		}
		if ctx.Err() != nil {
			return nil, interrupted(ctx, "stop all", ctx.Err())
		}
		cctx, cancel := sh.callCtx(ctx)
		r, err := sh.c.Shutdown(cctx, a.ID)
		cancel()
		if err != nil {
			errs = append(errs, err)
			failed = append(failed, label(a.ID, a.Name))
			if !sh.o.JSON {
				fmt.Fprintln(sh.o.Err, err)
			}
			continue
		}
		sh.printf("shut down %s: %s (%s)\n", label(a.ID, a.Name), r.Step, stepText[r.Step])
		stopped = append(stopped, obj{{"id", a.ID}, {"name", a.Name}, {"step", r.Step}})
	}
	if len(errs) > 0 {
		return nil, &allError{msg: fmt.Sprintf("stop all: %d apps could not be stopped: %s", len(errs), strings.Join(failed, ", ")),
			errs: errs, printed: !sh.o.JSON}
	}
	if len(stopped) == 0 {
		sh.printf("no app is running\n")
	}
	return obj{{"stopped", stopped}}, nil
}

func (sh *shell) status(ctx context.Context, args []string) (obj, error) {
	if len(args) == 0 {
		return sh.listApps(ctx, nil)
	}
	if len(args) != 1 {
		return nil, usageErr(lookup("status"))
	}
	list, err := fetch(ctx, sh, "status", sh.c.List)
	if err != nil {
		return nil, err
	}
	var out []control.AppInfo
	id, perr := strconv.ParseUint(args[0], 10, 64)
	for _, a := range list {
		if (perr == nil && a.ID == id) || (perr != nil && a.Name == args[0]) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		if perr == nil {
			return nil, errorf(control.ErrNoSuchApp, "status %d: no app with that ID", id)
		}
		return nil, errorf(control.ErrNoSuchApp, "status %s: no launched app is named %s", args[0], args[0])
	}
	for _, a := range out {
		sh.printf("%d %s: %s", a.ID, a.Name, a.State)
		if a.Pid > 0 && (a.State == control.StateRunning || a.State == control.StateStopping) {
			sh.printf(", pid %d, up %s", a.Pid, fmtUptime(a.UptimeS))
		}
		sh.printf("\n")
		sh.printf("  signal:   %s\n", yesNo(a.Connected))
		sh.printf("  daemon:   %s\n", yesNo(a.Daemon))
		sh.printf("  restarts: %d\n", a.Restarts)
		if ex := exitInfo(a); ex != "" {
			label := "exit:    "
			if a.State == control.StateRunning {
				label = "last exit:"
			}
			sh.printf("  %s %s\n", label, ex)
		}
		sh.printf("  args:     %s\n", orDash(quoteArgs(a.Args)))
	}
	return obj{{"apps", out}}, nil
}

func (sh *shell) remove(ctx context.Context, args []string) (obj, error) {
	if len(args) != 1 || args[0] == "" || strings.HasPrefix(args[0], "-") {
		return nil, usageErr(lookup("rm"))
	}
	var ids []uint64
	names := map[uint64]string{}
	if id, err := strconv.ParseUint(args[0], 10, 64); err == nil {
		ids = []uint64{id}
	} else {
		list, err := fetch(ctx, sh, "rm", sh.c.List)
		if err != nil {
			return nil, err
		}
		for _, a := range list {
			if (args[0] == "all" || a.Name == args[0]) && !live(a) {
				ids = append(ids, a.ID)
				names[a.ID] = a.Name
			}
		}
		if len(ids) == 0 && args[0] != "all" {
			return nil, errorf(control.ErrNoSuchApp, "rm %s: no exited app is named %s", args[0], args[0])
		}
	}
	var errs []error
	removed := []uint64{}
	for _, id := range ids {
		cctx, cancel := sh.callCtx(ctx)
		err := sh.c.Remove(cctx, id)
		cancel()
		if err != nil {
			errs = append(errs, interrupted(ctx, "rm", err))
			continue
		}
		removed = append(removed, id)
		sh.printf("removed %s\n", label(id, names[id]))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(removed) == 0 {
		sh.printf("no exited apps to remove\n")
	}
	return obj{{"removed", removed}}, nil
}

func (sh *shell) reload(ctx context.Context, args []string) (obj, error) {
	if len(args) != 0 {
		return nil, usageErr(lookup("reload"))
	}
	cctx, cancel := sh.callCtx(ctx)
	defer cancel()
	r, err := sh.c.Reload(cctx)
	if err != nil {
		return nil, interrupted(ctx, "reload", err)
	}
	var parts []string
	for _, p := range []struct {
		what  string
		names []string
	}{{"added", r.Added}, {"removed", r.Removed}, {"changed", r.Changed}} {
		if len(p.names) > 0 {
			parts = append(parts, p.what+" "+strings.Join(p.names, ", "))
		}
	}
	if len(parts) == 0 {
		sh.printf("catalog reloaded: no changes\n")
	} else {
		sh.printf("catalog reloaded: %s (running apps keep their old settings until restarted)\n", strings.Join(parts, "; "))
	}
	for _, p := range []struct {
		what string
		keys []string
	}{{"admins added", r.AdminsAdded}, {"admins removed (refused from now on)", r.AdminsRemoved}} {
		if len(p.keys) > 0 {
			sh.printf("%s: %s\n", p.what, strings.Join(p.keys, ", "))
		}
	}
	nz := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return obj{{"added", nz(r.Added)}, {"removed", nz(r.Removed)}, {"changed", nz(r.Changed)},
		{"admins_added", nz(r.AdminsAdded)}, {"admins_removed", nz(r.AdminsRemoved)}}, nil
}
