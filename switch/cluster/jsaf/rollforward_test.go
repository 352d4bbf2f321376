package jsaf

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/saf"
)

// TestRequeueRolledForwardPastWindowSentOnce: a requeue whose node died after it
// published the repeat and before it noted it (the record and the repeat in the
// streams, the parked copy still there), its repeat delivered and acknowledged by
// the issuer since (gone from the work queue), is rolled forward past the SAF
// stream's duplicate window (shortened to 200 ms, and seen to have expired): the
// repeat is not published again, the issuer gets it once, and the record says
// where it went. Until the sixth release of 6 December 2026 the roll-forward found
// the repeat neither queued nor parked again and published it a second time,
// which the stream no longer dropped: the issuer got the advice twice.
func TestRequeueRolledForwardPastWindowSentOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	q := openShortWindow(t, ctx, n)
	var mu sync.Mutex
	repeats := 0
	q.Register("bank", func(_ context.Context, it *saf.Item, repeat bool) error {
		if !repeat {
			return fmt.Errorf("answered without DE 39: %w", saf.ErrNotAcknowledged)
		}
		mu.Lock()
		defer mu.Unlock()
		repeats++
		return nil
	})
	if err := q.Enqueue(advice("bank", "000000000001")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "parked", 30*time.Second, func() bool { return q.IssuerStats()["bank"].Parked.Load() == 1 })
	// other is another node's queue (no worker), its clock three minutes ahead:
	// the record it reads is older than staleAfter and than any window.
	other := openRetry(t, ctx, n, Options{Replicas: 1, Duplicates: shortWindow, Logger: testLogger(t),
		Now: func() time.Time { return time.Now().Add(3 * time.Minute) }})
	p, err := other.Parked("bank")
	if err != nil || len(p) != 1 {
		t.Fatalf("parked %+v (%v)", p, err)
	}
	id := p[0].Seq
	// The crashed requeue: its record and its repeat, nothing else.
	_, it, err := other.findParked(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	a := saf.ParkedAction{ID: id, Action: saf.ActionRequeue, By: "olga", Item: it, At: time.Now().UTC()}
	if _, err := other.claim(ctx, &a); err != nil {
		t.Fatal(err)
	}
	rseq, err := other.publishRepeat(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the repeat acknowledged", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return repeats == 1 && q.Len("bank") == 0
	})
	// The window has passed once a message id published after the repeat's is
	// no longer a duplicate (the stream forgets ids in the order it stored them).
	probe := func() bool {
		ack, err := n.Publish(ctx, "saf.probe", []byte("probe"), "probe")
		if err != nil {
			t.Fatal(err)
		}
		return !ack.Duplicate
	}
	probe()
	waitFor(t, "the duplicate window passed", 10*time.Second, probe)

	_, err = other.Requeue(id, "piotr")
	completed := fmt.Sprintf("completed now (requeued as %d)", rseq)
	if !errors.Is(err, saf.ErrParkedConflict) || !strings.Contains(err.Error(), "requeued by olga") || !strings.Contains(err.Error(), completed) {
		t.Errorf("requeue after the unfinished requeue: %v, want a conflict naming olga, %q", err, completed)
	}
	if p, err := other.Parked("bank"); err != nil || len(p) != 0 {
		t.Errorf("parked %+v (%v), want none", p, err)
	}
	prev, _, ok := other.parkedOp(ctx, id)
	if !ok || prev.Requeued != rseq {
		t.Errorf("the record %+v (found %v), want requeued as %d", prev, ok, rseq)
	}
	// A second copy would be queued now (the roll-forward returns once it is
	// stored), or delivered already, counted before its removal.
	if n := q.Len("bank"); n != 0 {
		t.Errorf("%d advices queued for bank after the roll-forward, want none", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if repeats != 1 {
		t.Errorf("the repeat was sent %d times, want once", repeats)
	}
}

// TestRequeueRollForwardRace: two nodes roll forward the same unfinished requeues
// (the record only: the repeat never went) at once, past the duplicate window:
// JetStream grants the roll-forward to one (its record after the first), which
// publishes the repeat; the other is refused (saf.ErrParkedConflict) or finds the
// action completed. Each advice reaches the issuer once. (The stream's duplicate
// window, 200 ms here, would drop a second publish this close to the first as
// well; the test holds the roll-forward to once whatever the window.)
func TestRequeueRollForwardRace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	q := openShortWindow(t, ctx, n)
	var mu sync.Mutex
	repeats := map[string]int{}
	q.Register("bank", func(_ context.Context, it *saf.Item, repeat bool) error {
		if !repeat {
			return fmt.Errorf("answered without DE 39: %w", saf.ErrNotAcknowledged)
		}
		mu.Lock()
		defer mu.Unlock()
		repeats[it.RRN]++
		return nil
	})
	const advices = 5
	for i := range advices {
		if err := q.Enqueue(advice("bank", fmt.Sprintf("%012d", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all parked", 30*time.Second, func() bool { return q.IssuerStats()["bank"].Parked.Load() == advices })
	ahead := func() time.Time { return time.Now().Add(3 * time.Minute) }
	nodes := []*Queue{
		openRetry(t, ctx, n, Options{Replicas: 1, Duplicates: shortWindow, Logger: testLogger(t), Now: ahead}),
		openRetry(t, ctx, n, Options{Replicas: 1, Duplicates: shortWindow, Logger: testLogger(t), Now: ahead}),
	}
	p, err := nodes[0].Parked("bank")
	if err != nil || len(p) != advices {
		t.Fatalf("parked %+v (%v)", p, err)
	}
	for _, it := range p {
		a := saf.ParkedAction{ID: it.Seq, Action: saf.ActionRequeue, By: "olga", Item: it, At: time.Now().UTC()}
		if _, err := nodes[0].claim(ctx, &a); err != nil {
			t.Fatal(err)
		}
	}
	errs := make([]error, 2*advices)
	var wg sync.WaitGroup
	for i, it := range p {
		for j, node := range nodes {
			wg.Go(func() { _, errs[2*i+j] = node.Requeue(it.Seq, fmt.Sprintf("node%d", j)) })
		}
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, saf.ErrParkedConflict) || !strings.Contains(err.Error(), "requeued by olga") {
			t.Errorf("roll-forward %d: %v, want a conflict naming olga", i, err)
		}
	}
	for i := range advices { // one of each pair completed it (the other was refused, came after, or deleted the copy too)
		if strings.Count(fmt.Sprint(errs[2*i], errs[2*i+1]), "completed now (requeued as") == 0 {
			t.Errorf("advice %d: no roll-forward completed it: %v; %v", p[i].Seq, errs[2*i], errs[2*i+1])
		}
	}
	waitFor(t, "the repeats acknowledged", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(repeats) == advices && q.Len("bank") == 0
	})
	if p, err := nodes[1].Parked("bank"); err != nil || len(p) != 0 {
		t.Errorf("parked %+v (%v), want none", p, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for rrn, n := range repeats {
		if n != 1 {
			t.Errorf("the repeat of %s was sent %d times, want once", rrn, n)
		}
	}
}

// shortWindow is the SAF stream's duplicate window in the roll-forward tests, so
// that a roll-forward can come after it within a test's time.
const shortWindow = 200 * time.Millisecond

// openShortWindow opens the queue of the roll-forward tests on n: fast retries, an
// advice parked after one answer without DE 39, the stream's duplicate window
// shortWindow.
func openShortWindow(t *testing.T, ctx context.Context, n *cluster.Node) *Queue {
	t.Helper()
	return openRetry(t, ctx, n, Options{Replicas: 1, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Poll: 100 * time.Millisecond,
		ParkAfter: 1, Duplicates: shortWindow, Logger: testLogger(t)})
}
