package state

import (
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestRestoreKeepsShortWindows: counters restored at a start do not move the
// store's "now" (the newest transaction time, which the sweep and the eviction
// judge expiry by) past the newest transaction they hold. A 30-day counter with
// 6-hour buckets restored with a transaction of 00:01 once set it to 06:00 (its
// bucket's end): for up to six hours after every restart the sweep dropped every
// live series of the 10-minute counters (card testing) as expired, and a full
// store evicted them first, as if they counted nothing.
func TestRestoreKeepsShortWindows(t *testing.T) {
	dir := t.TempDir()
	open := func() *badger.DB {
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	long := &CounterSpec{FP: 1, Measure: MeasureSum, Dims: []string{DimMerchant}, Window: 30 * 24 * time.Hour,
		Width: int64(6 * time.Hour), NB: 120}
	short := &CounterSpec{FP: 2, Measure: MeasureCount, Dims: []string{DimCard}, Window: 10 * time.Minute,
		Width: int64(time.Minute), NB: 10}
	specs := map[uint64]*CounterSpec{long.FP: long, short.FP: short}
	// A minute into the next 6-hour bucket: Flush gives the series TTLs by the
	// wall clock, so the 10-minute series must not have left its window by now.
	t0 := time.Now().Truncate(6 * time.Hour).Add(6*time.Hour + time.Minute).UnixNano()

	db := open()
	s := NewVelocity(db, 0, 0)
	s.Observe(long, 7, t0, 500, "")
	s.Observe(short, 9, t0, 0, "")
	if err := s.Flush(specs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = open()
	defer db.Close()
	s = NewVelocity(db, 0, 0)
	if _, err := s.Restore([]*CounterSpec{long, short}); err != nil {
		t.Fatal(err)
	}
	if got := s.latest.Load(); got > t0+int64(time.Minute) {
		t.Errorf("after the restore the store's newest transaction is %v, after the newest one it holds (%v)",
			time.Unix(0, got).UTC(), time.Unix(0, t0).UTC())
	}
	// The card tried again a second later, then a sweep of every shard.
	now := t0 + int64(time.Second)
	s.Observe(short, 9, now, 0, "")
	s.Sweep(specs, numShards)
	if got := s.Read(short, 9, now); got != 2 {
		t.Fatalf("the card's 10-minute count after the restore and a sweep: %d, want 2", got)
	}
	if got := s.Read(long, 7, now); got != 500 {
		t.Fatalf("the merchant's 30-day sum after the restore and a sweep: %d, want 500", got)
	}
}

// TestFlushFailureKeepsChanges: a Flush whose write to Badger fails (here the
// database is open read-only, as a disk turned read-only would have it) leaves the
// series it could not write marked changed, so that the next Flush, once writes
// succeed again, writes them. Until 6 December 2026 they were forgotten: the card's
// second use, observed while writes failed, never reached Badger, and the next
// start restored a count of 1.
func TestFlushFailureKeepsChanges(t *testing.T) {
	dir := t.TempDir()
	open := func(readOnly bool) *badger.DB {
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithReadOnly(readOnly))
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	short := &CounterSpec{FP: 2, Measure: MeasureCount, Dims: []string{DimCard}, Window: 10 * time.Minute,
		Width: int64(time.Minute), NB: 10}
	specs := map[uint64]*CounterSpec{short.FP: short}
	t0 := time.Now().UnixNano()

	db := open(false)
	s := NewVelocity(db, 0, 0)
	s.Observe(short, 9, t0, 0, "")
	if err := s.Flush(specs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s.db = open(true) // writes fail
	s.Observe(short, 9, t0+int64(time.Second), 0, "")
	if err := s.Flush(specs); err == nil {
		t.Fatal("a Flush to a read-only database succeeded")
	}
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}

	s.db = open(false) // writes succeed again; the card is not seen again
	if err := s.Flush(specs); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}

	db = open(false)
	defer db.Close()
	r := NewVelocity(db, 0, 0)
	if _, err := r.Restore([]*CounterSpec{short}); err != nil {
		t.Fatal(err)
	}
	if got := r.Read(short, 9, t0+int64(2*time.Second)); got != 2 {
		t.Fatalf("the card's count restored after a failed Flush and a good one: %d, want 2", got)
	}
}
