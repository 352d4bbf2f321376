package journal

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestOnVersion: the function set with OnVersion is told of every version of a
// record as it is written (the first, approved; the next, reversed), before the
// writer returns, and a query started then finds the version it was told of.
func TestOnVersion(t *testing.T) {
	_, s := open(t, t.TempDir())
	var mu sync.Mutex
	var got []Version
	s.OnVersion(func(v Version) {
		mu.Lock()
		got = append(got, v)
		mu.Unlock()
	})
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Millisecond)
	rec := &Record{RRN: "000000000101", TID: "T0000001", Type: "purchase", STAN: "000101", DE7: "0101120000", RC: "00", Amount: 2500, Received: at}
	if err := s.Write(ctx, rec, true, true); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	n := len(got)
	mu.Unlock()
	if n != 1 {
		t.Fatalf("told of %d versions once the first write returned, want 1", n)
	}
	var seen []*Record
	if err := s.Scan(ctx, Query{TID: "T0000001", From: at.Add(-time.Minute), To: at.Add(time.Minute)}, func(r *Record) bool {
		seen = append(seen, r)
		return true
	}); err != nil || len(seen) != 1 {
		t.Fatalf("scan after the version was told: %d records, %v", len(seen), err)
	}
	rec.ReversedBy, rec.Refunded = "switch:test", 500
	if err := s.Write(ctx, rec, false, true); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []Version{
		{RRN: rec.RRN, TID: rec.TID, Type: "purchase", Received: at, Amount: 2500, Approved: true},
		{RRN: rec.RRN, TID: rec.TID, Type: "purchase", Received: at, Amount: 2500, Refunded: 500, Approved: true, Reversed: true},
	}
	if len(got) != len(want) {
		t.Fatalf("told %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("version %d: told %+v, want %+v", i, got[i], want[i])
		}
	}
}
