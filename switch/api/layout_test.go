package api_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLibrariesDoNotImportHTTPPlumbing: the libraries the API serves expose Go
// methods and know nothing of the admin API's authentication or routes (their
// command-line tools, *tool, are commands and may call the API).
func TestLibrariesDoNotImportHTTPPlumbing(t *testing.T) {
	banned := []string{"github.com/switchyard/switchyard/switch/admin", "github.com/switchyard/switchyard/switch/api"}
	fset := token.NewFileSet()
	checked := 0
	for _, root := range []string{"../../risk", "../../keys", "../registry", "../cases", "../journal"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if strings.HasSuffix(d.Name(), "tool") || d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			checked++
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				for _, b := range banned {
					if p == b {
						t.Errorf("%s imports %s", path, p)
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if checked < 20 {
		t.Fatalf("checked only %d files: wrong directories?", checked)
	}
}
