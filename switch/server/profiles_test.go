package server

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/risk/profile"
)

// scanRecorder is a profile.Source that reports the end of every window read.
type scanRecorder struct{ ends chan time.Time }

func (s scanRecorder) Scan(_ context.Context, _, to time.Time, fn func(*profile.Txn) error) error {
	t := profile.Txn{Time: to.Add(-time.Hour), Merchant: "m", Type: "purchase", Amount: 100, CardHash: "c", RC: "00", Approved: true}
	if err := fn(&t); err != nil {
		return err
	}
	s.ends <- to
	return nil
}

// stepClock is the refresher's injected clock and timer: each timer request is
// reported on waits and fires when the test sends on fire.
type stepClock struct {
	mu    sync.Mutex
	t     time.Time
	waits chan time.Duration
	fire  chan time.Time
}

func (c *stepClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *stepClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *stepClock) after(d time.Duration) <-chan time.Time {
	c.waits <- d
	return c.fire
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10 s", what)
		panic("unreachable")
	}
}

// TestProfileRefresherSchedule: a switch without a persisted copy computes the
// profiles at start over the window ending at the last scheduled time (03:00 in
// the acquirer's zone), then every day at 03:00, and persists them; a restart
// after that loads the copy and computes nothing until the next 03:00.
func TestProfileRefresherSchedule(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "profiles.json")
	clock := &stepClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, sh), waits: make(chan time.Duration), fire: make(chan time.Time)}
	src := scanRecorder{ends: make(chan time.Time, 4)}
	newRefresher := func() *profileRefresher {
		opts := profile.Options{Location: sh}
		inc := profile.NewIncremental(opts)
		inc.FullEvery = 1 // one scan per refresh: this test is about when, not how
		return &profileRefresher{set: profile.NewSet(nil), src: src, opts: opts, hour: 3, minute: 0,
			path: path, log: zerolog.Nop(), now: clock.now, after: clock.after, inc: inc}
	}
	r := newRefresher()
	if err := r.load(); err != nil || r.set.Table() != nil {
		t.Fatalf("load without a file: %v, table %v", err, r.set.Table())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.run(ctx) }()
	if end := recv(t, src.ends, "refresh at start"); !end.Equal(time.Date(2026, 12, 1, 3, 0, 0, 0, sh)) {
		t.Errorf("start refresh window ends %v, want 03:00 today", end)
	}
	if d := recv(t, clock.waits, "timer"); d != 17*time.Hour {
		t.Errorf("waits %v for the next refresh, want 17h (to 03:00 tomorrow)", d)
	}
	if tab := r.set.Table(); tab == nil || !tab.ComputedAt.Equal(clock.now().UTC()) || tab.Merchants["m"].Days != 1 {
		t.Fatalf("table after the start refresh: %+v", tab)
	}
	clock.set(time.Date(2026, 12, 2, 3, 0, 0, 0, sh))
	clock.fire <- clock.now()
	if end := recv(t, src.ends, "daily refresh"); !end.Equal(time.Date(2026, 12, 2, 3, 0, 0, 0, sh)) {
		t.Errorf("daily refresh window ends %v, want 03:00 on Dec 2", end)
	}
	if d := recv(t, clock.waits, "timer"); d != 24*time.Hour {
		t.Errorf("waits %v after the daily refresh, want 24h", d)
	}
	cancel()
	if err := recv(t, done, "run's return"); err != nil {
		t.Errorf("run: %v", err)
	}

	// Restart an hour later: the copy is loaded and current, nothing is computed.
	clock.set(time.Date(2026, 12, 2, 4, 0, 0, 0, sh))
	r2 := newRefresher()
	if err := r2.load(); err != nil {
		t.Fatal(err)
	}
	if tab := r2.set.Table(); tab == nil || !tab.To.Equal(time.Date(2026, 12, 2, 3, 0, 0, 0, sh)) || tab.Merchants["m"].Transactions != 1 {
		t.Fatalf("loaded table: %+v", tab)
	}
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- r2.run(ctx) }()
	if d := recv(t, clock.waits, "timer after restart"); d != 23*time.Hour {
		t.Errorf("waits %v after the restart, want 23h", d)
	}
	select {
	case end := <-src.ends:
		t.Errorf("a restart with a current copy recomputed (window end %v)", end)
	default:
	}
	cancel()
	recv(t, done, "run's return")

	// Refresh now (the admin route): the window ends now.
	sum, err := r2.refreshNow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if end := recv(t, src.ends, "refresh now"); !end.Equal(clock.now()) || sum.(RefreshSummary).Merchants != 1 {
		t.Errorf("refresh now: window ends %v, summary %+v", end, sum)
	}
}
