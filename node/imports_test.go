package node

import (
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

func fileImports(t *testing.T, file, substr string) bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if strings.Contains(p, substr) {
			return true
		}
	}
	return false
}
