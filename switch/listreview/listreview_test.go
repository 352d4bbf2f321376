package listreview

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/registry"
)

var (
	anna = registry.Actor{Name: "anna", Role: registry.RoleAnalyst}
	bob  = registry.Actor{Name: "bob", Role: registry.RoleReviewer}
)

func openRegistry(t *testing.T, dir string) (*registry.Registry, func()) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(8 << 20).WithValueLogFileSize(16 << 20).WithNumCompactors(2))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(db, nil, registry.Options{SeenFlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return reg, func() {
		if err := reg.Close(); err != nil {
			t.Error(err)
		}
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	}
}

// TestReconcileAppliesApprovedEdit: an allow-list addition approved while its
// edit did not reach the lists (a crash between the approval's commit and
// Apply; here, lists that lost it) is applied by the next start's Reconcile,
// once; one superseded by a later edit of its entry is not.
func TestReconcileAppliesApprovedEdit(t *testing.T) {
	dir := t.TempDir()
	reg, closeReg := openRegistry(t, dir)
	lost, err := risk.NewLists(nil)
	if err != nil {
		t.Fatal(err)
	}
	v := New(reg, lost, Options{})
	add := func(value string) *registry.Change {
		t.Helper()
		e := risk.ListEntry{List: risk.ListAllow, Kind: risk.KindCard, Value: value, Note: "VIP"}
		if err := e.Normalize(); err != nil {
			t.Fatal(err)
		}
		c, err := v.RequestAdd(anna, e, "test")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Approve(bob, c.ID, "ok"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c1 := add("Zk3hC0lludingCardHash01")
	add("Zk3hC0lludingCardHash02")
	closeReg()

	reg, closeReg = openRegistry(t, dir)
	defer closeReg()
	lists, err := risk.NewLists(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Card 02 was edited after its approval (removed again): not re-added.
	if _, err := lists.Add("carl", risk.ListEntry{List: risk.ListAllow, Kind: risk.KindCard, Value: "Zk3hC0lludingCardHash02"}); err != nil {
		t.Fatal(err)
	}
	if _, err := lists.Remove("carl", risk.ListAllow, risk.KindCard, "Zk3hC0lludingCardHash02"); err != nil {
		t.Fatal(err)
	}
	v = New(reg, lists, Options{})
	n, err := v.Reconcile()
	if err != nil || n != 1 {
		t.Fatalf("Reconcile: %d %v, want 1 applied", n, err)
	}
	e, on := lists.Entry(risk.ListAllow, risk.KindCard, "Zk3hC0lludingCardHash01")
	if !on || e.AddedBy != "anna, approved by bob ("+c1.ID+")" {
		t.Fatalf("after Reconcile: %+v on=%v", e, on)
	}
	if _, on := lists.Entry(risk.ListAllow, risk.KindCard, "Zk3hC0lludingCardHash02"); on {
		t.Error("Reconcile re-added an entry removed after its approval")
	}
	if n, err := v.Reconcile(); err != nil || n != 0 {
		t.Errorf("second Reconcile: %d %v, want nothing to do", n, err)
	}
}

// TestAddNeedsReview: only a deny-list addition that ends no entry in force
// sooner is made at once.
func TestAddNeedsReview(t *testing.T) {
	lists, err := risk.NewLists(nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := lists.Add("anna", risk.ListEntry{List: risk.ListDeny, Kind: risk.KindBIN, Value: "476173", ExpiresAt: now.Add(48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		e      risk.ListEntry
		review bool
	}{
		{risk.ListEntry{List: "deny", Kind: "bin", Value: "476174"}, false},
		{risk.ListEntry{List: "deny", Kind: "bin", Value: "476173"}, false},                                     // for good: longer
		{risk.ListEntry{List: "deny", Kind: "bin", Value: "476173", ExpiresAt: now.Add(72 * time.Hour)}, false}, // longer
		{risk.ListEntry{List: "deny", Kind: "bin", Value: "476173", ExpiresAt: now.Add(time.Hour)}, true},       // sooner
		{risk.ListEntry{List: "allow", Kind: "bin", Value: "476173"}, true},
		{risk.ListEntry{List: "watch", Kind: "bin", Value: "476173"}, true},
	} {
		if got := AddNeedsReview(lists, tc.e, now) != ""; got != tc.review {
			b, _ := json.Marshal(tc.e)
			t.Errorf("%s: review %v, want %v", b, got, tc.review)
		}
	}
	if RemoveNeedsReview("allow") != "" || RemoveNeedsReview("deny") == "" || RemoveNeedsReview("watch") == "" {
		t.Error("RemoveNeedsReview: want only allow-list removals at once")
	}
}
