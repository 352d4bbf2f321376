package server

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/risk/profile"
	"github.com/switchyard/switchyard/switch/sched"
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

// stepClock is the refresher's and the scheduler's injected clock.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *stepClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

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
	dir := t.TempDir()
	path := filepath.Join(dir, "profiles.json")
	clock := &stepClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, sh)}
	src := scanRecorder{ends: make(chan time.Time, 4)}
	newRefresher := func() *profileRefresher {
		opts := profile.Options{Location: sh}
		inc := profile.NewIncremental(opts)
		inc.FullEvery = 1 // one scan per refresh: this test is about when, not how
		return &profileRefresher{set: profile.NewSet(nil), src: src, opts: opts, hour: 3, minute: 0,
			path: path, log: zerolog.Nop(), now: clock.now, inc: inc}
	}
	r := newRefresher()
	if err := r.load(); err != nil || r.set.Table() != nil {
		t.Fatalf("load without a file: %v, table %v", err, r.set.Table())
	}
	ctx := context.Background()
	if err := r.startUp(ctx); err != nil {
		t.Fatal(err)
	}
	if end := recv(t, src.ends, "refresh at start"); !end.Equal(time.Date(2026, 12, 1, 3, 0, 0, 0, sh)) {
		t.Errorf("start refresh window ends %v, want 03:00 today", end)
	}
	if tab := r.set.Table(); tab == nil || !tab.ComputedAt.Equal(clock.now().UTC()) || tab.Merchants["m"].Days != 1 {
		t.Fatalf("table after the start refresh: %+v", tab)
	}
	// The daily refresh is the scheduler's task, at 03:00 in the acquirer's zone.
	db, err := OpenDB(filepath.Join(dir, "db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ts, err := sched.New(db, sched.Options{Location: sh, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	ts.Register(TaskProfilesRefresh, r.scheduled)
	ts.Default(sched.Task{Name: "profiles-refresh", Kind: TaskProfilesRefresh, Schedule: r.schedule()})
	ts.Tick(ctx)
	if v := ts.List(); len(v) != 1 || !v[0].Next.Equal(time.Date(2026, 12, 2, 3, 0, 0, 0, sh)) {
		t.Fatalf("next refresh: %+v, want 03:00 tomorrow", v)
	}
	clock.set(time.Date(2026, 12, 2, 3, 0, 20, 0, sh))
	ts.Tick(ctx)
	if end := recv(t, src.ends, "daily refresh"); !end.Equal(time.Date(2026, 12, 2, 3, 0, 0, 0, sh)) {
		t.Errorf("daily refresh window ends %v, want 03:00 on Dec 2 (the slot, not the run)", end)
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
	if err := r2.startUp(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case end := <-src.ends:
		t.Errorf("a restart with a current copy recomputed (window end %v)", end)
	default:
	}

	// Refresh now (the admin route): the window ends now.
	sum, err := r2.refreshNow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if end := recv(t, src.ends, "refresh now"); !end.Equal(clock.now()) || sum.Merchants != 1 {
		t.Errorf("refresh now: window ends %v, summary %+v", end, sum)
	}
}
