package proto

import (
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// TestMeshCoreImportsNothingAbove keeps internal/mesh (secure, link, proto,
// session and their tests) below the roles and the command layer: it may
// import keys, the shared plumbing and test support, nothing that uses it.
func TestMeshCoreImportsNothingAbove(t *testing.T) {
	tstest.CheckImports(t, "../...",
		"skywire/node", "skywire/manager", "skywire/internal/cli", "skywire/apps",
		"skywire/appnet", "skywire/appsignal", "skywire/viscript", "skywire/messenger",
		"urfave/cli", "BurntSushi/toml")
}
