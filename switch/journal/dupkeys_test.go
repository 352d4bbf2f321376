package journal

import (
	"context"
	"fmt"
	"hash/maphash"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestDupKeysGrow: the filter grows by parts past its size and never forgets a key;
// keys never added are mostly answered "no".
func TestDupKeysGrow(t *testing.T) {
	d := &dupKeys{seed: maphash.MakeSeed()}
	d.cur.Store(newDupSet(64))
	for i := range 1000 {
		d.add(fmt.Sprintf("T1/%06d/1201100000", i))
	}
	if n := len(*d.cur.Load().parts.Load()); n < 4 {
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

// TestDupKeysRebuiltByPurge: a purge that removes records rebuilds the filter
// from the index, so the purged records' keys leave it (before, they stayed
// until a restart: some 4 bytes a transaction for as long as the process ran);
// the kept records' keys are all still in it and found.
func TestDupKeysRebuiltByPurge(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{SegmentSize: 2048, NoSync: true})
	defer db.Close()
	defer s.Close()
	base := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	days := purgeDays(t, s, base, 10, 40)
	if err := s.PutDurable(context.Background(), []byte("t/flush"), []byte{1}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Purge(context.Background(), base.AddDate(0, 0, 5))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("purge: %+v", res)
	if res.Records < 4*40 {
		t.Fatalf("purge removed %d records; want the first 4 days' at least", res.Records)
	}
	purged, still, kept := 0, 0, 0
	for _, recs := range days {
		for _, r := range recs {
			if present(t, s, r) { // fails the test when the filter lost a kept key
				kept++
				continue
			}
			purged++
			if s.dups.mayHave(DupKey(r.TID, r.STAN, r.DE7)) {
				still++
			}
		}
	}
	if res.FilterKeys != kept {
		t.Errorf("the rebuilt filter holds %d keys; the index kept %d records", res.FilterKeys, kept)
	}
	// A rebuilt filter answers "maybe" for about 1% of keys it does not hold.
	if still > purged/10 {
		t.Fatalf("%d of %d purged records' keys are still in the filter: not rebuilt", still, purged)
	}
	// A new write's key is in the new filter.
	r := writeTxn(t, s, 99999, base.AddDate(0, 0, 11))
	if !present(t, s, r) {
		t.Fatal("a write after the rebuild is not found")
	}
}

// TestDupKeysRebuildKeepsUnindexed: keys committed but not yet indexed (the
// indexer waits an hour here) are not in the index a rebuild reads; they must be
// in the new filter all the same, and so must the key of a write between the
// rebuild's read of the index and its swap. A key missing from the filter would
// let a resent request through as new: a second authorization.
func TestDupKeysRebuildKeepsUnindexed(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{NoSync: true, IndexDelay: time.Hour})
	defer db.Close()
	defer s.Close()
	var recs []*Record
	for i := range 200 {
		recs = append(recs, writeDup(t, s, "TPENDING", i))
	}
	var during *Record
	rebuildStep = func(step string) {
		if step == "index" {
			during = writeDup(t, s, "TDURING", 1)
		}
	}
	defer func() { rebuildStep = nil }()
	if _, err := s.rebuildDupKeys(); err != nil {
		t.Fatal(err)
	}
	checkDupKeys(t, s, append(recs, during))
}

// TestDupKeysRebuildIndexedBetweenReads: keys pending when the rebuild reads the
// pending keys and indexed (so no longer pending) before it reads the index are
// in the new filter: the index is read after the pending keys, never before.
func TestDupKeysRebuildIndexedBetweenReads(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{NoSync: true, IndexDelay: time.Hour})
	defer db.Close()
	defer s.Close()
	var recs []*Record
	for i := range 100 {
		recs = append(recs, writeDup(t, s, "TBETWEEN", i))
	}
	indexed := false
	rebuildStep = func(step string) {
		if !indexed { // after the rebuild's first read, whichever it is
			indexed = true
			if err := s.catchUp(context.Background()); err != nil {
				t.Error(err)
			}
		}
	}
	defer func() { rebuildStep = nil }()
	if _, err := s.rebuildDupKeys(); err != nil {
		t.Fatal(err)
	}
	s.pend.mu.RLock()
	pending := len(s.pend.dup)
	s.pend.mu.RUnlock()
	if pending != 0 {
		t.Fatalf("%d keys still pending: the test did not index them between the rebuild's reads", pending)
	}
	checkDupKeys(t, s, recs)
}

// TestDupKeysRebuildUnderLoad: writers run through a series of rebuilds while
// the indexer moves their keys from the pending map to the index; each writer
// checks its key the moment its Write returns (a key lost by one rebuild could
// be put back by a later one's reads, and a check at the end alone would miss it).
func TestDupKeysRebuildUnderLoad(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{NoSync: true, IndexDelay: time.Millisecond})
	defer db.Close()
	defer s.Close()
	const writers, each = 4, 2500
	var (
		wg      sync.WaitGroup
		lost    atomic.Int64
		written [writers][]*Record
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r, err := writeDupErr(s, fmt.Sprintf("TW%06d", w), i)
				if err != nil {
					t.Error(err)
					return
				}
				if !s.dups.mayHave(DupKey(r.TID, r.STAN, r.DE7)) {
					lost.Add(1)
				}
				written[w] = append(written[w], r)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	rebuilds := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			if _, err := s.rebuildDupKeys(); err != nil {
				t.Fatal(err)
			}
			rebuilds++
		}
	}
	t.Logf("%d records written during %d rebuilds", writers*each, rebuilds)
	if n := lost.Load(); n > 0 {
		t.Fatalf("%d writes returned with their key not in the filter", n)
	}
	for _, recs := range written {
		checkDupKeys(t, s, recs)
	}
}

// writeDup journals the first version of a record that owns its duplicate key
// (terminal tid, STAN i), durably.
func writeDup(t *testing.T, s *Store, tid string, i int) *Record {
	t.Helper()
	r, err := writeDupErr(s, tid, i)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeDupErr(s *Store, tid string, i int) (*Record, error) {
	rrn, err := s.NextRRN()
	if err != nil {
		return nil, err
	}
	r := sample(rrn, time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC), tid)
	r.STAN = fmt.Sprintf("%06d", i)
	return r, s.Write(context.Background(), r, true, true)
}

// checkDupKeys fails the test unless every record's key is in the filter and
// found by LookupDuplicate.
func checkDupKeys(t *testing.T, s *Store, recs []*Record) {
	t.Helper()
	for _, r := range recs {
		if !s.dups.mayHave(DupKey(r.TID, r.STAN, r.DE7)) {
			t.Fatalf("%s (%s/%s) is not in the rebuilt filter", r.RRN, r.TID, r.STAN)
		}
		if rrn, ok, err := s.LookupDuplicate(r.TID, r.STAN, r.DE7); err != nil || !ok || rrn != r.RRN {
			t.Fatalf("duplicate lookup of %s: %q %v %v", r.RRN, rrn, ok, err)
		}
	}
}
