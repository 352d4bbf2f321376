package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// lateRRNs returns the RRNs ScanLate yields for [from, to), in its order.
func lateRRNs(t *testing.T, s *Store, from, to time.Time) []string {
	t.Helper()
	var out []string
	if err := s.ScanLate(context.Background(), from, to, func(r *Record) bool {
		out = append(out, r.RRN)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// lateKeys returns the keys of the index of late changes.
func lateKeys(t *testing.T, db *badger.DB) int {
	t.Helper()
	n := 0
	if err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixLate)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// reverseAt marks r reversed by the switch at at and writes the version.
func reverseAt(t *testing.T, s *Store, r *Record, at time.Time) {
	t.Helper()
	r.ReversedBy = "switch:recovered"
	r.AddEvent(StateReversed, at.UTC(), r.ReversedBy)
	if err := s.Write(context.Background(), r, false, true); err != nil {
		t.Fatal(err)
	}
}

// TestScanLate: the index of late changes holds a record reversed more than
// LateAfter after it was received (by the reversal's time) and one first written
// that late (Record.Written, by that time), and neither a reversal within the hour
// nor a record left alone; a record with both marks is yielded once. ScanLate gives
// the records changed within its range, in the order of the changes, and the index
// is rebuilt from the log after a crash that took it.
func TestScanLate(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{IndexDelay: never, Prealloc: -1})
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	writeTxn(t, s, 0, base) // left alone
	soon := writeTxn(t, s, 1, base)
	reverseAt(t, s, soon, base.Add(30*time.Minute))
	old := writeTxn(t, s, 2, base)
	reverseAt(t, s, old, base.Add(50*time.Hour)) // a recovery after two days down
	swept := sample("000000000901", base, "T0000009")
	swept.Written = base.Add(26 * time.Hour)
	if err := s.Write(context.Background(), swept, true, true); err != nil {
		t.Fatal(err)
	}
	both := sample("000000000902", base, "T0000009")
	both.STAN = "000124"
	both.Written = base.Add(26*time.Hour + time.Minute)
	if err := s.Write(context.Background(), both, true, true); err != nil {
		t.Fatal(err)
	}
	reverseAt(t, s, both, both.Written.Add(time.Second)) // a late payment, refunded at once

	// The crash: no index written.
	db.Close()
	db, s = openOpts(t, dir, Options{Prealloc: -1})
	defer db.Close()
	defer s.Close()
	if got, want := lateRRNs(t, s, base, base.Add(100*time.Hour)), []string{swept.RRN, both.RRN, old.RRN}; !slices.Equal(got, want) {
		t.Errorf("late changes: %q, want %q", got, want)
	}
	if got, want := lateRRNs(t, s, base.Add(26*time.Hour+time.Minute), base.Add(50*time.Hour)), []string{both.RRN}; !slices.Equal(got, want) {
		t.Errorf("late changes to the reversal (excluded): %q, want %q", got, want)
	}
	if got := lateRRNs(t, s, base, base.Add(26*time.Hour)); len(got) != 0 {
		t.Errorf("late changes before the first: %q", got)
	}
	if n := lateKeys(t, db); n != 4 {
		t.Errorf("%d entries in the index of late changes, want 4 (one a change)", n)
	}
}

// TestPurgeRemovesLateEntry: retention deletes a purged record's entries in the index
// of late changes with its other index entries.
func TestPurgeRemovesLateEntry(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{SegmentSize: 2048, NoSync: true})
	defer db.Close()
	defer s.Close()
	base := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	old := purgeDays(t, s, base, 1, 8)[0][2]
	reverseAt(t, s, old, old.Received.Add(2*time.Hour)) // in day 0's segments, with its record
	days := purgeDaysFrom(t, s, 8, base.AddDate(0, 0, 1), 5, 8)
	kept := days[4][2]
	reverseAt(t, s, kept, kept.Received.Add(2*time.Hour))
	if err := s.PutDurable(context.Background(), []byte("t/flush"), []byte{1}); err != nil {
		t.Fatal(err)
	}
	if got := lateRRNs(t, s, base, base.AddDate(0, 0, 7)); !slices.Equal(got, []string{old.RRN, kept.RRN}) {
		t.Fatalf("late changes before the purge: %q", got)
	}
	res, err := s.Purge(context.Background(), base.AddDate(0, 0, 3))
	if err != nil || res.Records == 0 {
		t.Fatalf("purge: %+v %v", res, err)
	}
	if got := lateRRNs(t, s, base, base.AddDate(0, 0, 7)); !slices.Equal(got, []string{kept.RRN}) {
		t.Fatalf("late changes after the purge: %q, want %s alone", got, kept.RRN)
	}
	if n := lateKeys(t, db); n != 1 {
		t.Fatalf("%d entries in the index of late changes after the purge, want 1", n)
	}
}

// TestCodecWritten: Written survives the codec, alone (the optional fields before it
// written empty) and after the others; a record without it encodes as before, and
// its JSON leaves it out.
func TestCodecWritten(t *testing.T) {
	r := sample("000000000007", time.Unix(1700000000, 0), "T0000001")
	before, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r.Written = time.Unix(1700090000, 5).UTC()
	with, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := back.UnmarshalBinary(with); err != nil || !back.Written.Equal(r.Written) {
		t.Fatalf("back %v: %v", back.Written, err)
	}
	r.SealedPAN = []byte{1}
	both, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back = Record{}
	if err := back.UnmarshalBinary(both); err != nil || !back.Written.Equal(r.Written) || !bytes.Equal(back.SealedPAN, r.SealedPAN) {
		t.Fatalf("after the sealed card: back %v %x: %v", back.Written, back.SealedPAN, err)
	}
	r.SealedPAN, r.Written = nil, time.Time{}
	again, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, before) {
		t.Errorf("a record without Written encodes differently than before it")
	}
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(j, []byte("written")) {
		t.Errorf("JSON of a record without Written: %s", j)
	}
}

// TestTimeScanPastWrittenRecord: a record that carries Written (a merchant-presented
// payment: its RRN is its order's ID, taken when the order was made, and it is
// received when paid, minutes later) sits in RRN order before records received
// before it. A time query that ends between them still finds those records: the
// paid order, beyond the query's end, does not end the walk (in RRN order, the
// receive order of the records without Written). (Until 6 December 2026
// it did: a card purchase of 23:55, after an order made at 23:50 and paid at 00:05,
// was in no query of its day, nor in its day's settlement report.)
func TestTimeScanPastWrittenRecord(t *testing.T) {
	db, s := open(t, t.TempDir())
	defer db.Close()
	defer s.Close()
	midnight := time.Date(2026, 12, 1, 16, 0, 0, 0, time.UTC)
	orderAroundMidnight(t, s, midnight, -20*time.Minute, -5*time.Minute)
	if got, want := timeScanRRNs(t, s, midnight.Add(-time.Hour), midnight), []string{"000000000001", "000000000003"}; !slices.Equal(got, want) {
		t.Errorf("the day before midnight: %q, want %q", got, want)
	}
	if got, want := timeScanRRNs(t, s, midnight.Add(-time.Hour), midnight.Add(time.Hour)), []string{"000000000001", "000000000002", "000000000003"}; !slices.Equal(got, want) {
		t.Errorf("the hours around midnight: %q, want %q", got, want)
	}
}

// TestTimeScanFromAfterOrderMade: a time query that starts after a merchant-presented
// order was made, and before it was paid, finds the payment (its RRN is the order's,
// older than the query's start, with card records between): the walk starts
// LateReceipt before the query.
func TestTimeScanFromAfterOrderMade(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := Open(db, Options{Dir: t.TempDir(), NoSync: true, IndexDelay: time.Millisecond, LateReceipt: 20 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	midnight := time.Date(2026, 12, 1, 16, 0, 0, 0, time.UTC)
	orderAroundMidnight(t, s, midnight, -20*time.Minute, -5*time.Minute, 10*time.Minute)
	got := timeScanRRNs(t, s, midnight, midnight.Add(time.Hour))
	if want := []string{"000000000002", "000000000004"}; !slices.Equal(got, want) {
		t.Errorf("the hour after midnight: %q, want %q (the payment whose order was made before it)", got, want)
	}
	if _, err := Open(db, Options{Dir: t.TempDir(), LateReceipt: 25 * time.Hour}); err == nil {
		t.Errorf("a late receipt of 25h was taken")
	}
}

// orderAroundMidnight writes, on s, card purchases of T0000001 at the given offsets
// from midnight (RRNs 000000000001, 3, 4... in order) and, as RRN 000000000002, a
// merchant-presented payment whose order was made between the first two cards
// (23:50) and paid at 00:05 (its Written time): RRN order is not receive order.
func orderAroundMidnight(t *testing.T, s *Store, midnight time.Time, cards ...time.Duration) {
	t.Helper()
	order := sample("000000000002", midnight.Add(5*time.Minute), "T0000002")
	order.Written = order.Received
	recs := []*Record{}
	for i, d := range cards {
		rrn := fmt.Sprintf("%012d", i+1)
		if i > 0 {
			rrn = fmt.Sprintf("%012d", i+2)
		}
		r := sample(rrn, midnight.Add(d), "T0000001")
		r.STAN = rrn[6:]
		recs = append(recs, r)
		if i == 0 {
			recs = append(recs, order)
		}
	}
	for _, r := range recs {
		if err := s.Write(context.Background(), r, true, true); err != nil {
			t.Fatal(err)
		}
	}
}

// timeScanRRNs is the RRNs a time query of [from, to) on s hands on, in order.
func timeScanRRNs(t *testing.T, s *Store, from, to time.Time) []string {
	t.Helper()
	var out []string
	if err := s.Scan(context.Background(), Query{From: from, To: to}, func(r *Record) bool { out = append(out, r.RRN); return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestScanLateApproval: a record approved more than LateAfter after it was received
// (an offline capture approved by recovery at a restart, hours later) is in the index
// of late changes by the time of its approval (Record.DecidedAt), from the version
// that approves it; one approved within the hour is not, nor one declined late. The
// index is rebuilt from the log after a crash that took it.
func TestScanLateApproval(t *testing.T) {
	dir := t.TempDir()
	db, s := openOpts(t, dir, Options{IndexDelay: never, Prealloc: -1})
	base := time.Date(2026, 12, 3, 23, 59, 59, 0, time.UTC)
	open := func(rrn, stan string) *Record {
		r := sample(rrn, base, "T0000009")
		r.STAN, r.RC, r.AuthCode = stan, "", ""
		r.Events = r.Events[:1]
		r.AddEvent(StateSent, base, "")
		if err := s.Write(context.Background(), r, true, true); err != nil {
			t.Fatal(err)
		}
		return r
	}
	decide := func(r *Record, rc string, at time.Time) {
		r.RC = rc
		r.AddEvent(StateAnswered, at.UTC(), "")
		if err := s.Write(context.Background(), r, false, true); err != nil {
			t.Fatal(err)
		}
	}
	recovered := open("000000000801", "000801")
	soon := open("000000000802", "000802")
	declined := open("000000000803", "000803")
	if got := lateRRNs(t, s, base, base.Add(100*time.Hour)); len(got) != 0 {
		t.Fatalf("late changes of open records: %q", got)
	}
	decide(recovered, "00", base.Add(50*time.Hour))
	decide(soon, "00", base.Add(30*time.Minute))
	decide(declined, "05", base.Add(3*time.Hour))
	want := []string{recovered.RRN}
	if got := lateRRNs(t, s, base, base.Add(100*time.Hour)); !slices.Equal(got, want) {
		t.Errorf("late changes: %q, want %q", got, want)
	}
	if got := lateRRNs(t, s, base, base.Add(50*time.Hour)); len(got) != 0 {
		t.Errorf("late changes before the approval: %q", got)
	}

	// The crash: no index written.
	db.Close()
	db, s = openOpts(t, dir, Options{Prealloc: -1})
	defer db.Close()
	defer s.Close()
	if got := lateRRNs(t, s, base.Add(50*time.Hour), base.Add(51*time.Hour)); !slices.Equal(got, want) {
		t.Errorf("late changes after the index was rebuilt: %q, want %q", got, want)
	}
	if n := lateKeys(t, db); n != 1 {
		t.Errorf("%d entries in the index of late changes, want 1", n)
	}
}
