package risk

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/admin"
)

func TestListsInRules(t *testing.T) {
	l, _ := NewLists(nil)
	e, err := New("../rules", Options{Lists: l})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	in := purchase(1200)
	if d := e.Evaluate(in); d.Action != ActionAllow {
		t.Fatalf("before listing: %s", d.Summary())
	}
	if _, err := l.Add("alice", ListEntry{List: ListDeny, Kind: KindCard, Value: in.Txn.CardHash}); err != nil {
		t.Fatal(err)
	}
	if d := e.Evaluate(in); d.Rule != "deny-card" || d.ResponseCode != "05" {
		t.Errorf("after listing the card: %s", d.Summary())
	}
	// in_list reads the same lists.
	rs, err := Load(writeRules(t, map[string]string{"a.yaml": `rules:
  - {id: watched, condition: 'in_list("watch", "merchant", merchant.id)', action: review}
`}), LoadOptions{Lists: l})
	if err != nil {
		t.Fatal(err)
	}
	if d := rs.Evaluate(in, nil, l); d.Action != ActionAllow {
		t.Errorf("before watching: %s", d.Summary())
	}
	if _, err := l.Add("alice", ListEntry{List: "watch", Kind: KindMerchant, Value: in.Merchant.ID}); err != nil {
		t.Fatal(err)
	}
	if d := rs.Evaluate(in, nil, l); d.Rule != "watched" {
		t.Errorf("after watching: %s", d.Summary())
	}
}

func TestAdminAPI(t *testing.T) {
	dir := writeRules(t, map[string]string{"a.yaml": bigRound})
	db := openDB(t, t.TempDir())
	defer db.Close()
	e, err := New(dir, Options{DB: db})
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
	srv := httptest.NewServer(NewAdminHandler(auth, e, nil))
	defer srv.Close()
	ctx := t.Context()
	op := &admin.Client{BaseURL: srv.URL, Token: "op-token"}
	an := &admin.Client{BaseURL: srv.URL, Token: "an-token"}
	anon := &admin.Client{BaseURL: srv.URL}

	var info RulesInfo
	if err := op.Do(ctx, http.MethodGet, "/risk/rules", nil, &info); err != nil {
		t.Fatal(err)
	}
	if info.Version != e.RuleSet().Version || len(info.Rules) != 1 || info.Rules[0].ID != "big-round" || info.Rules[0].Line != 2 {
		t.Errorf("rules info %+v", info)
	}
	status := func(err error) int {
		if ae, ok := err.(*admin.APIError); ok {
			return ae.Status
		}
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		return 200
	}
	if s := status(anon.Do(ctx, http.MethodGet, "/risk/rules", nil, nil)); s != 401 {
		t.Errorf("no token: %d", s)
	}
	if s := status(op.Do(ctx, http.MethodPost, "/risk/rules/reload", nil, nil)); s != 403 {
		t.Errorf("operator reload: %d", s)
	}
	add := AddListEntry{List: "deny", Kind: "terminal", Value: "T0000009", TTL: "7d", Note: "closed shop"}
	if s := status(op.Do(ctx, http.MethodPost, "/risk/lists", add, nil)); s != 403 {
		t.Errorf("operator list add: %d", s)
	}

	// Reload: a bad file is refused with file:line and the old rules stay.
	v0 := e.RuleSet().Version
	if err := writeFile(dir, "b.yaml", "rules:\n  - {id: b, condition: \"txn.amount >\", action: alert}\n"); err != nil {
		t.Fatal(err)
	}
	err = an.Do(ctx, http.MethodPost, "/risk/rules/reload", nil, nil)
	if ae, ok := err.(*admin.APIError); !ok || ae.Status != 422 || !strings.Contains(ae.Message, "b.yaml:2:") {
		t.Errorf("bad reload: %v", err)
	}
	if e.RuleSet().Version != v0 {
		t.Error("a bad reload replaced the rules")
	}
	if err := writeFile(dir, "b.yaml", "rules:\n  - {id: b, condition: \"txn.amount > 1\", action: alert}\n"); err != nil {
		t.Fatal(err)
	}
	var ra ReloadAnswer
	if err := an.Do(ctx, http.MethodPost, "/risk/rules/reload", nil, &ra); err != nil {
		t.Fatal(err)
	}
	if ra.Previous != v0 || ra.Version == v0 || ra.Rules != 2 || e.RuleSet().Version != ra.Version {
		t.Errorf("reload answer %+v", ra)
	}

	// Lists.
	var added ListEntry
	if err := an.Do(ctx, http.MethodPost, "/risk/lists", add, &added); err != nil {
		t.Fatal(err)
	}
	if added.AddedBy != "anna" || added.ExpiresAt.Sub(time.Now()) < 6*24*time.Hour {
		t.Errorf("added %+v", added)
	}
	if s := status(an.Do(ctx, http.MethodPost, "/risk/lists", AddListEntry{List: "deny", Kind: "card", Value: "4761739001010119"}, nil)); s != 400 {
		t.Errorf("PAN on a list: %d", s)
	}
	var entries []ListEntry
	if err := op.Do(ctx, http.MethodGet, "/risk/lists?kind=terminal", nil, &entries); err != nil || len(entries) != 1 {
		t.Errorf("entries %v %v", entries, err)
	}
	if s := status(op.Do(ctx, http.MethodDelete, "/risk/lists/deny/terminal/T0000009", nil, nil)); s != 403 {
		t.Errorf("operator delete: %d", s)
	}
	if err := an.Do(ctx, http.MethodDelete, "/risk/lists/deny/terminal/T0000009", nil, nil); err != nil {
		t.Fatal(err)
	}
	if s := status(an.Do(ctx, http.MethodDelete, "/risk/lists/deny/terminal/T0000009", nil, nil)); s != 404 {
		t.Errorf("second delete: %d", s)
	}
	var audit []AuditEntry
	if err := op.Do(ctx, http.MethodGet, "/risk/lists/audit", nil, &audit); err != nil {
		t.Fatal(err)
	}
	if len(audit) != 2 || audit[0].Who != "anna" || audit[0].Op != "add" || audit[1].Op != "remove" {
		b, _ := json.Marshal(audit)
		t.Errorf("audit %s", b)
	}
}

func writeFile(dir, name, content string) error {
	return writeFileBytes(dir, name, []byte(content))
}
