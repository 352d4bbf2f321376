package server

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// loggerWiring are the functions of the library packages that may take a
// zerolog.Logger as a parameter: the wiring's entry points, which receive the
// command's root logger, and the demo-issuer hook, which hands it to the demo
// wiring to tag (see the package doc).
var loggerWiring = map[string]bool{
	"switch/server.New":             true,
	"switch/server.Open":            true,
	"switch/server.OpenDB":          true, // no options struct: tags Badger's log itself
	"switch/server.StartDemoIssuer": true,
	"switch/server.StartDemoWallet": true, // the demo wallet's hook, as the demo issuer's
}

// TestLoggerConvention holds the library packages (all but the commands:
// internal/cli, cmd, bench) to the one logger convention of the package doc: a
// component takes its zerolog.Logger as a value in the Logger field of its
// Options/Config, never as a parameter or a pointer; only the wiring (this
// package) tags loggers with a component; nothing logs through a global logger
// or to the process's stdout/stderr.
func TestLoggerConvention(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch rel {
			case "internal/cli", "cmd", "bench", "vendor", "testdata":
				return filepath.SkipDir
			}
			if strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		for _, p := range loggerProblems(fset, filepath.ToSlash(filepath.Dir(rel)), f) {
			t.Error(p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("checked only %d files under %s: is the walk broken?", files, root)
	}
}

// TestLoggerConventionCatches shows that the check sees each kind of breach.
func TestLoggerConventionCatches(t *testing.T) {
	src := `package x

import (
	stdlog "log"
	"os"

	zl "github.com/rs/zerolog"
	"github.com/rs/zerolog/log"
)

type Options struct{ Logger *zl.Logger }

type Hook func(addr string, l zl.Logger)

func Open(dir string, l zl.Logger) {
	l = l.With().Str("component", "x").Logger()
	log.Info().Msg("global")
	stdlog.Print("std")
	_ = os.Stderr
	_ = func(l *zl.Logger) {}
	zl.SetGlobalLevel(zl.InfoLevel)
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(loggerProblems(fset, "switch/x", f), "\n")
	for _, want := range []string{
		"x.go:18:2: uses stdlog.Print",
		"x.go:8:2: imports \"github.com/rs/zerolog/log\"",
		"x.go:11:29: field Logger is a pointer",
		"x.go:13:31: switch/x.Hook takes a zerolog.Logger parameter",
		"x.go:15:25: switch/x.Open takes a zerolog.Logger parameter",
		"x.go:16:6: tags a logger with a component outside the wiring",
		"x.go:19:6: uses os.Stderr",
		"x.go:20:13: switch/x.Open takes a zerolog.Logger parameter",
		"x.go:20:13: a *zerolog.Logger",
		"x.go:21:2: sets the global log level",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no problem %q in:\n%s", want, got)
		}
	}
	if p := loggerProblems(fset, "switch/server", mustParse(t, fset, `package server

import "github.com/rs/zerolog"

func OpenDB(dir string, l zerolog.Logger) { _ = l.With().Str("component", "badger") }
`)); len(p) != 0 {
		t.Errorf("the wiring's allowed forms flagged: %v", p)
	}
	// A *log.Logger over the component's own Logger (http.Server.ErrorLog) passes;
	// an import of log used for nothing else is still one.
	if p := loggerProblems(fset, "switch/x", mustParse(t, fset, `package x

import "log"

var l = log.New(nil, "", 0)
`)); len(p) != 0 {
		t.Errorf("log.New over a Logger flagged: %v", p)
	}
	if p := strings.Join(loggerProblems(fset, "switch/x", mustParse(t, fset, `package x

import "log"

var l = log.New(nil, "", 0)

func f() { log.Printf("x"); log.SetOutput(nil) }
`)), "\n"); !strings.Contains(p, "uses log.Printf") || !strings.Contains(p, "uses log.SetOutput") {
		t.Errorf("log.Printf and log.SetOutput beside log.New not flagged: %q", p)
	}
}

// stdlogUses lists the selectors of package name (the standard library's log, as
// the file imports it) in f.
func stdlogUses(f *ast.File, name string) []*ast.SelectorExpr {
	var uses []*ast.SelectorExpr
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == name {
				uses = append(uses, sel)
			}
		}
		return true
	})
	return uses
}

func mustParse(t *testing.T, fset *token.FileSet, src string) *ast.File {
	t.Helper()
	f, err := parser.ParseFile(fset, "y.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// loggerProblems lists the breaches of the logger convention in f, a non-test file
// of the package at dir (relative to the module root).
func loggerProblems(fset *token.FileSet, dir string, f *ast.File) []string {
	var out []string
	report := func(n ast.Node, format string, a ...any) {
		out = append(out, fset.Position(n.Pos()).String()+": "+fmt.Sprintf(format, a...))
	}
	zl := "" // the file's name for github.com/rs/zerolog
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		switch path {
		case "log":
			// Only to build a *log.Logger over the component's own Logger, for a
			// standard library type that wants one (http.Server.ErrorLog): every use
			// of the package must be log.New.
			name := "log"
			if imp.Name != nil {
				name = imp.Name.Name
			}
			if uses := stdlogUses(f, name); len(uses) == 0 {
				report(imp, "imports %q: a library logs through the Logger of its Options", path)
			} else {
				for _, u := range uses {
					if u.Sel.Name != "New" {
						report(u, "uses %s.%s: a library logs through the Logger of its Options (log.New over it only)", name, u.Sel.Name)
					}
				}
			}
		case "github.com/rs/zerolog/log":
			report(imp, "imports %q: a library logs through the Logger of its Options", path)
		case "github.com/rs/zerolog":
			zl = "zerolog"
			if imp.Name != nil {
				zl = imp.Name.Name
			}
		}
	}
	isLogger := func(e ast.Expr) bool {
		if s, ok := e.(*ast.StarExpr); ok {
			e = s.X
		}
		sel, ok := e.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Logger" {
			return false
		}
		x, ok := sel.X.(*ast.Ident)
		return ok && zl != "" && x.Name == zl
	}
	checkParams := func(owner string, ft *ast.FuncType) {
		if ft.Params == nil || loggerWiring[dir+"."+owner] {
			return
		}
		for _, p := range ft.Params.List {
			if isLogger(p.Type) {
				report(p.Type, "%s.%s takes a zerolog.Logger parameter: put it in the Logger field of its options", dir, owner)
			}
		}
	}
	for _, decl := range f.Decls {
		owner := ""
		switch d := decl.(type) {
		case *ast.FuncDecl:
			owner = d.Name.Name
		case *ast.GenDecl:
			if len(d.Specs) == 1 {
				if ts, ok := d.Specs[0].(*ast.TypeSpec); ok {
					owner = ts.Name.Name
				}
			}
		}
		ast.Inspect(decl, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.TypeSpec:
				owner = n.Name.Name
			case *ast.FuncType:
				checkParams(owner, n)
			case *ast.Field:
				if _, ptr := n.Type.(*ast.StarExpr); ptr && isLogger(n.Type) {
					report(n.Type, "a *zerolog.Logger: pass the logger as a value")
				}
				for _, name := range n.Names {
					if _, ptr := n.Type.(*ast.StarExpr); ptr && name.Name == "Logger" {
						report(n.Type, "field Logger is a pointer: make it a zerolog.Logger value")
					}
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if ok && sel.Sel.Name == "Str" && len(n.Args) > 0 && dir != "switch/server" {
					if lit, ok := n.Args[0].(*ast.BasicLit); ok && lit.Value == `"component"` {
						report(n, "tags a logger with a component outside the wiring (switch/server)")
					}
				}
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && zl != "" && x.Name == zl && n.Sel.Name == "SetGlobalLevel" && dir != "switch/server" {
					report(n, "sets the global log level: only the wiring (switch/server) and the commands do")
				}
				if x, ok := n.X.(*ast.Ident); ok && x.Name == "os" && (n.Sel.Name == "Stderr" || n.Sel.Name == "Stdout") {
					report(n, "uses os.%s: a library logs through the Logger of its Options", n.Sel.Name)
				}
			}
			return true
		})
	}
	return out
}
