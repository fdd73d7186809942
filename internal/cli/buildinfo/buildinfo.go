// Package buildinfo holds the version stamped in by the build
// (-ldflags "-X github.com/skywire-mesh/skywire/internal/cli/buildinfo.Version=v1.2.3 ...").
// A build without those flags (a plain `go build`) falls back to the VCS
// stamp Go embeds: the commit, and whether the tree had changes.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set by the linker; see the Makefile.
var (
	Version = "dev"
	Commit  = ""
)

// Info is what `skywire version` prints.
type Info struct {
	Version, Commit, GoVersion, Platform string
}

// Get returns the build's version, falling back to the VCS stamp Go embeds.
func Get() Info {
	var settings []debug.BuildSetting
	if bi, ok := debug.ReadBuildInfo(); ok {
		settings = bi.Settings
	}
	return get(Version, Commit, settings)
}

// get is Get with the linker's values and the build settings as
// arguments. Without a linker stamp, the version is "dev+" and the first
// 12 hex digits of vcs.revision ("-dirty" if vcs.modified), so two
// builds from different commits never print the same line.
func get(version, commit string, settings []debug.BuildSetting) Info {
	i := Info{Version: version, Commit: commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	var rev string
	var modified bool
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if i.Commit == "" {
		i.Commit = rev
	}
	if i.Version == "dev" && rev != "" {
		i.Version = "dev+" + rev[:min(12, len(rev))]
		if modified {
			i.Version += "-dirty"
		}
	}
	if i.Commit == "" {
		// Go stamps nothing with -buildvcs=false or outside a git
		// directory it recognises (a git worktree, whose .git is a
		// file, up to at least Go 1.26): `make build` stamps always.
		i.Commit = "unknown (build with make build, or go build -buildvcs=true in a git clone)"
	}
	return i
}
