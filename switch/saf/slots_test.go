package saf

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/syncbuf"
)

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestSlowAdviceHoldsOnlyItsSlot: an issuer leaves one advice unanswered (it would
// time out much later); the advices queued behind it go out and are acknowledged
// through the other slots meanwhile, instead of each batch waiting for its slowest.
func TestSlowAdviceHoldsOnlyItsSlot(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	q, err := Open(db, Options{InFlight: 4, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	const fast = 40
	for i := range fast + 1 { // the first is the one the issuer sits on
		if err := q.Enqueue(&Item{Issuer: "iss", MTI: "0420", RRN: fmt.Sprintf("%012d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	defer close(release)
	q.Register("iss", func(ctx context.Context, it *Item, _ bool) error {
		if it.RRN == "000000000000" {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return errors.New("issuer timeout")
		}
		return nil
	})
	st := q.IssuerStats()["iss"]
	waitUntil(t, fmt.Sprintf("%d advices acknowledged behind the slow one", fast), 5*time.Second, func() bool {
		return st.Acked.Load() == fast
	})
	if n := q.Len("iss"); n != 1 {
		t.Fatalf("queued = %d, want only the slow advice", n)
	}
}

// TestHealthyIssuerDrainsBesideSilentOne: a silent issuer (every advice waits out its
// timeout) does not slow down the draining of a healthy issuer's advices.
func TestHealthyIssuerDrainsBesideSilentOne(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	q, err := Open(db, Options{InFlight: 4, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	const n = 200
	for i := range n {
		for _, iss := range []string{"silent", "healthy"} {
			if err := q.Enqueue(&Item{Issuer: iss, MTI: "0420", RRN: fmt.Sprintf("%012d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	q.Register("silent", func(ctx context.Context, _ *Item, _ bool) error {
		<-ctx.Done() // never answers; its timeout is longer than the test
		return ctx.Err()
	})
	q.Register("healthy", func(context.Context, *Item, bool) error { return nil })
	waitUntil(t, "the healthy issuer's advices to drain", 10*time.Second, func() bool { return q.Len("healthy") == 0 })
	stats := q.IssuerStats()
	if got := stats["healthy"].Acked.Load(); got != n {
		t.Fatalf("healthy issuer acknowledged %d, want %d", got, n)
	}
	if got := stats["silent"].Acked.Load(); got != 0 || q.Len("silent") != n {
		t.Fatalf("silent issuer: %d acknowledged, %d queued", got, q.Len("silent"))
	}
}

// TestFailedTryWarningsRateLimited: an issuer that refuses every advice makes every
// try fail; the log gets one warning per issuer per WarnEvery, saying how many failures
// it did not log, and the counts are in Stats.
func TestFailedTryWarningsRateLimited(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	var now atomic.Int64
	now.Store(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	logs := &syncbuf.Buffer{}
	q, err := Open(db, Options{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Poll: 5 * time.Millisecond,
		WarnEvery: time.Minute, Now: func() time.Time { return time.Unix(0, now.Load()) }, Logger: zerolog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for i := range 10 {
		if err := q.Enqueue(&Item{Issuer: "down", MTI: "0420", RRN: fmt.Sprintf("%012d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	q.Register("down", func(context.Context, *Item, bool) error { return errors.New("issuer link down") })
	st := q.IssuerStats()["down"]
	waitUntil(t, "100 failed tries", 10*time.Second, func() bool { return st.Failed.Load() >= 100 })
	if n := strings.Count(logs.String(), "advice not acknowledged"); n != 1 {
		t.Fatalf("%d warnings for %d failed tries within a minute, want 1", n, st.Failed.Load())
	}
	now.Add(int64(time.Minute))
	waitUntil(t, "a second warning once the minute passed", 10*time.Second, func() bool {
		return strings.Count(logs.String(), "advice not acknowledged") >= 2
	})
	before := st.Failed.Load()
	waitUntil(t, "more failed tries", 10*time.Second, func() bool { return st.Failed.Load() > before+20 })
	out := logs.String()
	if n := strings.Count(out, "advice not acknowledged"); n != 2 {
		t.Fatalf("%d warnings after the minute passed, want 2:\n%s", n, out)
	}
	var warns []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "advice not acknowledged") {
			warns = append(warns, line)
		}
	}
	if last := warns[1]; !strings.Contains(last, `"failures_not_logged":`) || strings.Contains(last, `"failures_not_logged":0,`) {
		t.Fatalf("second warning does not count the failures left out:\n%s", out)
	}
	if st.Suppressed.Load() < 90 {
		t.Fatalf("suppressed = %d, want the failures not logged counted", st.Suppressed.Load())
	}
}
