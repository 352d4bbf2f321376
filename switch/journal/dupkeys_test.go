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
// in the new filter all the same, and so must the keys of writes during the
// rebuild (one between its read of the index and the swap, and writers running
// throughout many rebuilds). A key missing from the filter would let a resent
// request through as new: a second authorization.
func TestDupKeysRebuildKeepsUnindexed(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{NoSync: true, IndexDelay: time.Hour})
	defer db.Close()
	defer s.Close()
	ctx := context.Background()
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	write := func(tid string, i int) (*Record, error) {
		rrn, err := s.NextRRN()
		if err != nil {
			return nil, err
		}
		r := sample(rrn, at, tid)
		r.STAN = fmt.Sprintf("%06d", i)
		return r, s.Write(ctx, r, true, true)
	}
	var recs []*Record
	for i := range 200 {
		r, err := write("TPENDING", i)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	var during *Record
	rebuildStep = func() {
		if during == nil {
			var err error
			if during, err = write("TDURING", 1); err != nil {
				t.Error(err)
			}
		}
	}
	defer func() { rebuildStep = nil }()
	if _, err := s.rebuildDupKeys(); err != nil {
		t.Fatal(err)
	}
	recs = append(recs, during)

	// Writers throughout a series of rebuilds.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		stop    atomic.Bool
		written []*Record
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				r, err := write(fmt.Sprintf("TW%06d", w), i)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				written = append(written, r)
				mu.Unlock()
			}
		}()
	}
	for range 30 {
		if _, err := s.rebuildDupKeys(); err != nil {
			t.Error(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	recs = append(recs, written...)
	t.Logf("%d records, %d written during 30 rebuilds", len(recs), len(written))
	for _, r := range recs {
		if !s.dups.mayHave(DupKey(r.TID, r.STAN, r.DE7)) {
			t.Fatalf("%s (%s/%s) is not in the rebuilt filter", r.RRN, r.TID, r.STAN)
		}
		if rrn, ok, err := s.LookupDuplicate(r.TID, r.STAN, r.DE7); err != nil || !ok || rrn != r.RRN {
			t.Fatalf("duplicate lookup of %s: %q %v %v", r.RRN, rrn, ok, err)
		}
	}
}
