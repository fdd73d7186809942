package tstest

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Build is one program a test package's TestMain builds: Pkg (a go build
// package argument, relative to the test's directory) is built, with cgo
// off, to a binary called Name whose path is stored in *Path.
type Build struct {
	Name, Pkg string
	Path      *string
}

// MainWithBuilds is a TestMain: it builds each program into one temporary
// directory, runs the tests, removes the directory and exits with the
// tests' code. A failed build prints go build's output and exits 1
// without running any test.
func MainWithBuilds(m *testing.M, builds ...Build) {
	dir, err := os.MkdirTemp("", "skywire-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, b := range builds {
		*b.Path = filepath.Join(dir, b.Name)
		// go test puts its own GOROOT/bin first on the test's PATH.
		cmd := exec.Command("go", "build", "-o", *b.Path, b.Pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b.Pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// StdioPipes returns the pipes to cmd's stdin and from its stdout
// (os/exec's StdinPipe and StdoutPipe, so call it before cmd.Start),
// failing the test at once if they cannot be made.
func StdioPipes(tb testing.TB, cmd *exec.Cmd) (stdin io.WriteCloser, stdout io.ReadCloser) {
	tb.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err = cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	return stdin, stdout
}
