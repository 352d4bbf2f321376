package risk

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/switch/admin"
)

func TestListsPersistExpireAndAudit(t *testing.T) {
	dbDir := t.TempDir()
	db := openDB(t, dbDir)
	l, err := NewLists(db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := l.Add("alice", ListEntry{List: "deny", Kind: "bin", Value: "476173", Note: "test BIN"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add("alice", ListEntry{List: "deny", Kind: "country", Value: "kp"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add("bob", ListEntry{List: "allow", Kind: "card", Value: "c0ffee00c0ffee00c0ffee00", ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add("bob", ListEntry{List: "watch", Kind: "terminal", Value: "T0000001"}); err != nil {
		t.Fatal(err)
	}
	in := purchase(100)
	in.Txn.Country = "KP"
	f := l.flags(in, now.UnixNano())
	if !f.DenyBIN || !f.DenyCountry || !f.AllowCard || f.DenyCard || f.DenyTerminal || f.AllowBIN {
		t.Errorf("flags %+v", f)
	}
	if f := l.flags(in, now.Add(2*time.Hour).UnixNano()); f.AllowCard {
		t.Error("expired allow entry still counts")
	}
	if !l.Contains("watch", "terminal", "T0000001", now) || l.Contains("watch", "terminal", "T0000002", now) {
		t.Error("Contains on a custom list")
	}
	if ok, err := l.Remove("carol", "deny", "country", "KP"); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if ok, _ := l.Remove("carol", "deny", "country", "KP"); ok {
		t.Error("removed twice")
	}
	// Refusals.
	for _, bad := range []ListEntry{
		{List: "deny", Kind: "card", Value: "4761739001010119"}, // a PAN
		{List: "deny", Kind: "bin", Value: "4761"},
		{List: "Deny", Kind: "bin", Value: "476173"},
		{List: "deny", Kind: "pan", Value: "476173"},
		{List: "deny", Kind: "bin", Value: "476173", ExpiresAt: now.Add(-time.Minute)},
	} {
		if _, err := l.Add("alice", bad); err == nil {
			t.Errorf("added %+v", bad)
		}
	}
	if _, err := l.Add("", ListEntry{List: "deny", Kind: "bin", Value: "476174"}); err == nil {
		t.Error("added without a principal")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, dbDir)
	defer db.Close()
	l2, err := NewLists(db)
	if err != nil {
		t.Fatal(err)
	}
	entries := l2.Entries()
	if len(entries) != 3 || entries[0].List != "allow" || entries[1].Value != "476173" || entries[1].AddedBy != "alice" || entries[1].Note != "test BIN" {
		t.Errorf("entries after reopening: %+v", entries)
	}
	audit, err := l2.Audit(time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, a := range audit {
		ops = append(ops, a.Who+":"+a.Op+":"+a.Entry.Value)
	}
	if got := strings.Join(ops, " "); got != "alice:add:476173 alice:add:KP bob:add:c0ffee00c0ffee00c0ffee00 bob:add:T0000001 carol:remove:KP" {
		t.Errorf("audit: %s", got)
	}
	if later, _ := l2.Audit(audit[3].Time, 0); len(later) != 2 {
		t.Errorf("audit since: %d entries", len(later))
	}
	_ = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := string(it.Item().Key()); !strings.HasPrefix(k, "risk/lists/") {
				t.Errorf("key %q outside risk/lists/", k)
			}
		}
		return nil
	})
}

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
	if d := rs.evaluate(in, nil, l, nil); d.Action != ActionAllow {
		t.Errorf("before watching: %s", d.Summary())
	}
	if _, err := l.Add("alice", ListEntry{List: "watch", Kind: KindMerchant, Value: in.Merchant.ID}); err != nil {
		t.Fatal(err)
	}
	if d := rs.evaluate(in, nil, l, nil); d.Rule != "watched" {
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
	op := &apiclient.Client{BaseURL: srv.URL, Token: "op-token"}
	an := &apiclient.Client{BaseURL: srv.URL, Token: "an-token"}
	anon := &apiclient.Client{BaseURL: srv.URL}

	var info RulesInfo
	if err := op.Do(ctx, http.MethodGet, "/risk/rules", nil, &info); err != nil {
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
	if ae, ok := err.(*apiclient.APIError); !ok || ae.Status != 422 || !strings.Contains(ae.Message, "b.yaml:2:") {
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
