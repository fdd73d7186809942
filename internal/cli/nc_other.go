//go:build !unix

package cli

import "os"

// backgroundTerminal: without job control there is no SIGTTIN.
func backgroundTerminal(*os.File) bool { return false }
