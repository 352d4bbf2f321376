package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

// pausedLease is a lease (no bucket: its refreshes are played by the test) whose
// process was paused for pause: its last acknowledged refresh began pause plus
// 100 ms ago, and a refresh attempt that ended failed after it ended failedAfter
// after that success, before the pause. lastTry is how long ago the last
// attempt ended: before the pause (pause), or just now (a refresh loop that runs
// and keeps failing, the bucket without a quorum seen live).
func pausedLease(pause, failedAfter, lastTry time.Duration) *Lease {
	l := &Lease{opts: LeaseOptions{Refresh: 250 * time.Millisecond, TTL: time.Second}, epoch: time.Now().Add(-time.Hour),
		tried: make(chan struct{}), lostC: make(chan struct{})}
	now := time.Since(l.epoch)
	ok := now - pause - 100*time.Millisecond
	l.okAt.Store(int64(ok))
	l.failedSince.Store(int64(ok+failedAfter) + 1)
	l.triedAt.Store(int64(now-lastTry) + 1)
	return l
}

// TestConfirmAfterPauseWithFailureBefore: a refresh that failed just before a
// pause of the process (a VM migration stalls the process before it stops it)
// does not let Confirm pass the woken node at once: it waits for a refresh after
// the wake, which finds the claim of the survivor that recovered this
// incarnation meanwhile (ErrLeaseLost). Before, the failure before the pause
// read as "the refreshes were failing before the lease went stale" (or "for a
// TTL", the pause counted in), Confirm said nil, and the woken node finished its
// transactions over the survivor's recovery. A refresh loop that keeps failing
// while the process runs (the bucket without a quorum) still lets Confirm pass
// at once, as before.
func TestConfirmAfterPauseWithFailureBefore(t *testing.T) {
	for _, c := range []struct {
		name        string
		failedAfter time.Duration // after the last success: 300 ms is before the lease went stale (750 ms)
	}{{"failing before stale", 300 * time.Millisecond}, {"failing after stale, for a TTL with the pause", 800 * time.Millisecond}} {
		t.Run(c.name, func(t *testing.T) {
			l := pausedLease(5*time.Second, c.failedAfter, 5*time.Second)
			got := make(chan error, 1)
			go func() { got <- l.Confirm(context.Background()) }()
			select {
			case err := <-got:
				t.Fatalf("Confirm right after the wake, before any refresh: %v; want it to wait for one", err)
			case <-time.After(200 * time.Millisecond):
			}
			// The wake's refresh reads the survivor's claim.
			l.markLost(lostf("node 3 claimed the recovery"))
			l.noteTried()
			select {
			case err := <-got:
				if !errors.Is(err, ErrLeaseLost) {
					t.Fatalf("Confirm after the wake's refresh found the claim: %v, want ErrLeaseLost", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Confirm did not end after the refresh")
			}
		})
	}

	t.Run("failing live", func(t *testing.T) {
		l := pausedLease(5*time.Second, 300*time.Millisecond, 50*time.Millisecond)
		got := make(chan error, 1)
		go func() { got <- l.Confirm(context.Background()) }()
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("Confirm while the refreshes fail live: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Confirm waited while the refreshes fail live (the bucket without a quorum): requests slowed down")
		}
	})

	// A refresh after the wake that fails starts a new run of failures: the
	// one before the pause does not make it a TTL old.
	t.Run("failing after the wake", func(t *testing.T) {
		l := pausedLease(5*time.Second, 800*time.Millisecond, 5*time.Second)
		l.noteFailed()
		l.noteTried()
		got := make(chan error, 1)
		go func() { got <- l.Confirm(context.Background()) }()
		select {
		case err := <-got:
			t.Fatalf("Confirm after one failed refresh since the wake: %v; want it to wait", err)
		case <-time.After(200 * time.Millisecond):
		}
		l.markLost(lostf("node 3 claimed the recovery"))
		l.noteTried()
		if err := <-got; !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("Confirm: %v, want ErrLeaseLost", err)
		}
	})
}

// TestConfirmContextEnded: a Confirm that waits for a refresh (the lease stale
// after a pause) and whose context ends returns an error wrapping the context's,
// never nil: a caller with a cancellable context must not pass the fence without
// the refresh having said the lease is held. Its context ended before the call,
// Confirm of a stale lease fails at once; of a fresh lease it still passes.
func TestConfirmContextEnded(t *testing.T) {
	l := pausedLease(5*time.Second, 300*time.Millisecond, 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() { got <- l.Confirm(ctx) }()
	select {
	case err := <-got:
		t.Fatalf("Confirm of a stale lease before any refresh: %v; want it to wait", err)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Confirm whose context ended: %v, want an error wrapping context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Confirm did not end with its context")
	}
	if err := l.Confirm(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Confirm of a stale lease with an ended context: %v, want context.Canceled", err)
	}
	l.okAt.Store(int64(time.Since(l.epoch)))
	if err := l.Confirm(ctx); err != nil {
		t.Fatalf("Confirm of a fresh lease with an ended context: %v, want nil (nothing to wait for)", err)
	}
}
