package messenger

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the messenger free of the command layer's libraries:
// the command layer decodes skywire.toml and flags into Config.
func TestImports(t *testing.T) {
	banned := []string{"urfave/cli", "BurntSushi/toml", "skywire/internal/cli", "skywire/manager"}
	var files []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, b := range banned {
				if strings.Contains(p, b) {
					t.Errorf("%s imports %s", file, p)
				}
			}
			// Only the adapter to the node's directory knows the node.
			if strings.HasSuffix(p, "skywire/node") && !strings.HasPrefix(file, "nodedir"+string(filepath.Separator)) {
				t.Errorf("%s imports %s (only messenger/nodedir may)", file, p)
			}
		}
	}
}
