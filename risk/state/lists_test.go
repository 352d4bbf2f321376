package state

import (
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
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
	if _, err := l.Add("bob", ListEntry{List: "allow", Kind: "card", Value: "c0ffee00c0ffee00c0ffee00c0ffee00", ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add("bob", ListEntry{List: "watch", Kind: "terminal", Value: "T0000001"}); err != nil {
		t.Fatal(err)
	}
	// BIN 476173, a card hash, terminal, merchant and country of a purchase.
	in := [5]string{"476173", "c0ffee00c0ffee00c0ffee00c0ffee00", "T0000001", "000000000000001", "KP"}
	f := l.Flags(in[0], in[1], in[2], in[3], in[4], now.UnixNano())
	if !f.DenyBIN || !f.DenyCountry || !f.AllowCard || f.DenyCard || f.DenyTerminal || f.AllowBIN {
		t.Errorf("flags %+v", f)
	}
	if f := l.Flags(in[0], in[1], in[2], in[3], in[4], now.Add(2*time.Hour).UnixNano()); f.AllowCard {
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
	if got := strings.Join(ops, " "); got != "alice:add:476173 alice:add:KP bob:add:c0ffee00c0ffee00c0ffee00c0ffee00 bob:add:T0000001 carol:remove:KP" {
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

func openDB(t testing.TB, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	return db
}
