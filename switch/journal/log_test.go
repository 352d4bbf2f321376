package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/journal/wal"
)

func openOpts(t *testing.T, dir string, opts Options) (*badger.DB, *Store) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		t.Fatal(err)
	}
	opts.Dir = filepath.Join(dir, "log")
	s, err := Open(db, opts)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return db, s
}

// never keeps the indexer from running by itself: only queries and Close move it.
const never = time.Hour

// writeTxn journals a transaction the way the pipeline does: the write-ahead, the
// outcome (durable) and the delivery mark.
func writeTxn(t *testing.T, s *Store, i int, at time.Time) *Record {
	t.Helper()
	ctx := context.Background()
	rrn, err := s.NextRRN()
	if err != nil {
		t.Fatal(err)
	}
	r := sample(rrn, at, fmt.Sprintf("T%07d", i%3))
	r.STAN = fmt.Sprintf("%06d", i)
	r.Events = r.Events[:1]
	r.RC = ""
	if err := s.Write(ctx, r, true, false); err != nil {
		t.Fatal(err)
	}
	r.RC = "00"
	r.AddEvent(StateAnswered, at.Add(time.Millisecond), "")
	if err := s.Write(ctx, r, false, true); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDelivery(rrn, true, at.Add(2*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReadsBeforeIndexing: a record is found by RRN and by duplicate key as soon as
// its write returns, before the indexer has written anything; a query brings the
// index up to date first.
func TestReadsBeforeIndexing(t *testing.T) {
	db, s := openOpts(t, t.TempDir(), Options{IndexDelay: never})
	defer db.Close()
	defer s.Close()
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	r := writeTxnSynced(t, s, base)
	if s.ix.applied.Load() != 0 || s.Unindexed() < 4 {
		t.Fatalf("the indexer ran (applied %d, %d unindexed)", s.ix.applied.Load(), s.Unindexed())
	}
	got, err := s.Get(r.RRN)
	if err != nil || got.RC != "00" || got.State != StateResponded || len(got.Events) != 3 {
		t.Fatalf("Get before indexing: %+v %v", got, err)
	}
	if rrn, ok, err := s.LookupDuplicate(r.TID, r.STAN, r.DE7); err != nil || !ok || rrn != r.RRN {
		t.Fatalf("duplicate lookup before indexing: %q %v %v", rrn, ok, err)
	}
	n := 0
	if err := s.Scan(context.Background(), Query{TID: r.TID}, func(*Record) bool { n++; return true }); err != nil || n != 1 {
		t.Fatalf("terminal query: %d records, %v", n, err)
	}
	s.pend.mu.RLock()
	left := len(s.pend.recs) + len(s.pend.deliv) + len(s.pend.dup)
	s.pend.mu.RUnlock()
	if left != 0 || s.Unindexed() != 0 {
		t.Fatalf("%d entries still pending (%d frames unindexed) after a query caught the index up", left, s.Unindexed())
	}
	// A later version (a reversal) is pending while the delivery is in the index:
	// a read gets both.
	r.ReversedBy = "000000009999"
	r.AddEvent(StateReversed, base.Add(time.Second), "")
	if err := s.Write(context.Background(), r, false, true); err != nil {
		t.Fatal(err)
	}
	got, err = s.Get(r.RRN)
	if err != nil || got.ReversedBy == "" || len(got.Events) != 4 || got.State != StateReversed {
		t.Fatalf("Get of a pending version over an indexed delivery: %+v %v", got, err)
	}
	if got.Events[2].State != StateResponded {
		t.Fatalf("delivery lost: %+v", got.Events)
	}
}

// TestReplayAfterCrash: what the log holds beyond the index is indexed again at Open,
// and a torn last write is cut off. (The log is appended to, not zero-filled ahead,
// so that the torn write can be appended to the file: wal's TestPreallocTornWriteCut
// is the zero-filled case.)
func TestReplayAfterCrash(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{IndexDelay: never, Prealloc: -1})
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var recs []*Record
	for i := range 40 {
		recs = append(recs, writeTxn(t, s, i, base.Add(time.Duration(i)*100*time.Millisecond)))
	}
	batchAt := base.Add(time.Hour)
	if err := s.CloseBatch(context.Background(), "T0000001", batchAt); err != nil {
		t.Fatal(err)
	}
	// The crash: the index never written, and half a frame at the end of the log.
	db.Close()
	seg := filepath.Join(dir, "log", "00000001.seg")
	st, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A frame header promising 40 bytes of payload, and 12 of them.
	torn := append([]byte{40, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, kindUpdate}, "a record whose"[:12]...)
	if _, err := f.Write(torn); err != nil {
		t.Fatal(err)
	}
	f.Close()

	db, s = openOpts(t, dir, Options{Prealloc: -1})
	if st2, _ := os.Stat(seg); st2.Size() != st.Size() {
		t.Fatalf("torn tail not cut: %d bytes, %d before the crash", st2.Size(), st.Size())
	}
	for _, r := range recs {
		got, err := s.Get(r.RRN)
		if err != nil || got.RC != "00" || got.State != StateResponded {
			t.Fatalf("after replay, %s: %+v %v", r.RRN, got, err)
		}
		if rrn, ok, _ := s.LookupDuplicate(r.TID, r.STAN, r.DE7); !ok || rrn != r.RRN {
			t.Fatalf("after replay, duplicate index of %s: %q", r.RRN, rrn)
		}
	}
	count := func(q Query) int {
		n := 0
		if err := s.Scan(context.Background(), q, func(*Record) bool { n++; return true }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(Query{TID: "T0000001"}); n != 13 {
		t.Fatalf("after replay, terminal T0000001: %d records, want 13", n)
	}
	if n := count(Query{From: base.Add(time.Second), To: base.Add(2 * time.Second)}); n != 10 {
		t.Fatalf("after replay, one second: %d records, want 10", n)
	}
	if at, err := s.LastBatch("T0000001"); err != nil || !at.Equal(batchAt) {
		t.Fatalf("after replay, batch close %v %v", at, err)
	}
	// Writing goes on after the cut, and the log reads back clean.
	writeTxn(t, s, 99, base.Add(time.Minute))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, s = openOpts(t, dir, Options{})
	defer db.Close()
	defer s.Close()
	if n := count(Query{}); n != 41 {
		t.Fatalf("after a second restart: %d records, want 41", n)
	}
	// Delivery marks are kept in the records' index entries, not under keys of their own.
	_ = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixDeliv)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			t.Errorf("delivery key %s", it.Item().Key())
		}
		return nil
	})
}

// TestSegmentsAndCorruption: the log rolls over to new segments; a damaged frame is
// reported, never decoded; damage before the end of the log stops Open.
func TestSegmentsAndCorruption(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{SegmentSize: 4096})
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var recs []*Record
	for i := range 60 {
		recs = append(recs, writeTxn(t, s, i, base.Add(time.Duration(i)*time.Second)))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	segs, err := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
	if err != nil || len(segs) < 4 {
		t.Fatalf("segments %v %v", segs, err)
	}
	db, s = openOpts(t, dir, Options{})
	for _, r := range recs {
		if got, err := s.Get(r.RRN); err != nil || got.RRN != r.RRN {
			t.Fatalf("%s after restart: %v", r.RRN, err)
		}
	}
	// Damage the first record's newest version on disk.
	var p wal.Ptr
	_ = db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(recordKey(recs[0].RRN))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { p, _, _ = decodePtr(v); return nil })
	})
	seg := filepath.Join(dir, "log", fmt.Sprintf("%08d.seg", p.Seg))
	b, _ := os.ReadFile(seg)
	b[p.Off+5] ^= 0x20
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(recs[0].RRN); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Get of a damaged record: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// An index that has to be rebuilt from the start meets the damage and refuses.
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyApplied), wal.Pos{}.Encode()) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = Open(db, Options{Dir: filepath.Join(dir, "log")})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%08d.seg is corrupt at offset", p.Seg)) {
		t.Fatalf("Open over a damaged segment: %v", err)
	}
}

// TestLostDatabaseRefused: a log with frames under a database without j/applied
// (its files lost: Badger started an empty one, as it does without its MANIFEST) is
// refused, saying what is missing and what to do, and nothing of the log is put
// into the database; until 7 December 2026 it was replayed from its first frame,
// setting again keys deleted since. A new log gets j/applied at once, so that a
// crash before the first index write is not taken for a lost database.
func TestLostDatabaseRefused(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{IndexDelay: never})
	if err := s.PutDurable(context.Background(), []byte("q/advice"), []byte("owed")); err != nil {
		t.Fatal(err)
	}
	rec := writeTxn(t, s, 1, time.Now())
	crash(db) // nothing indexed: j/applied is only the new log's
	db, s = openOpts(t, dir, Options{})
	if _, err := s.Get(rec.RRN); err != nil {
		t.Fatalf("after a crash before the first index write: %v", err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte("q/advice")) }); err != nil {
		t.Fatal(err) // the issuer has the advice
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := os.RemoveAll(filepath.Join(dir, "db")); err != nil {
		t.Fatal(err)
	}
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = Open(db, Options{Dir: filepath.Join(dir, "log")})
	if err == nil || !strings.Contains(err.Error(), "holds frames, but the database has no j/applied") || !strings.Contains(err.Error(), "restore the data directory from its backup") {
		t.Fatalf("Open of a log under an empty database: %v", err)
	}
	_ = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			t.Errorf("the refused Open wrote %s", it.Item().Key())
		}
		return nil
	})
}

// TestRecordsStoredWhole: records an earlier version stored whole in Badger are still
// read, and their next version goes to the log.
func TestRecordsStoredWhole(t *testing.T) {
	db, s := openOpts(t, t.TempDir(), Options{})
	defer db.Close()
	defer s.Close()
	r := sample("000000000042", time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), "T0000007")
	b, _ := r.MarshalBinary()
	deliv := []byte{1, 0, 0, 0, 0, 0, 0, 0, 0}
	if err := db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(recordKey(r.RRN), b); err != nil {
			return err
		}
		return txn.Set([]byte(prefixDeliv+r.RRN), deliv)
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(r.RRN)
	if err != nil || got.AuthCode != r.AuthCode || len(got.Events) != 3 {
		t.Fatalf("record stored whole: %+v %v", got, err)
	}
	r.Refunded = 500
	if err := s.Write(context.Background(), r, false, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Scan(context.Background(), Query{}, func(*Record) bool { return true }); err != nil {
		t.Fatal(err)
	}
	got, err = s.Get(r.RRN)
	if err != nil || got.Refunded != 500 || len(got.Events) != 3 {
		t.Fatalf("next version of a record stored whole: %+v %v", got, err)
	}
	if !errors.Is(func() error { _, err := s.Get("000000000043"); return err }(), ErrNotFound) {
		t.Fatal("unknown RRN not ErrNotFound")
	}
}

// crash stops using a journal as a crash would: no Close, nothing more indexed.
func crash(db *badger.DB) { db.Close() }

// TestRRNsNeverRepeat: the RRN sequence moves past every RRN in the journal, also
// when the store lost its lease (a machine crash before Badger synced it).
func TestRRNsNeverRepeat(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{IndexDelay: never})
	var last string
	for i := range 5 {
		last = writeTxn(t, s, i, time.Now()).RRN
	}
	crash(db)
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(keyRRNSeq)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, s = openOpts(t, dir, Options{})
	defer db.Close()
	defer s.Close()
	next, err := s.NextRRN()
	if err != nil || next <= last {
		t.Fatalf("after losing the lease: next RRN %s (%v), last written %s", next, err, last)
	}
}

// TestKeysSetAgainOnlyIfLost: a durable key that Badger kept is not set back to its
// logged value at Open (its owner may have changed it since); one Badger lost is.
func TestKeysSetAgainOnlyIfLost(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{IndexDelay: never})
	ctx := context.Background()
	if err := s.PutDurable(ctx, []byte("q/kept"), []byte("logged")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDurable(ctx, []byte("q/lost"), []byte("logged")); err != nil {
		t.Fatal(err)
	}
	// The owner changes its key directly, as the store-and-forward queue does.
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("q/kept"), []byte("changed")) }); err != nil {
		t.Fatal(err)
	}
	crash(db)
	// A machine crash took the second key's write (and with it j/kvapplied's move).
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	var kvApplied []byte
	_ = db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyKVApplied))
		if err == nil {
			kvApplied, err = item.ValueCopy(nil)
		}
		return err
	})
	p, _ := wal.DecodePos(kvApplied)
	back := wal.Pos{Seg: p.Seg, Off: p.Off - 1} // just before the second key's frame ends
	if err := db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete([]byte("q/lost")); err != nil {
			return err
		}
		return txn.Set([]byte(keyKVApplied), back.Encode())
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, s = openOpts(t, dir, Options{})
	defer db.Close()
	defer s.Close()
	get := func(k string) string {
		var v []byte
		_ = db.View(func(txn *badger.Txn) error {
			item, err := txn.Get([]byte(k))
			if err == nil {
				v, err = item.ValueCopy(nil)
			}
			return err
		})
		return string(v)
	}
	if v := get("q/kept"); v != "changed" {
		t.Errorf("a key Badger kept was set back to %q", v)
	}
	if v := get("q/lost"); v != "logged" {
		t.Errorf("a key Badger lost came back as %q, want the logged value", v)
	}
	if err := s.PutDurable(ctx, []byte("!badger!x"), nil); err == nil {
		t.Error("a key in Badger's reserved space was taken")
	}
}

// TestReplayKeepsDuplicateKeyOfTheFirst: a request answered 94 reused another
// request's DE 41 + 11 + 7; its record must not take over the key, neither when it is
// written nor when a crash makes the index be rebuilt from the log.
func TestReplayKeepsDuplicateKeyOfTheFirst(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{IndexDelay: never})
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	first := writeTxn(t, s, 1, base)
	rrn, err := s.NextRRN()
	if err != nil {
		t.Fatal(err)
	}
	other := sample(rrn, base.Add(time.Second), first.TID)
	other.STAN, other.DE7, other.RC, other.DecidedBy, other.Reason = first.STAN, first.DE7, "94", "switch", "duplicate-key-other-content"
	if err := s.Write(context.Background(), other, true, true); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := s.LookupDuplicate(first.TID, first.STAN, first.DE7); !ok || got != first.RRN {
		t.Fatalf("before the crash, the key points at %q, want the first %s", got, first.RRN)
	}
	db.Close() // the crash: nothing indexed
	db, s = openOpts(t, dir, Options{})
	defer db.Close()
	defer s.Close()
	if got, ok, _ := s.LookupDuplicate(first.TID, first.STAN, first.DE7); !ok || got != first.RRN {
		t.Fatalf("after replay, the key points at %q, want the first %s", got, first.RRN)
	}
}

// TestTotalToAnswerWritten: a record read back with its delivery mark carries as
// total_us the time from its receipt to the answer written (the mark's time), before
// and after indexing; without a mark, the total its final write carried.
func TestTotalToAnswerWritten(t *testing.T) {
	db, s := openOpts(t, t.TempDir(), Options{IndexDelay: never})
	defer db.Close()
	defer s.Close()
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()
	rrn, err := s.NextRRN()
	if err != nil {
		t.Fatal(err)
	}
	r := sample(rrn, base, "T0000001")
	r.Timings.Total = 1500 // up to the final write
	if err := s.Write(ctx, r, true, true); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(rrn); err != nil || got.Timings.Total != 1500 {
		t.Fatalf("before the mark: total %d, %v", got.Timings.Total, err)
	}
	if err := s.MarkDelivery(rrn, true, r.Received.Add(2300*time.Microsecond)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDurable(ctx, []byte("x/sync"), nil); err != nil {
		t.Fatal(err)
	}
	for _, when := range []string{"before indexing", "after indexing"} {
		got, err := s.Get(rrn)
		if err != nil || got.Timings.Total != 2300 {
			t.Fatalf("%s: total_us %d (%v), want 2300", when, got.Timings.Total, err)
		}
		if err := s.Scan(ctx, Query{TID: "T0000001"}, func(*Record) bool { return true }); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeliveryMarkOnce: a record read (its delivery mark merged into its events),
// reversed and written again carries the mark in its events; reading it does not add
// the mark a second time, before or after the indexer has run. A cluster trial saw
// "responded" twice on a reversed purchase.
func TestDeliveryMarkOnce(t *testing.T) {
	db, s := openOpts(t, t.TempDir(), Options{IndexDelay: never})
	defer db.Close()
	defer s.Close()
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	r := writeTxnSynced(t, s, base)
	responded := func(when string) {
		t.Helper()
		got, err := s.Get(r.RRN)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range got.Events {
			if e.State == StateResponded {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%s: %d responded events, want 1: %+v", when, n, got.Events)
		}
	}
	responded("before the reversal")
	cur, err := s.Get(r.RRN)
	if err != nil {
		t.Fatal(err)
	}
	cur.ReversedBy = "000000000009"
	cur.AddEvent(StateReversed, base.Add(time.Second), "000000000009")
	if err := s.Write(context.Background(), cur, false, true); err != nil {
		t.Fatal(err)
	}
	responded("after the reversal")
	// A query brings the index up to date.
	if err := s.Scan(context.Background(), Query{TID: r.TID}, func(*Record) bool { return true }); err != nil {
		t.Fatal(err)
	}
	responded("after indexing")
}

// writeTxnSynced is writeTxn with its delivery mark made durable (a delivery mark is
// not waited for: a durable write behind it syncs it).
func writeTxnSynced(t *testing.T, s *Store, at time.Time) *Record {
	t.Helper()
	r := writeTxn(t, s, 1, at)
	if err := s.PutDurable(context.Background(), []byte("x/sync"), nil); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestOwnsDupKeyIssuer94: a record the switch answered 94 (its duplicate refusals,
// decided by the switch or the cup adapter) owns no duplicate key; one its issuer
// answered 94 owns its own, as any other answer: its resends are its duplicates.
func TestOwnsDupKeyIssuer94(t *testing.T) {
	for _, c := range []struct {
		by   string
		owns bool
	}{{"issuer", true}, {"switch", false}, {"cup", false}, {"", false}} {
		r := sample("000000000001", time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC), "T0000001")
		r.RC, r.DecidedBy = "94", c.by
		if r.OwnsDupKey() != c.owns || (r.DuplicateKey() != "") != c.owns {
			t.Errorf("94 decided by %q: owns its key %v (key %q), want %v", c.by, r.OwnsDupKey(), r.DuplicateKey(), c.owns)
		}
	}
}
