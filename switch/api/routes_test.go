package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/risk/profile"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/cases"
	"github.com/switchyard/switchyard/switch/journal"
)

// TestEveryRouteNeedsAToken: every route of a fully wired API, the profiler's
// included, answers 401 with a JSON error without a bearer token, and an
// operator's token is refused (403) on the admin-only ones.
func TestEveryRouteNeedsAToken(t *testing.T) {
	srv, patterns, called := fullAPI(t)
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
		// One convention for paths: every route of the API is under /api/v1/ (the
		// profiler keeps Go's usual /debug/pprof/).
		if !strings.HasPrefix(path, "/api/v1/") && !strings.HasPrefix(path, "/debug/pprof/") {
			t.Errorf("%s: not under /api/v1/", p)
		}
		path = fillPath(path)
		if st, msg := do(method, path, ""); st != http.StatusUnauthorized || msg == "" {
			t.Errorf("%s without a token: %d %q, want 401 with a JSON error", p, st, msg)
		}
		if strings.Contains(path, "/keys") || strings.Contains(path, "/key-change") || strings.Contains(path, "/debug/pprof") ||
			strings.Contains(path, "/cluster/import") {
			adminOnly++
			if st, _ := do(method, path, "demo-operator-7Kq2"); st != http.StatusForbidden {
				t.Errorf("%s as an operator: %d, want 403", p, st)
			}
		}
	}
	if adminOnly != 19 || *called { // 15 with the dual control routes (keys/components, keys/{id}/export-components, keys/{id}/cancel-ceremony), the journal import's two, and keys/card-hash-key/export
		t.Errorf("%d admin-only routes checked (want 19); a handler ran without its role: %v", adminOnly, *called)
	}
}

// fillPath puts "x" for each of a route pattern's wildcards.
func fillPath(path string) string {
	for _, v := range []string{"{id}", "{action}", "{rrn}", "{list}", "{kind}", "{value}", "{name}", "{server}"} {
		path = strings.ReplaceAll(path, v, "x")
	}
	return path
}

// TestWriteRoutesByRole is the role matrix of the routes that change something
// (every method but GET), built from the router: a reviewer reaches only approve
// and reject, an analyst only the risk rules, lists and review cases, and an
// operator neither approve nor reject, nor the users', keys' or cluster's routes
// (403 before any handler runs). A new write route open to reviewers or analysts
// fails here until it is added on purpose.
func TestWriteRoutesByRole(t *testing.T) {
	srv, patterns, _ := fullAPI(t)
	reaches := func(method, path, token string) bool {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized
	}
	want := map[string][]string{
		"reviewer": {"POST /api/v1/changes/{id}/approve", "POST /api/v1/changes/{id}/reject"},
		"analyst": {"POST /api/v1/cases/{id}/assign", "POST /api/v1/cases/{id}/decide", "POST /api/v1/risk/rules/reload",
			"POST /api/v1/risk/lists", "DELETE /api/v1/risk/lists/{list}/{kind}/{value}"},
	}
	got := map[string][]string{}
	for _, p := range patterns {
		method, path, _ := strings.Cut(p, " ")
		if method == "GET" || method == "HEAD" {
			continue
		}
		for role, token := range map[string]string{"operator": "demo-operator-7Kq2", "reviewer": "demo-reviewer-3Xm9", "analyst": "demo-analyst-8Rt5"} {
			if reaches(method, fillPath(path), token) {
				got[role] = append(got[role], p)
			}
		}
	}
	for _, role := range []string{"reviewer", "analyst"} {
		slices.Sort(got[role])
		slices.Sort(want[role])
		if !slices.Equal(got[role], want[role]) {
			t.Errorf("write routes a %s reaches:\n  %s\nwant:\n  %s", role, strings.Join(got[role], "\n  "), strings.Join(want[role], "\n  "))
		}
	}
	for _, p := range got["operator"] {
		if strings.Contains(p, "/approve") || strings.Contains(p, "/reject") || strings.Contains(p, "/users") ||
			strings.Contains(p, "/keys/") || strings.Contains(p, "/cluster/") {
			t.Errorf("an operator reaches %s", p)
		}
	}
	if len(got["operator"]) < 10 {
		t.Errorf("an operator reaches only %d write routes: %v", len(got["operator"]), got["operator"])
	}
}

// fullAPI serves a fully wired API (registry, cases, keys, lists, journal, the
// injected operations, the profiler) with the demo tokens; called says whether
// an injected operation ran.
func fullAPI(t *testing.T) (*httptest.Server, []string, *bool) {
	t.Helper()
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
		Settle:             func(context.Context, string) (any, error) { called = true; return nil, nil },
		SAF:                func(string) (any, error) { called = true; return nil, nil },
		SAFParked:          func(string) (any, error) { called = true; return nil, nil },
		SAFRequeue:         func(context.Context, uint64, admin.Principal) (any, error) { called = true; return nil, nil },
		SAFResolve:         func(context.Context, uint64, admin.Principal, string) (any, error) { called = true; return nil, nil },
		ZoneKeyChange:      func(context.Context, string, string) (any, error) { called = true; return nil, nil },
		CardHashKey:        func(context.Context) (any, error) { called = true; return nil, nil },
		ClusterStatus:      func(context.Context) (any, error) { called = true; return nil, nil },
		ClusterImportState: func(context.Context) (any, error) { called = true; return nil, nil },
		ClusterImport:      func(context.Context, api.JournalImport) (any, error) { called = true; return nil, nil },
		Pprof:              true}
	o.Profiles, o.RefreshProfiles = profile.NewSet(nil), func(context.Context) (any, error) { called = true; return nil, nil }
	srv := httptest.NewServer(api.New(o))
	t.Cleanup(srv.Close)
	patterns := append(api.RoutePatterns(o), "GET /debug/pprof/heap")
	if len(patterns) < 50 {
		t.Fatalf("only %d routes: %v", len(patterns), patterns)
	}
	return srv, patterns, &called
}

// TestUnknownKeyRoutesNeedAToken: a path under /api/v1/keys/ that is no route, or a
// route with another method, answers 401 without a token and 403 to an operator,
// as when the whole key API sat behind the admin check; only an admin learns 404.
func TestUnknownKeyRoutesNeedAToken(t *testing.T) {
	db := openDB(t, t.TempDir())
	store, err := keys.NewStore(db, keys.Options{Demo: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := hsm.NewSoftware(context.Background(), store, keys.DemoLMK(), hsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Options{Auth: auth, Keys: store, HSM: h}))
	defer srv.Close()
	for _, c := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/api/v1/keys/a/b/c", "", 401},
		{"DELETE", "/api/v1/keys/demo.ZPK", "", 401},
		{"DELETE", "/api/v1/keys/demo.ZPK", "demo-operator-7Kq2", 403},
		{"GET", "/api/v1/keys/a/b/c", "demo-admin-1Hz6", 404},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s with %q: %d, want %d", c.method, c.path, c.token, resp.StatusCode, c.want)
		}
	}
}

// TestAnswersNotCached: every answer of a GET route, found or not, refused by
// its handler or not, says Cache-Control: no-store and X-Content-Type-Options:
// nosniff, so that no browser or proxy keeps a journal record, a key inventory
// or a user list, and none reads a merchant name as HTML. Before, the answers
// had neither header.
func TestAnswersNotCached(t *testing.T) {
	srv, patterns, _ := fullAPI(t)
	n := 0
	for _, p := range patterns {
		method, path, _ := strings.Cut(p, " ")
		if method != http.MethodGet || strings.HasPrefix(path, "/debug/pprof/") {
			continue
		}
		req, _ := http.NewRequest(method, srv.URL+fillPath(path), nil)
		req.Header.Set("Authorization", "Bearer demo-admin-1Hz6")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if cc, ns := resp.Header.Get("Cache-Control"), resp.Header.Get("X-Content-Type-Options"); cc != "no-store" || ns != "nosniff" {
			t.Errorf("%s (%d): Cache-Control %q, X-Content-Type-Options %q", p, resp.StatusCode, cc, ns)
		}
		n++
	}
	if n < 30 {
		t.Fatalf("only %d GET routes checked", n)
	}
}
