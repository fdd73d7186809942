package messenger

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/skywire-mesh/skywire/internal/tstest"
)

// TestImports keeps the messenger free of the command layer's libraries:
// the command layer decodes skywire.toml and flags into Config.
func TestImports(t *testing.T) {
	tstest.CheckImports(t, "./...", "urfave/cli", "BurntSushi/toml", "skywire/internal/cli", "skywire/manager")
	// Only the adapter to the node's directory knows the node.
	for _, imp := range tstest.Imports(t, "./...") {
		if strings.HasSuffix(imp.Path, "skywire/node") && !strings.HasPrefix(imp.File, "nodedir"+string(filepath.Separator)) {
			t.Errorf("%s imports %s (only messenger/nodedir may)", imp.File, imp.Path)
		}
	}
}
