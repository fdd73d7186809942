package tstest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// An Import is one import path named by one Go file.
type Import struct {
	File string // the file, as a path below the directory of the pattern
	Path string // the import path
}

// Imports returns the imports of the Go files that pattern names: a
// directory ("." for the package under test), or a directory followed by
// "/..." for it and every directory below it. Every Go file counts: test
// files, and files for every platform and build tag.
func Imports(tb testing.TB, pattern string) []Import {
	tb.Helper()
	root, recursive := strings.CutSuffix(pattern, "/...")
	if root == "" || root == "..." {
		root = "."
	}
	var imports []Import
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			imports = append(imports, Import{File: rel, Path: p})
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("listing the imports of %s: %v", pattern, err)
	}
	return imports
}

// CheckImports fails tb once for every import, in the Go files that
// pattern names (see Imports), whose path contains one of banned. It is
// how a package's test keeps the core from importing the command layer,
// the config-file library or another layer (STYLE.md 2).
func CheckImports(tb testing.TB, pattern string, banned ...string) {
	tb.Helper()
	for _, imp := range Imports(tb, pattern) {
		for _, b := range banned {
			if strings.Contains(imp.Path, b) {
				tb.Errorf("%s imports %s (it must not import %s)", imp.File, imp.Path, b)
			}
		}
	}
}
