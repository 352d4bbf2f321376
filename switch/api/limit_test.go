package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/internal/kvjson"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/cases"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestListLimitBounded: the lists the switch reads whole into memory (oplog,
// changes, incidents, alerts, cases, key audit) refuse a limit past
// kvjson.MaxLimit with 400, so that no token holder has the switch read
// millions of records at once; a limit within it is served.
func TestListLimitBounded(t *testing.T) {
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
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Options{Auth: auth, Registry: f.reg, Cases: cs, Keys: store, HSM: h, Lists: lists}))
	t.Cleanup(srv.Close)
	get := func(path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+registry.DemoAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Status
	}
	for _, path := range []string{"/api/v1/oplog", "/api/v1/changes", "/api/v1/incidents", "/api/v1/alerts", "/api/v1/cases", "/api/v1/keys/audit"} {
		if st, _ := get(fmt.Sprintf("%s?limit=%d", path, 1_000_000_000)); st != http.StatusBadRequest {
			t.Errorf("GET %s?limit=1000000000: %d, want 400", path, st)
		}
		if st, body := get(fmt.Sprintf("%s?limit=%d", path, kvjson.MaxLimit)); st != http.StatusOK {
			t.Errorf("GET %s?limit=%d: %d %s, want 200", path, kvjson.MaxLimit, st, body)
		}
	}
	// A filter by a status (or kind) that does not exist is refused, not answered
	// with an empty list a reviewer would read as "nothing pending"; "all" and each
	// value that exists are served.
	for path, good := range map[string][]string{
		"/api/v1/changes?status=":   {"pending", "approved", "rejected", "cancelled", "expired", "all"},
		"/api/v1/incidents?status=": {"open", "acknowledged", "resolved", "all"},
		"/api/v1/alerts?status=":    {"open", "acknowledged", "recovered", "all"},
		"/api/v1/merchants?status=": {"pending", "active", "frozen", "closed", "all"},
		"/api/v1/terminals?status=": {"pending", "active", "suspended", "closed", "all"},
		"/api/v1/terminals?kind=":   {"pos", "mpos", "softpos", "all"},
		"/api/v1/cases?status=":     {"open", "assigned", "decided", "all"},
	} {
		for _, bad := range []string{"pendng", "PENDING", "bogus"} {
			if st, _ := get(path + bad); st != http.StatusBadRequest {
				t.Errorf("GET %s%s: %d, want 400", path, bad, st)
			}
		}
		for _, v := range good {
			if st, body := get(path + v); st != http.StatusOK {
				t.Errorf("GET %s%s: %d %s, want 200", path, v, st, body)
			}
		}
	}
}

// A text/csv import over 64 MB is refused whole (413), not cut at 64 MB: cut,
// its last rows were dropped (or the last one imported with a field cut in
// two) and the rest was imported as if it were the whole file.
func TestCSVImportOverLimitRefused(t *testing.T) {
	a := newAPIFixture(t)
	csv := "terminal_id,merchant_id,kind,device_serial\n" +
		"T3000001,000000000000001,pos,SN-3001\n" +
		strings.Repeat("\n", 64<<20) + // blank lines, which CSV skips
		"T3000002,000000000000001,pos,SN-3002\n"
	st, body := a.raw(t, "POST", "/api/v1/terminals/import?dry_run=1", registry.DemoOperatorToken, "text/csv", csv)
	if st != http.StatusRequestEntityTooLarge {
		t.Fatalf("a %d MB CSV import: %d %.200s, want 413", len(csv)>>20, st, body)
	}
}
