package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
)

func writeRules(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := writeFile(dir, name, content); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeFile(dir, name, content string) error {
	return os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
}

const bigRound = `rules:
  - {id: big-round, condition: "txn.amount >= 500000 && txn.amount % 100000 == 0",
     action: decline, response_code: "05", reason: round-amount}
`

// TestRiskAPI: the risk routes' roles, a refused reload with file:line, list
// edits with their audit (moved from risk.TestAdminAPI).
func TestRiskAPI(t *testing.T) {
	dir := writeRules(t, map[string]string{"a.yaml": bigRound})
	db := openDB(t, t.TempDir())
	e, err := risk.New(dir, risk.Options{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	auth, err := admin.NewAuthenticator([]admin.Token{
		{Token: "op-token", Principal: admin.Principal{Name: "olga", Role: admin.RoleOperator}},
		{Token: "an-token", Principal: admin.Principal{Name: "anna", Role: admin.RoleAnalyst}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Options{Auth: auth, Risk: e}))
	defer srv.Close()
	ctx := t.Context()
	op := &apiclient.Client{BaseURL: srv.URL, Token: "op-token"}
	an := &apiclient.Client{BaseURL: srv.URL, Token: "an-token"}
	anon := &apiclient.Client{BaseURL: srv.URL}

	var info risk.RulesInfo
	if err := op.Do(ctx, http.MethodGet, "/api/v1/risk/rules", nil, &info); err != nil {
		t.Fatal(err)
	}
	if info.Version != e.RuleSet().Version || len(info.Rules) != 1 || info.Rules[0].ID != "big-round" || info.Rules[0].Line != 2 {
		t.Errorf("rules info %+v", info)
	}
	status := func(err error) int {
		if ae, ok := err.(*apiclient.APIError); ok {
			return ae.Status
		}
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		return 200
	}
	if s := status(anon.Do(ctx, http.MethodGet, "/api/v1/risk/rules", nil, nil)); s != 401 {
		t.Errorf("no token: %d", s)
	}
	if s := status(op.Do(ctx, http.MethodPost, "/api/v1/risk/rules/reload", nil, nil)); s != 403 {
		t.Errorf("operator reload: %d", s)
	}
	add := risk.AddListEntry{List: "deny", Kind: "terminal", Value: "T0000009", TTL: "7d", Note: "closed shop"}
	if s := status(op.Do(ctx, http.MethodPost, "/api/v1/risk/lists", add, nil)); s != 403 {
		t.Errorf("operator list add: %d", s)
	}

	// Reload: a bad file is refused with file:line and the old rules stay.
	v0 := e.RuleSet().Version
	if err := writeFile(dir, "b.yaml", "rules:\n  - {id: b, condition: \"txn.amount >\", action: alert}\n"); err != nil {
		t.Fatal(err)
	}
	err = an.Do(ctx, http.MethodPost, "/api/v1/risk/rules/reload", nil, nil)
	if ae, ok := err.(*apiclient.APIError); !ok || ae.Status != 422 || !strings.Contains(ae.Message, "b.yaml:2:") {
		t.Errorf("bad reload: %v", err)
	}
	if e.RuleSet().Version != v0 {
		t.Error("a bad reload replaced the rules")
	}
	if err := writeFile(dir, "b.yaml", "rules:\n  - {id: b, condition: \"txn.amount > 1\", action: alert}\n"); err != nil {
		t.Fatal(err)
	}
	var ra risk.ReloadAnswer
	if err := an.Do(ctx, http.MethodPost, "/api/v1/risk/rules/reload", nil, &ra); err != nil {
		t.Fatal(err)
	}
	if ra.Previous != v0 || ra.Version == v0 || ra.Rules != 2 || e.RuleSet().Version != ra.Version {
		t.Errorf("reload answer %+v", ra)
	}

	// Lists.
	var added risk.ListEntry
	if err := an.Do(ctx, http.MethodPost, "/api/v1/risk/lists", add, &added); err != nil {
		t.Fatal(err)
	}
	if added.AddedBy != "anna" || added.ExpiresAt.Sub(time.Now()) < 6*24*time.Hour {
		t.Errorf("added %+v", added)
	}
	if s := status(an.Do(ctx, http.MethodPost, "/api/v1/risk/lists", risk.AddListEntry{List: "deny", Kind: "card", Value: "4761739001010119"}, nil)); s != 400 {
		t.Errorf("PAN on a list: %d", s)
	}
	// A card hash cut to 16 characters would never match: refused before review.
	if s := status(an.Do(ctx, http.MethodPost, "/api/v1/risk/lists", risk.AddListEntry{List: "allow", Kind: "card", Value: "9f2c41d0aa17e3b5"}, nil)); s != 400 {
		t.Errorf("truncated card hash on a list: %d, want 400", s)
	}
	// A note with a bidi override is refused, naming the code point.
	bidi := add
	bidi.Value, bidi.Note = "T0000008", "盗刷‮终端"
	if err := an.Do(ctx, http.MethodPost, "/api/v1/risk/lists", bidi, nil); status(err) != 400 || !strings.Contains(err.Error(), "U+202E") ||
		!strings.Contains(err.Error(), "note") {
		t.Errorf("list entry with a bidi override in its note: %v, want 400 naming U+202E", err)
	}
	var entries []risk.ListEntry
	if err := op.Do(ctx, http.MethodGet, "/api/v1/risk/lists?kind=terminal", nil, &entries); err != nil || len(entries) != 1 {
		t.Errorf("entries %v %v", entries, err)
	}
	if s := status(op.Do(ctx, http.MethodDelete, "/api/v1/risk/lists/deny/terminal/T0000009", nil, nil)); s != 403 {
		t.Errorf("operator delete: %d", s)
	}
	// A deny-list removal is reviewed (switch/listreview): without a registry
	// in the process it is refused, and the entry stays.
	if err := an.Do(ctx, http.MethodDelete, "/api/v1/risk/lists/deny/terminal/T0000009", nil, nil); status(err) != 503 || !strings.Contains(err.Error(), "review") {
		t.Errorf("deny-list removal without a registry: %v, want 503", err)
	}
	if s := status(an.Do(ctx, http.MethodDelete, "/api/v1/risk/lists/allow/terminal/T0000009", nil, nil)); s != 404 {
		t.Errorf("allow-list removal of an absent entry: %d", s)
	}
	if _, on := e.Lists().Entry("deny", "terminal", "T0000009"); !on {
		t.Error("the refused deny-list removal removed the entry")
	}
	if _, err := e.Lists().Add("anna", risk.ListEntry{List: "allow", Kind: "terminal", Value: "T0000009"}); err != nil {
		t.Fatal(err)
	}
	if err := an.Do(ctx, http.MethodDelete, "/api/v1/risk/lists/allow/terminal/T0000009", nil, nil); err != nil {
		t.Errorf("allow-list removal: %v", err)
	}
	var audit []risk.AuditEntry
	if err := op.Do(ctx, http.MethodGet, "/api/v1/risk/lists/audit", nil, &audit); err != nil {
		t.Fatal(err)
	}
	if len(audit) != 3 || audit[0].Who != "anna" || audit[0].Op != "add" || audit[2].Op != "remove" || audit[2].Entry.List != "allow" {
		b, _ := json.Marshal(audit)
		t.Errorf("audit %s", b)
	}
}
