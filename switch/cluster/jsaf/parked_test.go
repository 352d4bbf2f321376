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
