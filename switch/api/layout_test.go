package api_test

import (
	"context"
	"encoding/json"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/cases"
	"github.com/switchyard/switchyard/switch/journal"
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

// TestEveryRouteNeedsAToken: every route of a fully wired API, the profiler's
// included, answers 401 with a JSON error without a bearer token, and an
// operator's token is refused (403) on the admin-only ones.
func TestEveryRouteNeedsAToken(t *testing.T) {
	f := newFixture(t)
	db := openDB(t, t.TempDir())
	store, err := keys.NewStore(db, keys.Options{Demo: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := hsm.NewSoftware(context.Background(), store, keys.DemoLMK(), hsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lists, err := risk.NewLists(db)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := cases.New(db, cases.Options{Lists: lists, Registry: f.reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	j, err := journal.Open(db, journal.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	called := false
	o := api.Options{Auth: auth, Registry: f.reg, Cases: cs, Keys: store, HSM: h, Lists: lists, Journal: j,
		Settle:        func(context.Context, string) (any, error) { called = true; return nil, nil },
		SAF:           func(string) (any, error) { called = true; return nil, nil },
		ZoneKeyChange: func(context.Context, string, string) (any, error) { called = true; return nil, nil },
		Pprof:         true}
	srv := httptest.NewServer(api.New(o))
	defer srv.Close()
	patterns := append(api.RoutePatterns(o), "GET /debug/pprof/heap")
	if len(patterns) < 50 {
		t.Fatalf("only %d routes: %v", len(patterns), patterns)
	}
	do := func(method, path, token string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb admin.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		return resp.StatusCode, eb.Error
	}
	adminOnly := 0
	for _, p := range patterns {
		method, path, _ := strings.Cut(p, " ")
		for _, v := range []string{"{id}", "{action}", "{rrn}", "{list}", "{kind}", "{value}"} {
			path = strings.ReplaceAll(path, v, "x")
		}
		if st, msg := do(method, path, ""); st != http.StatusUnauthorized || msg == "" {
			t.Errorf("%s without a token: %d %q, want 401 with a JSON error", p, st, msg)
		}
		if strings.Contains(path, "/keys") || strings.Contains(path, "/key-change") || strings.Contains(path, "/debug/pprof") {
			adminOnly++
			if st, _ := do(method, path, "demo-operator-7Kq2"); st != http.StatusForbidden {
				t.Errorf("%s as an operator: %d, want 403", p, st)
			}
		}
	}
	if adminOnly != 13 || called {
		t.Errorf("%d admin-only routes checked (want 13); a handler ran without its role: %v", adminOnly, called)
	}
}
