package journal

import (
	"context"
	"fmt"
	"hash/maphash"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestDupKeysGrow: the filter grows by parts past its size and never forgets a key;
// keys never added are mostly answered "no".
func TestDupKeysGrow(t *testing.T) {
	d := &dupKeys{seed: maphash.MakeSeed()}
	d.parts.Store(&[]*dupPart{newDupPart(64)})
	for i := range 1000 {
		d.add(fmt.Sprintf("T1/%06d/1201100000", i))
	}
	if n := len(*d.parts.Load()); n < 4 {
		t.Fatalf("1000 keys in parts starting at 64: %d parts; want it grown", n)
	}
	for i := range 1000 {
		if !d.mayHave(fmt.Sprintf("T1/%06d/1201100000", i)) {
			t.Fatalf("key %d added but not found", i)
		}
	}
	fp := 0
	for i := range 10000 {
		if d.mayHave(fmt.Sprintf("T2/%06d/1201100000", i)) {
			fp++
		}
	}
	if fp > 500 { // each part about 1%, a few parts
		t.Fatalf("%d of 10000 keys never added answered maybe", fp)
	}
}

// TestDupKeysReopen: the keys of a store's index are in the filter after a restart
// (loaded from the index), so that LookupDuplicate still finds them; a key no write
// ever had is answered without a read of the index.
func TestDupKeysReopen(t *testing.T) {
	dir := t.TempDir()
	db, s := open(t, dir)
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var recs []*Record
	for i := range 50 {
		recs = append(recs, writeTxn(t, s, i, base.Add(time.Duration(i)*time.Second)))
	}
	// A query brings the index up to date: the keys are in Badger, not only pending.
	if err := s.Scan(context.Background(), Query{}, func(*Record) bool { return true }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db.Close()

	db, s = open(t, dir)
	defer db.Close()
	defer s.Close()
	for _, r := range recs {
		if !s.dups.mayHave(DupKey(r.TID, r.STAN, r.DE7)) {
			t.Fatalf("after a restart the filter lacks %s's key", r.RRN)
		}
		if rrn, ok, err := s.LookupDuplicate(r.TID, r.STAN, r.DE7); err != nil || !ok || rrn != r.RRN {
			t.Fatalf("after a restart, duplicate lookup of %s: %q %v %v", r.RRN, rrn, ok, err)
		}
	}
	if rrn, ok, err := s.LookupDuplicate("TNONE", "000001", "1121100000"); err != nil || ok {
		t.Fatalf("a key never written: %q %v %v", rrn, ok, err)
	}
	// A new write's key is found at once (added before it can be read).
	r := writeTxn(t, s, 999, base.Add(time.Hour))
	if rrn, ok, err := s.LookupDuplicate(r.TID, r.STAN, r.DE7); err != nil || !ok || rrn != r.RRN {
		t.Fatalf("a new write's key: %q %v %v", rrn, ok, err)
	}
}

// TestKSNIndex: with Options.IndexKSN, the KSN of a record's first version is found
// by LookupKSN as soon as it is written, after the indexer has run and after a
// restart; without it, and for a KSN never written, nothing is found.
func TestKSNIndex(t *testing.T) {
	const ksn = "FFFF9876543210E00001"
	dir := t.TempDir()
	openKSN := func(index bool) (*badger.DB, *Store) {
		t.Helper()
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(false))
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(db, Options{Dir: filepath.Join(dir, "journal"), IndexKSN: index})
		if err != nil {
			t.Fatal(err)
		}
		return db, s
	}
	find := func(s *Store, ksn, want string) {
		t.Helper()
		rrn, ok, err := s.LookupKSN(ksn)
		if err != nil || ok != (want != "") || rrn != want {
			t.Fatalf("LookupKSN(%s) = %q %v %v; want %q", ksn, rrn, ok, err, want)
		}
	}
	db, s := openKSN(true)
	ctx := context.Background()
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	rrn, err := s.NextRRN()
	if err != nil {
		t.Fatal(err)
	}
	r := sample(rrn, at, "TKSN0001")
	r.KSN = ksn
	if err := s.Write(ctx, r, true, true); err != nil {
		t.Fatal(err)
	}
	find(s, ksn, rrn) // pending: before the indexer ran
	find(s, "FFFF9876543210E00002", "")
	if _, ok, err := s.LookupDuplicate(r.TID, r.STAN, r.DE7); err != nil || !ok {
		t.Fatalf("the record's duplicate key: %v %v", ok, err)
	}
	if err := s.Scan(ctx, Query{}, func(*Record) bool { return true }); err != nil {
		t.Fatal(err)
	}
	find(s, ksn, rrn) // indexed
	s.Close()
	db.Close()

	db, s = openKSN(true)
	find(s, ksn, rrn) // after a restart: from the index, through the filter
	find(s, "ffff9876543210e00001", rrn)
	s.Close()
	db.Close()

	// Opened without the option (switchyard journal on a cluster node's data), the
	// store still indexes KSNs: it was opened with it once.
	db, s = openKSN(false)
	r3 := sample("000000000555", at, "TKSN0003")
	r3.KSN = "FFFF9876543210E00003"
	if err := s.Write(ctx, r3, true, true); err != nil {
		t.Fatal(err)
	}
	find(s, r3.KSN, r3.RRN)
	s.Close()
	db.Close()

	// A store without the option indexes no KSN.
	dir = t.TempDir()
	db, s = openKSN(false)
	defer db.Close()
	defer s.Close()
	r2 := sample("000000000777", at, "TKSN0002")
	r2.KSN = ksn
	if err := s.Write(ctx, r2, true, true); err != nil {
		t.Fatal(err)
	}
	find(s, ksn, "")
}
