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

// TestParkedActionUnfinishedRolledForward: an operator's action on a parked advice
// whose node died between its steps (its record written in SAF_PARKED, the repeat
// perhaps published, the parked copy not deleted), or whose parked copy's delete
// failed, is finished by the next action, which answers saf.ErrParkedConflict naming
// the first actor and saying the action is completed now; by the listing too. The
// crash is the internal steps called without the rest. Each advice is requeued
// exactly once: a repeat that went is found in the queue (within the SAF stream's
// duplicate window or past it) and not published again; a repeat noted as gone is
// not looked for (TestRequeueRolledForwardPastWindowSentOnce: one delivered and
// acknowledged meanwhile). A resolve is finished by the
// delete. A record younger than staleAfter is an action in progress: refused,
// not finished. (Until the fifth release of 6 December 2026 such an advice stayed
// listed and every action on it was refused, the requeue perhaps never made.)
func TestParkedActionUnfinishedRolledForward(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	q := openRetry(t, ctx, n, Options{Replicas: 1, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Poll: 100 * time.Millisecond,
		ParkAfter: 1, Logger: testLogger(t)})
	const stuck = "000000000003" // its repeat is never answered: it stays queued
	var mu sync.Mutex
	repeats := map[string]int{}
	q.Register("bank", func(_ context.Context, it *saf.Item, repeat bool) error {
		if !repeat {
			return fmt.Errorf("answered without DE 39: %w", saf.ErrNotAcknowledged)
		}
		mu.Lock()
		defer mu.Unlock()
		repeats[it.RRN]++
		if it.RRN == stuck {
			return errors.New("no answer in time")
		}
		return nil
	})
	rrns := []string{"000000000001", "000000000002", stuck, "000000000004", "000000000005", "000000000006"}
	for _, rrn := range rrns {
		if err := q.Enqueue(advice("bank", rrn)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all parked", 30*time.Second, func() bool { return q.IssuerStats()["bank"].Parked.Load() == int64(len(rrns)) })
	// other is another node's queue (no worker), its clock skew ahead: the records
	// it reads are that old.
	var skew atomic.Int64
	other := openRetry(t, ctx, n, Options{Replicas: 1, Logger: testLogger(t),
		Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	p, err := other.Parked("bank")
	if err != nil || len(p) != len(rrns) {
		t.Fatalf("parked %+v (%v)", p, err)
	}
	id := map[string]uint64{}
	for _, it := range p {
		id[it.RRN] = it.Seq
	}
	// record writes an action's record as act does, and nothing else: its node died.
	record := func(rrn, action, by, note string) (saf.ParkedAction, uint64) {
		t.Helper()
		_, it, err := other.findParked(ctx, id[rrn])
		if err != nil {
			t.Fatal(err)
		}
		a := saf.ParkedAction{ID: id[rrn], Action: action, By: by, Note: note, Item: it, At: time.Now().UTC()}
		opSeq, err := other.claim(ctx, &a)
		if err != nil {
			t.Fatal(err)
		}
		return a, opSeq
	}
	completed := func(what string, err error, by string) {
		t.Helper()
		if !errors.Is(err, saf.ErrParkedConflict) || !strings.Contains(err.Error(), by) || !strings.Contains(err.Error(), "completed now") {
			t.Errorf("%s: %v, want a conflict naming %q and saying it is completed now", what, err, by)
		}
	}
	// sentOnce waits until rrn's repeat was sent and the issuer's queue holds left
	// advices (the stuck advice's repeat, once requeued), and checks that it was
	// sent once: a second copy would have been in the queue.
	sentOnce := func(rrn string, left int) {
		t.Helper()
		waitFor(t, "the repeat of "+rrn+" acknowledged", 30*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return repeats[rrn] > 0 && q.Len("bank") == left
		})
		mu.Lock()
		defer mu.Unlock()
		if repeats[rrn] != 1 {
			t.Errorf("the repeat of %s was sent %d times, want once", rrn, repeats[rrn])
		}
	}
	listed := func(rrn string) bool {
		t.Helper()
		p, err := other.Parked("bank")
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p {
			if it.RRN == rrn {
				return true
			}
		}
		return false
	}

	// A record younger than staleAfter: in progress, refused, not finished.
	record(rrns[5], saf.ActionRequeue, "vera", "")
	if _, err := other.Requeue(id[rrns[5]], "olga"); !errors.Is(err, saf.ErrParkedConflict) || !strings.Contains(err.Error(), "vera") ||
		strings.Contains(err.Error(), "completed now") {
		t.Errorf("requeue while another is in progress: %v, want a conflict naming vera, nothing completed", err)
	}
	if !listed(rrns[5]) {
		t.Error("an action in progress was finished by the listing")
	}

	// Within the duplicate window (the records a minute old).
	skew.Store(int64(time.Minute))
	// The record only: the repeat is published now.
	record(rrns[0], saf.ActionRequeue, "olga", "")
	_, err = other.Resolve(id[rrns[0]], "piotr", "phoned")
	completed("resolve after an unfinished requeue", err, "requeued by olga")
	sentOnce(rrns[0], 0)
	// The record and the repeat: found in the queue, not published again.
	a, _ := record(rrns[1], saf.ActionRequeue, "olga", "")
	if _, err := other.publishRepeat(ctx, a); err != nil {
		t.Fatal(err)
	}
	_, err = other.Requeue(id[rrns[1]], "piotr")
	completed("requeue after an unfinished requeue", err, "requeued by olga")
	sentOnce(rrns[1], 0)
	// A resolve recorded: the parked copy deleted, nothing sent.
	record(rrns[4], saf.ActionResolve, "piotr", "phoned")
	_, err = other.Requeue(id[rrns[4]], "olga")
	completed("requeue after an unfinished resolve", err, "resolved by piotr")
	if listed(rrns[4]) {
		t.Error("the resolved advice is still listed")
	}
	// The listing finishes what is old enough: vera's requeue.
	if listed(rrns[5]) {
		t.Error("the listing did not finish vera's requeue")
	}
	sentOnce(rrns[5], 0)

	// Past the duplicate window (the records three minutes old).
	skew.Store(int64(3 * time.Minute))
	// The record and the repeat, still queued: found, not published again.
	a, _ = record(stuck, saf.ActionRequeue, "olga", "")
	rseq, err := other.publishRepeat(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.Requeue(id[stuck], "piotr")
	completed("requeue after an unfinished requeue, past the window", err, fmt.Sprintf("completed now (requeued as %d)", rseq))
	pend, err := other.Pending("bank")
	if err != nil || len(pend) != 1 || pend[0].RRN != stuck || pend[0].Seq != rseq {
		t.Errorf("pending %+v (%v), want the stuck advice's repeat once, at %d", pend, err, rseq)
	}
	// Every step but the delete (it failed): the repeat noted, not looked for.
	a, opSeq := record(rrns[3], saf.ActionRequeue, "olga", "")
	if a.Requeued, err = other.publishRepeat(ctx, a); err != nil {
		t.Fatal(err)
	}
	other.noteRequeued(ctx, a, opSeq)
	sentOnce(rrns[3], 1)
	_, err = other.Resolve(id[rrns[3]], "piotr", "phoned")
	completed("resolve after a requeue whose delete failed", err, "requeued by olga")
	if listed(rrns[3]) {
		t.Error("the requeued advice is still listed")
	}
	if pend, _ := other.Pending("bank"); len(pend) != 1 {
		t.Errorf("pending %+v, want only the stuck advice's repeat", pend)
	}
	if p, _ := other.Parked("bank"); len(p) != 0 {
		t.Errorf("parked %+v, want none", p)
	}
	// A third action on a finished one: the plain conflict.
	if _, err := other.Requeue(id[rrns[0]], "vera"); !errors.Is(err, saf.ErrParkedConflict) || strings.Contains(err.Error(), "completed now") {
		t.Errorf("requeue of a finished action: %v, want the plain conflict", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if repeats[rrns[4]] != 0 {
		t.Errorf("the resolved advice was sent again %d times", repeats[rrns[4]])
	}
}
