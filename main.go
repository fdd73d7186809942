// Command skywire is every program of a skywire mesh in one binary: the role
// comes from the first argument (`skywire viscript`) or from the name it was
// started under (a link named `skywire-viscript` or `viscript`).
package main

import (
	_ "embed"
	"os"

	"github.com/skywire-mesh/skywire/internal/cli"
)

// defaultConfig is used when no skywire.toml is found.
//
//go:embed skywire.toml
var defaultConfig []byte

func main() {
	os.Exit(cli.Main(os.Args, defaultConfig, os.Stdin, os.Stdout, os.Stderr))
}
