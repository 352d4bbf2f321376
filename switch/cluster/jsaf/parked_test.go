package jsaf

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/switch/saf"
)

// TestParkedRequeueResolve: on a standalone node, an issuer answers two reversals
// without an acknowledgement and both are parked (ParkAfter 1). Another queue on the
// node (as another node's would) acts on them through SAF_PARKED:
//   - an unknown id is saf.ErrParkedNotFound, a resolve without a note
//     saf.ErrParkedInvalid;
//   - the first, requeued, is delivered again as a repeat (0421), parked again at
//     its next answer without DE 39 (counted afresh), and, once the issuer is fixed
//     and it is requeued again, acknowledged;
//   - the second, resolved with a note, leaves the parked list and is never sent;
//   - a second action on either is saf.ErrParkedConflict naming the first's actor.
func TestParkedRequeueResolve(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	q := openRetry(t, ctx, n, Options{Replicas: 1, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Poll: 100 * time.Millisecond,
		ParkAfter: 1, Logger: testLogger(t)})
	var fixed atomic.Bool
	var mu sync.Mutex
	var sent []string
	q.Register("bank", func(_ context.Context, it *saf.Item, repeat bool) error {
		mti := it.MTI
		if repeat {
			mti = saf.RepeatMTI(mti)
		}
		mu.Lock()
		sent = append(sent, mti+" "+it.RRN)
		mu.Unlock()
		if fixed.Load() {
			return nil
		}
		return fmt.Errorf("answered without DE 39: %w", saf.ErrNotAcknowledged)
	})
	for _, rrn := range []string{"000000000001", "000000000002"} {
		if err := q.Enqueue(advice("bank", rrn)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both parked", 30*time.Second, func() bool { return q.IssuerStats()["bank"].Parked.Load() == 2 })
	other := openRetry(t, ctx, n, Options{Replicas: 1, Logger: testLogger(t)})
	p, err := other.Parked("bank")
	if err != nil || len(p) != 2 {
		t.Fatalf("parked %+v (%v)", p, err)
	}
	first, second := p[0], p[1]
	if _, err := other.Requeue(999999, "olga"); !errors.Is(err, saf.ErrParkedNotFound) {
		t.Errorf("unknown id: %v, want ErrParkedNotFound", err)
	}
	if _, err := other.Resolve(second.Seq, "olga", ""); !errors.Is(err, saf.ErrParkedInvalid) {
		t.Errorf("resolve without a note: %v, want ErrParkedInvalid", err)
	}
	a, err := other.Requeue(first.Seq, "olga")
	if err != nil {
		t.Fatal(err)
	}
	if a.Requeued == 0 || a.Item.RRN != first.RRN {
		t.Fatalf("requeue: %+v", a)
	}
	waitFor(t, "parked again", 30*time.Second, func() bool { return q.IssuerStats()["bank"].Parked.Load() == 3 })
	mu.Lock()
	if last := sent[len(sent)-1]; last != "0421 "+first.RRN {
		t.Errorf("the requeued reversal went as %q, want a repeat 0421", last)
	}
	mu.Unlock()
	p, _ = other.Parked("bank")
	if len(p) != 2 || p[1].RRN != first.RRN || p[1].Seq != a.Requeued || p[1].Unacked != 1 {
		t.Fatalf("parked %+v, want the requeued reversal parked again under seq %d after 1 answer", p, a.Requeued)
	}
	if _, err := q.Resolve(first.Seq, "piotr", "phoned"); !errors.Is(err, saf.ErrParkedConflict) || !strings.Contains(err.Error(), "requeued by olga") {
		t.Errorf("resolve after a requeue: %v, want a conflict naming olga", err)
	}
	r, err := q.Resolve(second.Seq, "piotr", "issuer confirmed by phone it never booked it")
	if err != nil || r.Requeued != 0 || r.Note == "" {
		t.Fatalf("resolve: %+v %v", r, err)
	}
	if _, err := other.Requeue(second.Seq, "olga"); !errors.Is(err, saf.ErrParkedConflict) || !strings.Contains(err.Error(), "resolved by piotr") {
		t.Errorf("requeue after a resolve: %v, want a conflict naming piotr", err)
	}
	fixed.Store(true)
	if _, err := other.Requeue(a.Requeued, "olga"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "acknowledged", 30*time.Second, func() bool { return q.IssuerStats()["bank"].Acked.Load() == 1 && q.Len("bank") == 0 })
	if p, _ := q.Parked(""); len(p) != 0 {
		t.Errorf("parked %+v, want none", p)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range sent[2:] {
		if strings.HasSuffix(s, second.RRN) {
			t.Errorf("the resolved advice was sent again: %q", sent)
		}
	}
}

// TestParkedActionsRaceAcrossQueues: two queues on the node (as two nodes' would)
// act on the same parked advice at once, one requeueing, one resolving: exactly one
// wins, the other gets saf.ErrParkedConflict.
func TestParkedActionsRaceAcrossQueues(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	q := openRetry(t, ctx, n, Options{Replicas: 1, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Poll: 100 * time.Millisecond,
		ParkAfter: 1, Logger: testLogger(t)})
	q.Register("bank", func(context.Context, *saf.Item, bool) error {
		return fmt.Errorf("answered without DE 39: %w", saf.ErrNotAcknowledged)
	})
	const advices = 5
	for i := range advices {
		if err := q.Enqueue(advice("bank", fmt.Sprintf("%012d", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all parked", 30*time.Second, func() bool { return q.IssuerStats()["bank"].Parked.Load() == advices })
	other := openRetry(t, ctx, n, Options{Replicas: 1, Logger: testLogger(t)})
	p, err := q.Parked("bank")
	if err != nil || len(p) != advices {
		t.Fatalf("parked %+v (%v)", p, err)
	}
	for _, it := range p {
		start := make(chan struct{})
		errs := make([]error, 2)
		var wg sync.WaitGroup
		wg.Go(func() { <-start; _, errs[0] = q.Requeue(it.Seq, "olga") })
		wg.Go(func() { <-start; _, errs[1] = other.Resolve(it.Seq, "piotr", "phoned") })
		close(start)
		wg.Wait()
		ok, conflict := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, saf.ErrParkedConflict):
				conflict++
			default:
				t.Errorf("advice %d: %v", it.Seq, err)
			}
		}
		if ok != 1 || conflict != 1 {
			t.Errorf("advice %d: %d won, %d conflicts (%v), want one each", it.Seq, ok, conflict, errs)
		}
	}
}

// TestParkedActionsListed: the records of the operators' actions on parked advices
// are listed from any node by ascending id, as the filter selects them (resolved,
// requeued, both; an issuer), with who, when and the note, and, for a requeue,
// where its repeat went; paged by After and Limit; a bad filter is
// saf.ErrParkedInvalid. Past Options.ActionRetention after its last record an
// advice's records are not listed, and pruneActions purges them (the advice, gone
// from the parked, is then not found); the parked advices are not touched.
func TestParkedActionsListed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	q := openRetry(t, ctx, n, Options{Replicas: 1, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Poll: 100 * time.Millisecond,
		ParkAfter: 1, ActionRetention: 30 * 24 * time.Hour, Logger: testLogger(t)})
	q.Register("bank", func(_ context.Context, _ *saf.Item, repeat bool) error {
		if repeat {
			return nil
		}
		return fmt.Errorf("answered without DE 39: %w", saf.ErrNotAcknowledged)
	})
	rrns := []string{"000000000001", "000000000002", "000000000003"}
	for _, rrn := range rrns {
		if err := q.Enqueue(advice("bank", rrn)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all parked", 30*time.Second, func() bool { return q.IssuerStats()["bank"].Parked.Load() == 3 })
	other := openRetry(t, ctx, n, Options{Replicas: 1, ActionRetention: 30 * 24 * time.Hour, Logger: testLogger(t)})
	p, err := other.Parked("bank")
	if err != nil || len(p) != 3 {
		t.Fatalf("parked %+v (%v)", p, err)
	}
	if as, err := other.Actions(saf.ActionFilter{}); err != nil || len(as) != 0 {
		t.Fatalf("actions before any: %+v (%v), want none", as, err)
	}
	if _, err := other.Resolve(p[2].Seq, "olga", "issuer booked it, ticket 42"); err != nil {
		t.Fatal(err)
	}
	req, err := other.Requeue(p[0].Seq, "piotr")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the repeat acknowledged", 30*time.Second, func() bool { return q.Len("bank") == 0 })
	as, err := q.Actions(saf.ActionFilter{Action: saf.ActionResolve})
	if err != nil || len(as) != 1 {
		t.Fatalf("resolved: %+v (%v), want one", as, err)
	}
	if a := as[0]; a.ID != p[2].Seq || a.By != "olga" || a.Note != "issuer booked it, ticket 42" || a.At.IsZero() || a.Item.RRN != p[2].RRN {
		t.Errorf("resolved: %+v", a)
	}
	as, err = q.Actions(saf.ActionFilter{Action: saf.ActionRequeue, Issuer: "bank"})
	if err != nil || len(as) != 1 || as[0].ID != p[0].Seq || as[0].By != "piotr" || as[0].Requeued != req.Requeued || req.Requeued == 0 {
		t.Errorf("requeued: %+v (%v), want piotr's, requeued as %d", as, err, req.Requeued)
	}
	if as, err := q.Actions(saf.ActionFilter{Issuer: "other"}); err != nil || len(as) != 0 {
		t.Errorf("another issuer's: %+v (%v), want none", as, err)
	}
	lo, hi := min(p[0].Seq, p[2].Seq), max(p[0].Seq, p[2].Seq) // parked in the order of their answers
	p1, err := q.Actions(saf.ActionFilter{Limit: 1})
	if err != nil || len(p1) != 1 || p1[0].ID != lo {
		t.Fatalf("first page: %+v (%v)", p1, err)
	}
	p2, err := q.Actions(saf.ActionFilter{After: p1[0].ID, Limit: 1})
	if err != nil || len(p2) != 1 || p2[0].ID != hi {
		t.Fatalf("second page: %+v (%v)", p2, err)
	}
	if p3, err := q.Actions(saf.ActionFilter{After: p2[0].ID}); err != nil || len(p3) != 0 {
		t.Errorf("third page: %+v (%v), want none", p3, err)
	}
	for _, f := range []saf.ActionFilter{{Action: "delete"}, {Limit: saf.MaxActionLimit + 1}} {
		if _, err := q.Actions(f); !errors.Is(err, saf.ErrParkedInvalid) {
			t.Errorf("actions %+v: %v, want saf.ErrParkedInvalid", f, err)
		}
	}
	// Past the retention (a node whose clock is 31 days ahead): not listed, and
	// purged by that node's queue once open.
	if n, err := q.pruneActions(ctx); err != nil || n != 0 {
		t.Errorf("prune within the retention: %d purged (%v), want none", n, err)
	}
	later := openRetry(t, ctx, n, Options{Replicas: 1, ActionRetention: 30 * 24 * time.Hour, Logger: testLogger(t),
		Now: func() time.Time { return time.Now().Add(31 * 24 * time.Hour) }})
	if as, err := later.Actions(saf.ActionFilter{}); err != nil || len(as) != 0 {
		t.Errorf("actions past their retention: %+v (%v), want none", as, err)
	}
	waitFor(t, "the records purged", 10*time.Second, func() bool {
		_, _, err0 := q.lastOp(ctx, p[0].Seq)
		_, _, err2 := q.lastOp(ctx, p[2].Seq)
		return errors.Is(err0, jetstream.ErrMsgNotFound) && errors.Is(err2, jetstream.ErrMsgNotFound)
	})
	if as, err := q.Actions(saf.ActionFilter{}); err != nil || len(as) != 0 {
		t.Errorf("actions once purged: %+v (%v), want none", as, err)
	}
	if _, err := q.Resolve(p[2].Seq, "vera", "again"); !errors.Is(err, saf.ErrParkedNotFound) {
		t.Errorf("resolve once its record is purged: %v, want saf.ErrParkedNotFound", err)
	}
	if left, err := q.Parked("bank"); err != nil || len(left) != 1 || left[0].Seq != p[1].Seq {
		t.Errorf("parked %+v (%v), want the one not acted on, %d", left, err, p[1].Seq)
	}
}
