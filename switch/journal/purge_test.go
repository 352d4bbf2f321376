package journal

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/journal/wal"
)

// purgeDays journals perDay transactions on each of days days from base (one a
// minute), in small segments, and returns them by day.
func purgeDays(t *testing.T, s *Store, base time.Time, days, perDay int) [][]*Record {
	return purgeDaysFrom(t, s, 0, base, days, perDay)
}

// purgeDaysFrom is purgeDays with STANs from first on.
func purgeDaysFrom(t *testing.T, s *Store, first int, base time.Time, days, perDay int) [][]*Record {
	t.Helper()
	out := make([][]*Record, days)
	for d := range days {
		for i := range perDay {
			out[d] = append(out[d], writeTxn(t, s, first+d*perDay+i, base.AddDate(0, 0, d).Add(time.Duration(i)*time.Minute)))
		}
	}
	return out
}

func segCount(t *testing.T, dir string) int {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return len(segs)
}

// present reports whether rec is found by RRN, by its terminal, by time and by its
// duplicate key; it fails the test when the answers disagree or one is an error
// other than not found.
func present(t *testing.T, s *Store, rec *Record) bool {
	t.Helper()
	ctx := context.Background()
	got, err := s.Get(rec.RRN)
	byRRN := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get %s: %v", rec.RRN, err)
	}
	if byRRN && got.RRN != rec.RRN {
		t.Fatalf("Get %s: got %s", rec.RRN, got.RRN)
	}
	found := func(q Query) bool {
		hit := false
		if err := s.Scan(ctx, q, func(r *Record) bool {
			hit = hit || r.RRN == rec.RRN
			return true
		}); err != nil {
			t.Fatalf("Scan %+v: %v", q, err)
		}
		return hit
	}
	byTerm := found(Query{TID: rec.TID})
	byTime := found(Query{From: rec.Received.Add(-time.Second), To: rec.Received.Add(time.Second)})
	dupRRN, byDup, err := s.LookupDuplicate(rec.TID, rec.STAN, rec.DE7)
	if err != nil {
		t.Fatal(err)
	}
	byDup = byDup && dupRRN == rec.RRN
	if byRRN != byTerm || byRRN != byTime || byRRN != byDup {
		t.Fatalf("%s (received %s): by RRN %v, terminal %v, time %v, duplicate key %v", rec.RRN, rec.Received, byRRN, byTerm, byTime, byDup)
	}
	return byRRN
}

// TestPurgeRetention: records journaled over ten (injected) days in small segments;
// a purge before day 5 removes the old segments and every trace of their records
// (RRN, terminal and time queries, duplicate index), keeps the newer ones and an old
// record whose newer version (a refund, day 8) lies in a kept segment, and the
// journal reopens as it was left.
func TestPurgeRetention(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{SegmentSize: 2048, NoSync: true})
	base := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	days := purgeDays(t, s, base, 10, 8)
	// The refund of a day-0 purchase on day 8: a new version of the old record.
	refunded := days[0][3]
	refunded.Refunded = 500
	refunded.AddEvent(StateAnswered, base.AddDate(0, 0, 8), "refund")
	if err := s.Write(context.Background(), refunded, false, true); err != nil {
		t.Fatal(err)
	}
	more := purgeDaysFrom(t, s, 1000, base.AddDate(0, 0, 10), 1, 8) // after the refund: its segment is not the active one
	// A durable write behind the last delivery marks (not waited for): no segment is
	// started while the files are counted.
	if err := s.PutDurable(context.Background(), []byte("t/flush"), []byte{1}); err != nil {
		t.Fatal(err)
	}
	before := segCount(t, dir)
	cut := base.AddDate(0, 0, 5)
	res, err := s.Purge(context.Background(), cut)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d segments before, purge: %+v", before, res)
	if res.Segments == 0 || res.Bytes == 0 || res.Records == 0 || res.StoppedBy != "newer" || segCount(t, dir) != before-res.Segments {
		t.Fatalf("purge removed %+v of %d segments", res, before)
	}
	check := func(when string) {
		gone := 0
		for d, recs := range days {
			for _, r := range recs {
				ok := present(t, s, r)
				switch {
				case r == refunded:
					got, err := s.Get(r.RRN)
					if !ok || err != nil || got.Refunded != 500 {
						t.Fatalf("%s: the refunded day-0 record: %+v %v", when, got, err)
					}
				case d < 4 && ok:
					t.Fatalf("%s: %s of day %d still there", when, r.RRN, d)
				case d >= 5 && !ok:
					t.Fatalf("%s: %s of day %d gone", when, r.RRN, d)
				case !ok:
					gone++
				}
			}
		}
		if gone != res.Records || gone < 4*8-1 {
			t.Fatalf("%s: %d records gone, purge says %d", when, gone, res.Records)
		}
		for _, r := range more[0] {
			if !present(t, s, r) {
				t.Fatalf("%s: %s of day 10 gone", when, r.RRN)
			}
		}
		var n int
		if err := s.Scan(context.Background(), Query{}, func(*Record) bool { n++; return true }); err != nil {
			t.Fatal(err)
		}
		if want := 11*8 - res.Records; n != want {
			t.Fatalf("%s: a scan of everything finds %d records, want %d", when, n, want)
		}
	}
	check("after the purge")
	// Nothing more to remove for the same cut-off.
	if again, err := s.Purge(context.Background(), cut); err != nil || again.Segments != 0 || again.Records != 0 {
		t.Fatalf("second purge: %+v %v", again, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, s = openOpts(t, dir, Options{SegmentSize: 2048, NoSync: true})
	defer db.Close()
	defer s.Close()
	check("after a restart")
	r := writeTxn(t, s, 999, base.AddDate(0, 0, 11))
	if !present(t, s, r) {
		t.Fatal("a new record after the purge and restart not found")
	}
}

// TestPurgeKeepsOpenRecord: a record whose newest version is not final (in flight,
// or open until recovery) stops the purge before its segment, however old.
func TestPurgeKeepsOpenRecord(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{SegmentSize: 2048, NoSync: true})
	defer db.Close()
	defer s.Close()
	base := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	old := purgeDays(t, s, base, 1, 12)
	rrn, _ := s.NextRRN()
	open := sample(rrn, base.AddDate(0, 0, 1), "T0000009")
	open.RC, open.Events = "", open.Events[:1] // the write-ahead only
	if err := s.Write(context.Background(), open, true, true); err != nil {
		t.Fatal(err)
	}
	later := purgeDaysFrom(t, s, 1000, base.AddDate(0, 0, 2), 3, 8)
	res, err := s.Purge(context.Background(), base.AddDate(0, 0, 30))
	if err != nil {
		t.Fatal(err)
	}
	if res.Records == 0 || res.StoppedBy != "open record "+rrn {
		t.Fatalf("purge: %+v", res)
	}
	if got, err := s.Get(rrn); err != nil || got.Final() {
		t.Fatalf("open record: %+v %v", got, err)
	}
	for _, recs := range later {
		for _, r := range recs {
			if !present(t, s, r) {
				t.Fatalf("%s, after the open record, gone", r.RRN)
			}
		}
	}
	gone := 0
	for _, r := range old[0] {
		if !present(t, s, r) {
			gone++
		}
	}
	if gone != res.Records {
		t.Fatalf("%d old records gone, purge says %d", gone, res.Records)
	}
}

// TestPurgeCrashMidway: a purge stopped (as by a crash) after its first batch of
// index deletions, or after removing its first segment, leaves a journal that
// reopens and answers every query; the next purge finishes the job.
func TestPurgeCrashMidway(t *testing.T) {
	for _, step := range []string{"index", "remove"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			db, s := openOpts(t, dir, Options{SegmentSize: 2048, NoSync: true})
			base := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
			days := purgeDays(t, s, base, 6, 8)
			saved := purgeBatch
			purgeBatch = 4
			crashed := errors.New("crash")
			purgeStep = func(st string) error {
				if st == step {
					return crashed
				}
				return nil
			}
			defer func() { purgeStep, purgeBatch = nil, saved }()
			cut := base.AddDate(0, 0, 3)
			if _, err := s.Purge(context.Background(), cut); !errors.Is(err, crashed) {
				t.Fatalf("purge: %v, want the crash", err)
			}
			purgeStep = nil
			crash(db)
			db, s = openOpts(t, dir, Options{SegmentSize: 2048, NoSync: true})
			defer func() { s.Close(); db.Close() }()
			for _, recs := range days {
				for _, r := range recs {
					present(t, s, r) // either way, never an error
				}
			}
			for _, recs := range days[3:] {
				for _, r := range recs {
					if !present(t, s, r) {
						t.Fatalf("%s of after the cut-off gone", r.RRN)
					}
				}
			}
			res, err := s.Purge(context.Background(), cut)
			if err != nil || res.Segments == 0 {
				t.Fatalf("purge after the crash: %+v %v", res, err)
			}
			for _, recs := range days[:2] {
				for _, r := range recs {
					if present(t, s, r) {
						t.Fatalf("%s before the cut-off still there after the second purge", r.RRN)
					}
				}
			}
		})
	}
}

// TestPurgedSegmentReadsAsNotFound: an index entry that points into a segment
// retention removed (a purge that did not finish) is a record not found for Get and
// skipped by queries, never an error.
func TestPurgedSegmentReadsAsNotFound(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{SegmentSize: 2048, NoSync: true})
	defer db.Close()
	defer s.Close()
	base := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	days := purgeDays(t, s, base, 3, 8)
	if err := s.catchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := days[0][0]
	var p wal.Ptr
	var ok bool
	err := db.View(func(txn *badger.Txn) (err error) {
		p, ok, err = indexPtr(txn, first.RRN)
		return err
	})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := s.log.RemoveSegment(p.Seg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(first.RRN); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "retention") {
		t.Fatalf("Get of a record in a removed segment: %v", err)
	}
	n := 0
	for _, q := range []Query{{}, {TID: first.TID}, {From: base.Add(-time.Hour)}} {
		if err := s.Scan(context.Background(), q, func(r *Record) bool {
			if r.RRN == first.RRN {
				t.Fatalf("scan %+v returned the removed record", q)
			}
			n++
			return true
		}); err != nil {
			t.Fatalf("scan %+v: %v", q, err)
		}
	}
	if n == 0 {
		t.Fatal("scans found nothing")
	}
}
