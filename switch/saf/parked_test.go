package saf

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// parkTwo opens a queue that parks at the first answer without DE 39 and parks a
// reversal and a stand-in advice of issuer bank; fixed makes the issuer acknowledge
// from then on. The sender records each try's MTI as sent (0421 for a repeat).
func parkTwo(t *testing.T) (q *Queue, rev, stand Item, fixed *atomic.Bool, sent func() []string) {
	t.Helper()
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	q, err := Open(db, Options{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Poll: 5 * time.Millisecond, ParkAfter: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	fixed = new(atomic.Bool)
	var mu sync.Mutex
	var got []string
	q.Register("bank", func(_ context.Context, it *Item, repeat bool) error {
		mti := it.MTI
		if repeat {
			mti = RepeatMTI(mti)
		}
		mu.Lock()
		got = append(got, mti+" "+it.RRN)
		mu.Unlock()
		if fixed.Load() {
			return nil
		}
		return fmt.Errorf("answered without DE 39: %w", ErrNotAcknowledged)
	})
	for _, it := range []*Item{{Issuer: "bank", MTI: "0420", RRN: "000000000001"}, {Issuer: "bank", MTI: "0220", RRN: "000000000002"}} {
		if err := q.Enqueue(it); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "both parked", 10*time.Second, func() bool { return q.IssuerStats()["bank"].Parked.Load() == 2 })
	p, err := q.Parked("bank")
	if err != nil || len(p) != 2 {
		t.Fatalf("parked %+v (%v)", p, err)
	}
	return q, p[0], p[1], fixed, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// TestRequeueParked: a parked reversal requeued goes back to its issuer's queue and
// is sent as a repeat (0421), its answers without DE 39 counted afresh (parked again
// at the first, ParkAfter 1); once the issuer acknowledges, it leaves the queue. It
// cannot be requeued or resolved a second time (ErrParkedConflict names who did it),
// and an unknown id is ErrParkedNotFound.
func TestRequeueParked(t *testing.T) {
	q, rev, _, fixed, sent := parkTwo(t)
	a, err := q.Requeue(rev.Seq, "olga")
	if err != nil {
		t.Fatal(err)
	}
	if a.Requeued == 0 || a.Requeued == rev.Seq || a.Item.RRN != rev.RRN || a.By != "olga" {
		t.Fatalf("requeue: %+v", a)
	}
	// Still not acknowledged: parked again after one answer (counted afresh, not 2).
	waitUntil(t, "parked again", 10*time.Second, func() bool { return q.IssuerStats()["bank"].Parked.Load() == 3 })
	if got := sent(); got[len(got)-1] != "0421 000000000001" {
		t.Errorf("the requeued reversal went as %q, want a repeat 0421", got[len(got)-1])
	}
	p, _ := q.Parked("bank")
	var again Item
	for _, it := range p {
		if it.RRN == rev.RRN {
			again = it
		}
	}
	if again.Seq != a.Requeued || again.Unacked != 1 {
		t.Fatalf("parked again %+v, want seq %d with 1 unacknowledged answer", again, a.Requeued)
	}
	_, err = q.Requeue(rev.Seq, "piotr")
	if !errors.Is(err, ErrParkedConflict) || !strings.Contains(err.Error(), "olga") {
		t.Errorf("second requeue: %v, want a conflict naming olga", err)
	}
	if _, err := q.Resolve(rev.Seq, "piotr", "phoned"); !errors.Is(err, ErrParkedConflict) {
		t.Errorf("resolve after requeue: %v, want a conflict", err)
	}
	if _, err := q.Requeue(999999, "piotr"); !errors.Is(err, ErrParkedNotFound) {
		t.Errorf("unknown id: %v, want ErrParkedNotFound", err)
	}
	fixed.Store(true)
	if _, err := q.Requeue(again.Seq, "olga"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "acknowledged", 10*time.Second, func() bool { return q.IssuerStats()["bank"].Acked.Load() == 1 && q.Len("bank") == 0 })
	if p, _ := q.Parked("bank"); len(p) != 1 || p[0].RRN != "000000000002" {
		t.Errorf("parked %+v, want only the stand-in advice", p)
	}
}

// TestResolveParked: resolving needs a note; a resolved advice leaves the parked
// list, is never sent again, and its record (who, when, the note) is kept: a
// second action is refused with its name.
func TestResolveParked(t *testing.T) {
	q, _, stand, _, sent := parkTwo(t)
	if _, err := q.Resolve(stand.Seq, "olga", "  "); !errors.Is(err, ErrParkedInvalid) {
		t.Fatalf("resolve without a note: %v, want ErrParkedInvalid", err)
	}
	if _, err := q.Resolve(stand.Seq, "", "phoned"); !errors.Is(err, ErrParkedInvalid) {
		t.Fatalf("resolve without an actor: %v, want ErrParkedInvalid", err)
	}
	before := len(sent())
	a, err := q.Resolve(stand.Seq, "olga", "issuer booked it, confirmed by phone")
	if err != nil {
		t.Fatal(err)
	}
	if a.Action != ActionResolve || a.Note == "" || a.At.IsZero() || a.Item.RRN != stand.RRN || a.Requeued != 0 {
		t.Errorf("resolve: %+v", a)
	}
	if p, _ := q.Parked("bank"); len(p) != 1 || p[0].Seq == stand.Seq {
		t.Errorf("parked %+v, want only the reversal", p)
	}
	if q.Len("") != 0 || len(sent()) != before {
		t.Errorf("a resolved advice was queued or sent: %d queued, tries %q", q.Len(""), sent())
	}
	_, err = q.Resolve(stand.Seq, "piotr", "again")
	if !errors.Is(err, ErrParkedConflict) || !strings.Contains(err.Error(), "resolved by olga") {
		t.Errorf("second resolve: %v, want a conflict naming olga", err)
	}
}

// TestParkedActionsRace: two operators act on the same parked advice at once (one
// requeues, one resolves, many times over): exactly one wins, the other gets
// ErrParkedConflict.
func TestParkedActionsRace(t *testing.T) {
	q, rev, stand, _, _ := parkTwo(t)
	for _, id := range []uint64{rev.Seq, stand.Seq} {
		start := make(chan struct{})
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() {
				<-start
				if i == 0 {
					_, errs[i] = q.Requeue(id, "olga")
				} else {
					_, errs[i] = q.Resolve(id, "piotr", "phoned")
				}
			})
		}
		close(start)
		wg.Wait()
		ok, conflict := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrParkedConflict):
				conflict++
			default:
				t.Errorf("advice %d: %v", id, err)
			}
		}
		if ok != 1 || conflict != 1 {
			t.Errorf("advice %d: %d won, %d conflicts (%v), want one each", id, ok, conflict, errs)
		}
	}
}

// TestActionsListed: the records of the actions on parked advices are listed by
// ascending id, as the filter selects them (resolved, requeued, both; an issuer),
// with who, when and the note, paged by After and Limit; a bad filter is
// ErrParkedInvalid; each record expires after Options.ActionRetention (a Badger TTL).
func TestActionsListed(t *testing.T) {
	q, rev, stand, _, _ := parkTwo(t)
	if as, err := q.Actions(ActionFilter{}); err != nil || len(as) != 0 {
		t.Fatalf("actions before any: %+v (%v), want none", as, err)
	}
	if _, err := q.Resolve(stand.Seq, "olga", "issuer booked it, ticket 42"); err != nil {
		t.Fatal(err)
	}
	req, err := q.Requeue(rev.Seq, "piotr")
	if err != nil {
		t.Fatal(err)
	}
	as, err := q.Actions(ActionFilter{Action: ActionResolve})
	if err != nil || len(as) != 1 {
		t.Fatalf("resolved: %+v (%v), want one", as, err)
	}
	if a := as[0]; a.ID != stand.Seq || a.By != "olga" || a.Note != "issuer booked it, ticket 42" || a.At.IsZero() || a.Item.RRN != stand.RRN {
		t.Errorf("resolved: %+v", a)
	}
	as, err = q.Actions(ActionFilter{Action: ActionRequeue, Issuer: "bank"})
	if err != nil || len(as) != 1 || as[0].ID != rev.Seq || as[0].By != "piotr" || as[0].Requeued != req.Requeued || as[0].Requeued == 0 {
		t.Errorf("requeued: %+v (%v), want piotr's, requeued as %d", as, err, req.Requeued)
	}
	if as, err := q.Actions(ActionFilter{Issuer: "other"}); err != nil || len(as) != 0 {
		t.Errorf("another issuer's: %+v (%v), want none", as, err)
	}
	// Paged: rev was parked first (the lower id).
	p1, err := q.Actions(ActionFilter{Limit: 1})
	if err != nil || len(p1) != 1 || p1[0].ID != rev.Seq {
		t.Fatalf("first page: %+v (%v)", p1, err)
	}
	p2, err := q.Actions(ActionFilter{After: p1[0].ID, Limit: 1})
	if err != nil || len(p2) != 1 || p2[0].ID != stand.Seq {
		t.Fatalf("second page: %+v (%v)", p2, err)
	}
	if p3, err := q.Actions(ActionFilter{After: p2[0].ID}); err != nil || len(p3) != 0 {
		t.Errorf("third page: %+v (%v), want none", p3, err)
	}
	if p, err := q.Actions(ActionFilter{After: ^uint64(0)}); err != nil || len(p) != 0 {
		t.Errorf("after the last id there is: %+v (%v), want none", p, err)
	}
	for _, f := range []ActionFilter{{Action: "delete"}, {Limit: -1}, {Limit: MaxActionLimit + 1}} {
		if _, err := q.Actions(f); !errors.Is(err, ErrParkedInvalid) {
			t.Errorf("actions %+v: %v, want ErrParkedInvalid", f, err)
		}
	}
	// Each record expires after the retention.
	err = q.db.View(func(txn *badger.Txn) error {
		for _, id := range []uint64{rev.Seq, stand.Seq} {
			it, err := txn.Get(parkDoneKey(id))
			if err != nil {
				return err
			}
			exp := time.Unix(int64(it.ExpiresAt()), 0)
			if want := time.Now().Add(DefaultActionRetention); exp.Before(want.Add(-time.Minute)) || exp.After(want.Add(time.Minute)) {
				t.Errorf("the record of %d expires at %v, want about %v", id, exp, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
