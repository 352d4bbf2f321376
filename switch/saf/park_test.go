package saf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/syncbuf"
)

// TestAdviceAnsweredWithoutAckParked: an issuer answers a stand-in advice without an
// acknowledgement (no DE 39) on every try. The advice is repeated with backoff like
// one left unanswered, but at ParkAfter such answers it is parked: out of the queue,
// kept durably under saf/parked/ through Persist (the journal's log), counted and
// logged, and not sent again; the reversal of its transaction held behind it goes,
// so the queue empties. An advice whose tries are not answered at all is never
// parked, however many they are. The parked advice survives a restart. (Until the
// fifth release of 6 December 2026 such an advice was repeated for ever, holding its
// reversal back.)
func TestAdviceAnsweredWithoutAckParked(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer db.Close()
	var logs syncbuf.Buffer
	var pmu sync.Mutex
	var persisted [][]byte
	opts := Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Poll: 5 * time.Millisecond, ParkAfter: 3,
		Logger: zerolog.New(&logs),
		Persist: func(_ context.Context, k, v []byte) error {
			pmu.Lock()
			persisted = append(persisted, bytes.Clone(k))
			pmu.Unlock()
			return db.Update(func(txn *badger.Txn) error { return txn.Set(k, v) })
		}}
	q, err := Open(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	tries := map[string]int{}
	var took []string
	q.Register("bank", func(_ context.Context, it *Item, repeat bool) error {
		mu.Lock()
		defer mu.Unlock()
		k := it.MTI + " " + it.RRN
		tries[k]++
		switch {
		case it.RRN == "000000000007" && it.MTI == "0220":
			return fmt.Errorf("advice %s: issuer bank answered 0230 without DE 39: %w", it.RRN, ErrNotAcknowledged)
		case it.RRN == "000000000008" && tries[k] <= 10:
			return errors.New("no answer in time") // never parks
		}
		took = append(took, k)
		return nil
	})
	var stand *Item
	for _, it := range []*Item{
		{Issuer: "bank", MTI: "0220", RRN: "000000000007", Reason: "stand-in"},
		{Issuer: "bank", MTI: "0420", RRN: "000000000007", Reason: "void"},
		{Issuer: "bank", MTI: "0420", RRN: "000000000008", Reason: "switch:timeout"},
	} {
		if err := q.Enqueue(it); err != nil {
			t.Fatal(err)
		}
		if stand == nil {
			stand = it
		}
	}
	waitUntil(t, "the queue emptied", 10*time.Second, func() bool { return q.Len("bank") == 0 })
	mu.Lock()
	if n := tries["0220 000000000007"]; n != 3 {
		t.Errorf("the stand-in advice answered without DE 39 was tried %d times, want 3 (park_after) and no more", n)
	}
	if n := tries["0420 000000000008"]; n != 11 {
		t.Errorf("the reversal left unanswered was tried %d times, want 11: tries without an answer never park", n)
	}
	if len(took) != 2 || took[0] != "0420 000000000007" && took[1] != "0420 000000000007" {
		t.Errorf("the issuer took %q, want both reversals (the one held behind the parked advice included)", took)
	}
	mu.Unlock()
	if st := q.IssuerStats()["bank"]; st.Parked.Load() != 1 || st.Acked.Load() != 2 {
		t.Errorf("parked %d, acked %d: want 1 and 2", st.Parked.Load(), st.Acked.Load())
	}
	checkParked := func(when string) {
		t.Helper()
		p, err := q.Parked("bank")
		if err != nil || len(p) != 1 {
			t.Fatalf("%s: parked %+v (%v), want the stand-in advice", when, p, err)
		}
		if it := p[0]; it.MTI != "0220" || it.RRN != "000000000007" || it.Seq != stand.Seq || it.Unacked != 3 || it.Parked.IsZero() ||
			!strings.Contains(it.LastErr, "without DE 39") {
			t.Errorf("%s: parked %+v", when, it)
		}
		if all, _ := q.Parked(""); len(all) != 1 {
			t.Errorf("%s: parked of all issuers %+v", when, all)
		}
		if pend, _ := q.Pending(""); len(pend) != 0 {
			t.Errorf("%s: pending %+v, want nothing", when, pend)
		}
	}
	checkParked("parked")
	pmu.Lock()
	found := false
	for _, k := range persisted {
		found = found || bytes.Equal(k, parkedKey("bank", stand.Seq))
	}
	pmu.Unlock()
	if !found {
		t.Error("the parked advice was not written through Persist (the journal's log)")
	}
	if !strings.Contains(logs.String(), "advice parked") || !strings.Contains(logs.String(), "000000000007") {
		t.Errorf("no error logged for the parked advice:\n%s", logs.String())
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q, err = Open(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if n := q.Len(""); n != 0 {
		t.Errorf("after a restart %d advices queued, want 0: a parked advice is not sent again", n)
	}
	checkParked("after a restart")
}

// TestParkNever: ParkAfter below zero keeps an advice answered without an
// acknowledgement queued, repeated, as before parking existed.
func TestParkNever(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	q, err := Open(db, Options{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Poll: 5 * time.Millisecond, ParkAfter: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	q.Register("bank", func(context.Context, *Item, bool) error { return fmt.Errorf("no DE 39: %w", ErrNotAcknowledged) })
	if err := q.Enqueue(&Item{Issuer: "bank", MTI: "0420", RRN: "000000000009"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "25 tries", 10*time.Second, func() bool { return q.IssuerStats()["bank"].Failed.Load() >= 25 })
	if st := q.IssuerStats()["bank"]; st.Parked.Load() != 0 || q.Len("bank") != 1 {
		t.Fatalf("parked %d, queued %d: want the advice still queued", st.Parked.Load(), q.Len("bank"))
	}
}
