//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package shell

import (
	"context"
	"os"

	"github.com/skywire-mesh/skywire/viscript/control"
)

// runTTY falls back to reading lines without editing on systems without
// poll(2).
func runTTY(ctx context.Context, c control.Controller, f *os.File, o Options) error {
	return runScript(ctx, c, f, o)
}
