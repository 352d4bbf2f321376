package merchantrisk

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/risk/rating"
	"github.com/switchyard/switchyard/rules"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestRatingsMaskStoredText: a pin whose reason a version before masking stored
// with a PAN in clear (through the pins' own commit, so on both nodes, and in each
// node's rating state) is masked by the clean-up run on both nodes at once: in
// Badger, in the pin in force and in the state Explain shows; a second run writes
// nothing.
func TestRatingsMaskStoredText(t *testing.T) {
	const pan = "4761739001010119"
	pol, err := rating.ParsePolicy(rules.RatingPolicy, "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	var log statelog.Memory
	var dbs []*badger.DB
	open := func() *Ratings {
		db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		reg := &fakeRegistry{db: db, merchants: []*registry.Merchant{{ID: "M1", CreatedAt: now.Add(-400 * 24 * time.Hour), Status: registry.MerchantActive}}}
		r, err := New(db, &fakeJournal{}, reg, Options{Policy: pol, Hour: 3, Minute: 30, Now: func() time.Time { return now }, Log: &log,
			CatchUp: func(context.Context, statelog.Replica) error { return log.Deliver() }})
		if err != nil {
			t.Fatal(err)
		}
		log.Follow(r)
		dbs = append(dbs, db)
		return r
	}
	a, b := open(), open()
	// As an older version: Pin without masking the reason.
	reason := "customer's card " + pan + " used in a test run"
	pin := &rating.Pin{Grade: "D", Reason: reason, By: "ana", At: now, Until: now.Add(7 * 24 * time.Hour)}
	if _, err := a.setPin("M1", pin, "merchant.rating.pin", "ana", "pinned by ana: "+reason); err != nil {
		t.Fatal(err)
	}
	if err := log.Deliver(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	counts := make([]int, 2)
	errs := make([]error, 2)
	for i, r := range []*Ratings{a, b} {
		wg.Go(func() {
			tl, err := r.MaskStoredText(context.Background())
			counts[i], errs[i] = tl.CardNumbers, err
		})
	}
	wg.Wait()
	if err := log.Deliver(); err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[1] != nil || counts[0]+counts[1] == 0 {
		t.Fatalf("clean-up: %v %v, %d + %d card numbers masked", errs[0], errs[1], counts[0], counts[1])
	}
	const masked = "customer's card 476173******0119 used in a test run"
	for i, r := range []*Ratings{a, b} {
		e, err := r.Explain("M1")
		if err != nil || e.Pin == nil || e.Pin.Reason != masked || e.Grade != "D" {
			t.Errorf("node %d: %+v %v", i, e, err)
		}
		_ = dbs[i].View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("rating/"), PrefetchValues: true})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				if v, _ := it.Item().ValueCopy(nil); bytes.Contains(v, []byte(pan)) {
					t.Errorf("node %d: clear PAN under %s", i, it.Item().Key())
				}
			}
			return nil
		})
		if tl, err := r.MaskStoredText(context.Background()); err != nil || tl.Records != 0 {
			t.Errorf("node %d: second run %+v %v", i, tl, err)
		}
	}
}
