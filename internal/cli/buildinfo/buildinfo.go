// Package buildinfo holds the version stamped in by the build
// (-ldflags "-X github.com/skywire-mesh/skywire/internal/cli/buildinfo.Version=v1.2.3 ...").
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
	i := Info{Version: Version, Commit: Commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if i.Commit == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					i.Commit = s.Value
				}
			}
		}
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	return i
}
