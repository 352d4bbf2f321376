package merchantrisk

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/risk/rating"
	"github.com/switchyard/switchyard/rules"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

type fakeJournal struct {
	mu   sync.Mutex
	recs []*journal.Record
}

func (f *fakeJournal) Scan(_ context.Context, q journal.Query, fn func(*journal.Record) bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.recs {
		if !r.Received.Before(q.From) && r.Received.Before(q.To) && (q.MID == "" || q.MID == r.MID) && !fn(r) {
			return nil
		}
	}
	return nil
}

type fakeRegistry struct {
	db        *badger.DB
	merchants []*registry.Merchant
	mu        sync.Mutex
	ops       []registry.OpEntry
}

func (f *fakeRegistry) Merchants(registry.MerchantFilter) []*registry.Merchant { return f.merchants }
func (f *fakeRegistry) Merchant(id string) (*registry.Merchant, bool) {
	for _, m := range f.merchants {
		if m.ID == id {
			return m, true
		}
	}
	return nil, false
}
func (f *fakeRegistry) Incidents(registry.IncidentFilter) ([]*registry.Incident, error) {
	return nil, nil
}
func (f *fakeRegistry) LogOp(e registry.OpEntry, write func(txn *badger.Txn) error) (registry.OpEntry, error) {
	f.mu.Lock()
	f.ops = append(f.ops, e)
	f.mu.Unlock()
	return e, f.db.Update(write)
}

func (f *fakeRegistry) opCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ops)
}

// TestRatingsRunAndNudge: the loop rates every merchant at start (the missed daily
// run), a nudged merchant is recomputed at once (its grade and limits in the book
// the pipeline reads), the states survive a reopen, and each change is logged.
func TestRatingsRunAndNudge(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pol, err := rating.ParsePolicy(rules.RatingPolicy, "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	old := now.Add(-400 * 24 * time.Hour)
	reg := &fakeRegistry{db: db, merchants: []*registry.Merchant{{ID: "M1", CreatedAt: old, Status: registry.MerchantActive},
		{ID: "M2", CreatedAt: old, Status: registry.MerchantActive, Currency: "392"}}}
	j := &fakeJournal{}
	for i := 0; i < 50; i++ {
		for _, m := range []string{"M1", "M2"} {
			j.recs = append(j.recs, &journal.Record{MID: m, Type: "purchase", RC: "00", Amount: 1000, Received: now.Add(-time.Duration(i+1) * time.Hour)})
		}
	}
	clock := func() time.Time { return now }
	r, err := New(db, j, reg, Options{Policy: pol, Hour: 3, Minute: 30, Poll: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("the start run", func() bool { return r.Book().Grade("M1") == "A" && r.Book().Grade("M2") == "A" })
	// M1's confirmed fraud: at once, M1 only.
	j.mu.Lock()
	for i := 0; i < 60; i++ {
		j.recs = append(j.recs, &journal.Record{MID: "M1", Type: "purchase", RC: "59", DecidedBy: "risk", Received: now.Add(-time.Minute)},
			&journal.Record{MID: "M2", Type: "purchase", RC: "59", DecidedBy: "risk", Received: now.Add(-time.Minute)})
	}
	j.mu.Unlock()
	ops := reg.opCount()
	r.Nudge("M1")
	waitFor("the nudge", func() bool { return r.Book().Grade("M1") == "E" })
	if g := r.Book().Grade("M2"); g != "A" {
		t.Fatalf("M2 recomputed by M1's nudge: %s", g)
	}
	m := risk.Merchant{ID: "M1", SingleLimit: 300000}
	r.Book().Apply(&m, false)
	if m.Rating != "E" || m.SingleLimit != 50000 {
		t.Fatalf("E in the book: %+v", m)
	}
	if reg.opCount() != ops+1 {
		t.Fatalf("oplog entries %d, want %d", reg.opCount(), ops+1)
	}
	cancel()
	<-done
	r2, err := New(db, j, reg, Options{Policy: pol, Hour: 3, Minute: 30, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if g := r2.Book().Grade("M1"); g != "E" {
		t.Fatalf("after reopen: %q", g)
	}
	if e, err := r2.Explain("M1"); err != nil || e.Computed.Grade != "E" || e.Facts.RiskHitRatio == 0 || e.Currency != "156" {
		t.Fatalf("explain: %+v %v; want the limits in the acquirer's 156 (M1 takes any currency)", e, err)
	}
	if e, err := r2.Explain("M2"); err != nil || e.Currency != "392" {
		t.Fatalf("explain M2: %+v %v; want the limits in its currency, 392", e, err)
	}
	if _, err := r2.Pin("M1", "F", "x", "ana", 0); err == nil {
		t.Fatal("grade F pinned")
	}
}

// TestPinsShared: a pin set on one node of a cluster holds on the others (their
// book and their daily run); an unpin reaches them too.
func TestPinsShared(t *testing.T) {
	pol, err := rating.ParsePolicy(rules.RatingPolicy, "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	var log statelog.Memory
	open := func() (*Ratings, *fakeRegistry) {
		db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		reg := &fakeRegistry{db: db, merchants: []*registry.Merchant{{ID: "M1", CreatedAt: now.Add(-400 * 24 * time.Hour), Status: registry.MerchantActive}}}
		r, err := New(db, &fakeJournal{}, reg, Options{Policy: pol, Hour: 3, Minute: 30, Now: func() time.Time { return now }, Log: &log})
		if err != nil {
			t.Fatal(err)
		}
		log.Follow(r)
		return r, reg
	}
	a, regA := open()
	b, _ := open()
	if _, err := b.Recompute(context.Background(), now, nil); err != nil {
		t.Fatal(err)
	}
	if g := b.Book().Grade("M1"); g != "A" { // 400 days old, no traffic: low volume only (5 points)
		t.Fatalf("B's first grade %s", g)
	}
	if _, err := a.Pin("M1", "D", "chargebacks under review", "ana", 7); err != nil {
		t.Fatal(err)
	}
	if err := log.Deliver(); err != nil {
		t.Fatal(err)
	}
	if g := b.Book().Grade("M1"); g != "D" {
		t.Fatalf("pin on A, grade on B: %q", g)
	}
	if _, err := b.Recompute(context.Background(), now.Add(24*time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	if e, _ := b.Explain("M1"); e.Grade != "D" || e.Pin == nil || e.Pin.By != "ana" {
		t.Fatalf("B after its run: %+v", e)
	}
	if n := regA.opCount(); n != 1 {
		t.Fatalf("A logged %d entries, want the pin's", n)
	}
	if _, err := b.Unpin("M1", "reviewed", "bob"); err != nil {
		t.Fatal(err)
	}
	log.Deliver()
	if _, err := a.Unpin("M1", "again", "ana"); err == nil {
		t.Fatal("A still has the pin B removed")
	}
}
