package saf

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/syncbuf"
)

func openDB(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestRetriesAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	q, err := Open(db, Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// No sender yet: items wait.
	for _, rrn := range []string{"000000000001", "000000000002", "000000000003"} {
		if err := q.Enqueue(&Item{Issuer: "demo", MTI: "0420", RRN: rrn, Fields: map[int]string{4: "000000001000"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = openDB(t, dir)
	defer db.Close()
	q, err = Open(db, Options{MinBackoff: 30 * time.Millisecond, MaxBackoff: 60 * time.Millisecond, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var mu sync.Mutex
	var got []string
	fails := 2
	q.Register("demo", func(_ context.Context, it *Item, repeat bool) error {
		mu.Lock()
		defer mu.Unlock()
		mti := it.MTI
		if repeat {
			mti = RepeatMTI(it.MTI)
		}
		got = append(got, it.RRN+"/"+mti)
		if it.RRN == "000000000001" && fails > 0 {
			fails--
			return errors.New("no answer")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	per := map[string][]string{}
	for _, g := range got {
		rrn, mti, _ := strings.Cut(g, "/")
		per[rrn] = append(per[rrn], mti)
	}
	want := map[string][]string{"000000000001": {"0420", "0421", "0421"}, "000000000002": {"0420"}, "000000000003": {"0420"}}
	if !reflect.DeepEqual(per, want) {
		t.Fatalf("deliveries %v, want %v", per, want)
	}
	// A failing advice does not hold up the others: 2 and 3 went before 1's last try.
	if got[len(got)-1] != "000000000001/0421" {
		t.Fatalf("the failing advice held up the queue: %v", got)
	}
	if p, _ := q.Pending(""); len(p) != 0 {
		t.Fatalf("still pending: %v", p)
	}
}

// TestIndexReloadsAndEmpties checks the in-memory index: a restart reloads every queued
// item (with its retry time), each is delivered exactly once, and the index and Badger
// both end empty.
func TestIndexReloadsAndEmpties(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	q, err := Open(db, Options{Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := range n {
		it := &Item{Issuer: []string{"a", "b"}[i%2], MTI: "0420", RRN: fmt.Sprintf("%012d", i)}
		if i == 7 {
			it.Next = time.Now().Add(time.Hour) // waiting out a backoff
		}
		if err := q.Enqueue(it); err != nil {
			t.Fatal(err)
		}
	}
	if got := q.Len(""); got != n {
		t.Fatalf("Len = %d, want %d", got, n)
	}
	q.Close()
	db.Close()

	db = openDB(t, dir)
	defer db.Close()
	q, err = Open(db, Options{Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if got, a := q.Len(""), q.Len("a"); got != n || a != n/2 {
		t.Fatalf("after restart Len = %d (a: %d), want %d (%d)", got, a, n, n/2)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	ack := func(_ context.Context, it *Item, _ bool) error {
		mu.Lock()
		seen[it.RRN]++
		mu.Unlock()
		return nil
	}
	q.Register("a", ack)
	q.Register("b", ack)
	deadline := time.Now().Add(5 * time.Second)
	for q.Len("") > 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := q.Len(""); got != 1 {
		t.Fatalf("Len = %d after delivery, want 1 (the item in backoff)", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n-1 {
		t.Fatalf("%d items delivered, want %d", len(seen), n-1)
	}
	for rrn, c := range seen {
		if c != 1 || rrn == fmt.Sprintf("%012d", 7) {
			t.Fatalf("item %s delivered %d times", rrn, c)
		}
	}
	if p, _ := q.Pending(""); len(p) != 1 || p[0].RRN != fmt.Sprintf("%012d", 7) {
		t.Fatalf("pending %v, want only the item in backoff", p)
	}
}

// TestUndecodableItemSetAside checks that an item that cannot be read neither stops the
// queue from opening nor holds up the items behind it.
func TestUndecodableItemSetAside(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer db.Close()
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(key("demo", 1<<40), []byte("{not json")) }); err != nil {
		t.Fatal(err)
	}
	q, err := Open(db, Options{Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("open with an undecodable item: %v", err)
	}
	defer q.Close()
	if err := q.Enqueue(&Item{Issuer: "demo", MTI: "0420", RRN: "000000000002"}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	q.Register("demo", func(_ context.Context, it *Item, _ bool) error { got <- it.RRN; return nil })
	select {
	case rrn := <-got:
		if rrn != "000000000002" {
			t.Fatalf("delivered %q", rrn)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the good item was held up by the undecodable one")
	}
	deadline := time.Now().Add(2 * time.Second)
	for q.Len("demo") != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := q.Len("demo"); n != 1 {
		t.Fatalf("Len = %d, want 1 (the undecodable item, set aside)", n)
	}
}

// TestReversalNotBeforeItsAdvice: as the cluster queue's test of the same name
// (switch/cluster/jsaf): a stand-in advice (0220) in its backoff while the issuer is
// down, then the 0420 that reverses it queued once the issuer is back; the issuer
// must not get the reversal before the advice it reverses.
func TestReversalNotBeforeItsAdvice(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	q, err := Open(db, Options{MinBackoff: 5 * time.Second, MaxBackoff: 5 * time.Second, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var mu sync.Mutex
	up := false
	var accepted []string
	failed := make(chan struct{}, 1)
	both := make(chan struct{})
	q.Register("bank", func(_ context.Context, it *Item, repeat bool) error {
		mti := it.MTI
		if repeat {
			mti = RepeatMTI(mti)
		}
		mu.Lock()
		defer mu.Unlock()
		if !up {
			select {
			case failed <- struct{}{}:
			default:
			}
			return errors.New("issuer down")
		}
		accepted = append(accepted, mti+" "+it.RRN)
		if len(accepted) == 2 {
			close(both)
		}
		return nil
	})
	if err := q.Enqueue(&Item{Issuer: "bank", MTI: "0220", RRN: "000000000007", Reason: "stand-in"}); err != nil {
		t.Fatal(err)
	}
	<-failed
	mu.Lock()
	up = true
	mu.Unlock()
	if err := q.Enqueue(&Item{Issuer: "bank", MTI: "0420", RRN: "000000000007", Reason: "000000000008"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-both:
	case <-time.After(30 * time.Second):
		t.Fatal("the issuer did not get both advices within 30 s")
	}
	mu.Lock()
	got := append([]string(nil), accepted...)
	mu.Unlock()
	if !strings.HasPrefix(got[0], "022") {
		t.Fatalf("the issuer took %q: the reversal of 000000000007 before the advice it reverses", got)
	}
}

// TestReversalHeldBehindStuckAdvice: an advice the issuer never takes (here it
// refuses the stand-in advice of 000000000007 on every try) holds back the reversal
// of the same transaction, across a restart, and only that one: the reversal of
// another transaction goes. Held past HoldWarn, it is counted and logged; it goes
// once the advice before it is acknowledged.
func TestReversalHeldBehindStuckAdvice(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer db.Close()
	var logs syncbuf.Buffer
	opts := Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Poll: 5 * time.Millisecond,
		HoldWarn: time.Millisecond, Logger: zerolog.New(&logs)}
	q, err := Open(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	takeAdvice := false
	var accepted []string
	send := func(_ context.Context, it *Item, repeat bool) error {
		mu.Lock()
		defer mu.Unlock()
		if it.MTI == "0220" && !takeAdvice {
			return errors.New("refused")
		}
		accepted = append(accepted, it.MTI+" "+it.RRN)
		return nil
	}
	took := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), accepted...)
	}
	for _, it := range []*Item{
		{Issuer: "bank", MTI: "0220", RRN: "000000000007", Reason: "stand-in"},
		{Issuer: "bank", MTI: "0420", RRN: "000000000007", Reason: "void"},
		{Issuer: "bank", MTI: "0420", RRN: "000000000008", Reason: "switch:timeout"},
	} {
		if err := q.Enqueue(it); err != nil {
			t.Fatal(err)
		}
	}
	q.Register("bank", send)
	waitUntil(t, "the reversal held long counted", 10*time.Second, func() bool {
		st := q.IssuerStats()["bank"]
		return st.HeldLong.Load() == 1 && len(took()) == 1
	})
	if got := took(); got[0] != "0420 000000000008" {
		t.Fatalf("the issuer took %q, want the reversal of the other transaction alone", got)
	}
	if st := q.IssuerStats()["bank"]; st.Held.Load() != 1 {
		t.Fatalf("held = %d, want 1 (the reversal of 000000000007)", st.Held.Load())
	}
	waitUntil(t, "the held reversal logged", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "reversal advice held back") && strings.Contains(logs.String(), "000000000007")
	})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// After a restart the index, read from disk, holds it back still.
	q, err = Open(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	q.Register("bank", send)
	waitUntil(t, "the reversal held again after the restart", 10*time.Second, func() bool {
		return q.IssuerStats()["bank"].Held.Load() == 1
	})
	if got := took(); len(got) != 1 {
		t.Fatalf("the issuer took %q after the restart, with the advice of 000000000007 still refused", got)
	}
	mu.Lock()
	takeAdvice = true
	mu.Unlock()
	waitUntil(t, "both advices of 000000000007 taken", 10*time.Second, func() bool { return q.Len("bank") == 0 })
	if got := took(); len(got) != 3 || got[1] != "0220 000000000007" || got[2] != "0420 000000000007" {
		t.Fatalf("the issuer took %q, want the advice of 000000000007 before its reversal", got)
	}
}

// TestRepeatItemGoesAsRepeat: an advice queued with Repeat (a reversal queued by
// recovery, which the process that died may have sent) goes as a repeat (0421) on
// its first try, also after a restart of the queue; one without goes as 0420.
func TestRepeatItemGoesAsRepeat(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	q, err := Open(db, Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range []*Item{
		{Issuer: "bank", MTI: "0420", RRN: "000000000001", Reason: "switch:restart", Repeat: true},
		{Issuer: "bank", MTI: "0420", RRN: "000000000002", Reason: "timeout"},
	} {
		if err := q.Enqueue(it); err != nil {
			t.Fatal(err)
		}
	}
	// Stored, not yet sent: the flag must survive the queue's restart.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	q, err = Open(db, Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var mu sync.Mutex
	got := map[string]string{}
	q.Register("bank", func(_ context.Context, it *Item, repeat bool) error {
		mti := it.MTI
		if repeat {
			mti = RepeatMTI(mti)
		}
		mu.Lock()
		defer mu.Unlock()
		if _, ok := got[it.RRN]; !ok {
			got[it.RRN] = mti
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got["000000000001"] != "0421" || got["000000000002"] != "0420" {
		t.Fatalf("first tries %v, want 000000000001 as 0421 (Repeat) and 000000000002 as 0420", got)
	}
}
