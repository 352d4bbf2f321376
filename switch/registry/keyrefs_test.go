package registry

import (
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/hsm"
)

// TestConventionalKeyRefsAreKeyIDs: a terminal registered without key references
// gets "<ID>.TPK" and "<ID>.TAK", names the key store takes, so that its key change
// can make the keys and its PIN blocks can be translated under them. Until 5 December
// 2026 it got "<ID>/TPK", which no key can have (a '/' names a version): every key
// change and PIN translation of such a terminal failed. Records stored with the old
// names are read with the new ones.
func TestConventionalKeyRefsAreKeyIDs(t *testing.T) {
	f := newFixture(t)
	reg := Terminal{ID: "T4100001", MerchantID: "000000000000001", Kind: KindPOS, Keys: KeyRefs{PINMode: PINModeTPK, MACRequired: true}}
	ch, err := f.reg.RequestChange(alice, Change{Op: OpTerminalRegister, Terminal: &reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(bob, ch.ID, ""); err != nil {
		t.Fatal(err)
	}
	got, _ := f.reg.Terminal("T4100001")
	if got == nil || got.Keys.TPK != "T4100001.TPK" || got.Keys.TAK != "T4100001.TAK" {
		t.Fatalf("registered terminal's keys %+v, want T4100001.TPK and T4100001.TAK", got)
	}
	for _, id := range []string{got.Keys.TPK, got.Keys.TAK} {
		if err := hsm.CheckKeyID(id); err != nil {
			t.Errorf("conventional reference %q: %v", id, err)
		}
	}

	// What an older version stored.
	old := *got
	old.ID, old.Keys.TPK, old.Keys.TAK = "T4100002", "T4100002/TPK", "T4100002/TAK"
	f.close(t)
	db := openDB(t, f.dir)
	if err := db.Update(func(txn *badger.Txn) error { return putJSON(txn, []byte(pfxTerminal+old.ID), &old) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f.open(t)
	if t2, _ := f.reg.Terminal("T4100002"); t2 == nil || t2.Keys.TPK != "T4100002.TPK" || t2.Keys.TAK != "T4100002.TAK" {
		t.Errorf("terminal stored with the old references read as %+v, want T4100002.TPK and T4100002.TAK", t2)
	}
}
