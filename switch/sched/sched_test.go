package sched

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/switch/registry"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func openDB(t *testing.T) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil).WithMemTableSize(8 << 20).WithValueLogFileSize(16 << 20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// recorder is a task kind that records the clock at each run.
type recorder struct {
	mu   sync.Mutex
	at   []time.Time
	c    *clock
	fail error
}

func (r *recorder) fn(ctx context.Context, p map[string]string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at = append(r.at, r.c.Now())
	return "done " + p["x"], r.fail
}

func (r *recorder) runs() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.at...)
}

func newSched(t *testing.T, db *badger.DB, c *clock, opts Options) *Scheduler {
	t.Helper()
	opts.Now = c.Now
	s, err := New(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunsAtLocalTimesAcrossDayBoundary(t *testing.T) {
	db := openDB(t)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	c := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, sh)}
	s := newSched(t, db, c, Options{Location: time.UTC})
	late, early := &recorder{c: c}, &recorder{c: c}
	s.Register("late", late.fn)
	s.Register("early", early.fn)
	// 23:50 and 00:10 Shanghai time: either side of the local midnight, which is
	// 16:00 UTC the day before.
	if err := s.Define(Task{Name: "cutoff", Kind: "late", Schedule: "50 23 * * *", TimeZone: "Asia/Shanghai"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Define(Task{Name: "settle", Kind: "early", Schedule: "10 0 * * *", TimeZone: "Asia/Shanghai"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for now := c.Now(); now.Before(time.Date(2026, 5, 3, 12, 0, 0, 0, sh)); now = now.Add(5 * time.Minute) {
		c.Set(now)
		s.Tick(ctx)
	}
	want := func(name string, got []time.Time, hm string, days ...int) {
		t.Helper()
		if len(got) != len(days) {
			t.Fatalf("%s ran %d times (%v), want %d", name, len(got), got, len(days))
		}
		for i, d := range days {
			l := got[i].In(sh)
			if l.Day() != d || l.Format("15:04") != hm {
				t.Errorf("%s run %d at %s Shanghai, want May %d %s", name, i, l.Format(time.DateTime), d, hm)
			}
		}
	}
	want("cutoff", late.runs(), "23:50", 1, 2)
	want("settle", early.runs(), "00:10", 2, 3)
	hist, _ := s.History("settle", 10)
	if len(hist) != 2 || hist[0].Outcome != OutcomeOK || hist[0].Output != "done " || !hist[0].Slot.Equal(time.Date(2026, 5, 3, 0, 10, 0, 0, sh)) {
		t.Fatalf("history: %+v", hist)
	}
}

func TestMissedRunsAfterRestartHandledOnce(t *testing.T) {
	db := openDB(t)
	c := &clock{t: time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC)}
	s := newSched(t, db, c, Options{})
	r := &recorder{c: c}
	s.Register("hourly", r.fn)
	s.Define(Task{Name: "h", Kind: "hourly", Schedule: "0 * * * *"})
	ctx := context.Background()
	s.Tick(ctx) // first seen: starts with the next slot
	c.Set(time.Date(2026, 5, 1, 10, 0, 30, 0, time.UTC))
	s.Tick(ctx)
	if n := len(r.runs()); n != 1 {
		t.Fatalf("at 10:00:30: %d runs, want 1", n)
	}
	// Stopped from 10:01 to 15:20: slots 11..15 were missed. A new scheduler on the
	// same database (a restart) runs once, for 15:00.
	c.Set(time.Date(2026, 5, 1, 15, 20, 0, 0, time.UTC))
	s2 := newSched(t, db, c, Options{})
	s2.Register("hourly", r.fn)
	s2.Define(Task{Name: "h", Kind: "hourly", Schedule: "0 * * * *"})
	s2.Tick(ctx)
	s2.Tick(ctx)
	if n := len(r.runs()); n != 2 {
		t.Fatalf("after the restart: %d runs, want 2 (one for the missed slots)", n)
	}
	h, _ := s2.History("h", 1)
	if h[0].Missed != 4 || !h[0].Slot.Equal(time.Date(2026, 5, 1, 15, 0, 0, 0, time.UTC)) {
		t.Fatalf("catch-up run: %+v, want slot 15:00 standing for 4 more", h[0])
	}
}

func TestRestartDuringARunDoesNotRunTheSlotAgain(t *testing.T) {
	db := openDB(t)
	c := &clock{t: time.Date(2026, 5, 1, 9, 59, 0, 0, time.UTC)}
	started, release := make(chan struct{}), make(chan struct{})
	var runs int
	var mu sync.Mutex
	blocking := func(ctx context.Context, _ map[string]string) (string, error) {
		mu.Lock()
		runs++
		mu.Unlock()
		close(started)
		<-release
		return "", nil
	}
	s := newSched(t, db, c, Options{})
	s.Register("k", blocking)
	s.Define(Task{Name: "h", Kind: "k", Schedule: "0 * * * *"})
	ctx := context.Background()
	s.Tick(ctx)
	c.Set(time.Date(2026, 5, 1, 10, 0, 1, 0, time.UTC))
	done := make(chan struct{})
	go func() { s.Tick(ctx); close(done) }()
	<-started
	// "Restart" while the run is in progress: the new scheduler finds the run
	// interrupted (and alerts) and does not run the claimed slot again.
	var alerts []Run
	s2 := newSched(t, db, c, Options{OnFailure: func(r Run) { alerts = append(alerts, r) }})
	s2.Register("k", func(context.Context, map[string]string) (string, error) {
		mu.Lock()
		runs++
		mu.Unlock()
		return "", nil
	})
	s2.Define(Task{Name: "h", Kind: "k", Schedule: "0 * * * *"})
	s2.Tick(ctx)
	close(release)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if runs != 1 {
		t.Fatalf("slot 10:00 ran %d times, want 1", runs)
	}
	if len(alerts) != 1 || alerts[0].Outcome != OutcomeInterrupted {
		t.Fatalf("alerts after the restart: %+v, want one interrupted run", alerts)
	}
}

func TestFailingTaskRaisesAlert(t *testing.T) {
	db := openDB(t)
	c := &clock{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
	var (
		mu     sync.Mutex
		alerts []Run
	)
	reg := prometheus.NewRegistry()
	// Tick runs the two tasks at once: their failures are reported concurrently.
	s := newSched(t, db, c, Options{OnFailure: func(r Run) { mu.Lock(); alerts = append(alerts, r); mu.Unlock() }, Metrics: reg})
	r := &recorder{c: c, fail: errors.New("issuer ZMK missing")}
	s.Register("k", r.fn)
	s.Register("p", func(context.Context, map[string]string) (string, error) { panic("boom") })
	s.Define(Task{Name: "rot", Kind: "k", Schedule: "@hourly"})
	s.Define(Task{Name: "pan", Kind: "p", Schedule: "@hourly"})
	ctx := context.Background()
	s.Tick(ctx)
	c.Set(c.Now().Add(time.Hour))
	s.Tick(ctx)
	mu.Lock()
	n := len(alerts)
	mu.Unlock()
	if n != 2 {
		t.Fatalf("alerts: %+v, want 2 (an error and a panic)", alerts)
	}
	for _, v := range s.List() {
		if !v.Failing || v.LastRun == nil || v.LastRun.Outcome != OutcomeFailed {
			t.Errorf("%s: failing %v, last run %+v", v.Name, v.Failing, v.LastRun)
		}
	}
	if g := testutil.ToFloat64(s.failGge.WithLabelValues("rot")); g != 1 {
		t.Errorf("switchyard_task_failing{task=rot} = %v", g)
	}
	// A successful run-now clears it.
	r.fail = nil
	run, err := s.RunNow(ctx, "rot", "alice")
	if err != nil || run.Outcome != OutcomeOK || run.By != "alice" {
		t.Fatalf("run-now: %+v %v", run, err)
	}
	if v := s.List(); v[1].Name != "rot" || v[1].Failing {
		t.Fatalf("after a good run: %+v", v[1])
	}
	if _, err := s.RunNow(ctx, "nope", "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("run-now of an unknown task: %v", err)
	}
}

func TestBadDefinitionsRefused(t *testing.T) {
	s := newSched(t, openDB(t), &clock{t: time.Now()}, Options{})
	s.Register("k", func(context.Context, map[string]string) (string, error) { return "", nil })
	for _, tc := range []struct {
		t    Task
		want string
	}{
		{Task{Name: "a", Kind: "k", Schedule: "61 * * * *"}, "schedule"},
		// No time matches: it ran about once a second (a trial, 8 December 2026).
		{Task{Name: "a", Kind: "k", Schedule: "0 0 30 2 *"}, "never fires"},
		{Task{Name: "a", Kind: "k", Schedule: "0 0 31 4 *"}, "never fires"},
		{Task{Name: "a", Kind: "k", Schedule: "@daily", TimeZone: "Mars/Olympus"}, "timezone"},
		{Task{Name: "a", Kind: "zz", Schedule: "@daily"}, "kind"},
		{Task{Name: "a/b", Kind: "k", Schedule: "@daily"}, "name"},
		{Task{Name: "a", Kind: "k", Schedule: "CRON_TZ=UTC 0 0 * * *"}, "timezone"},
		{Task{Name: "nightly\u202e", Kind: "k", Schedule: "@daily"}, "U+202E"},
		{Task{Name: "night\u200bly", Kind: "k", Schedule: "@daily"}, "U+200B"},
		{Task{Name: "a", Kind: "k", Schedule: "@daily", Params: map[string]string{"path": "/tmp/\u2066x"}}, `parameter "path": character U+2066`},
		// Card numbers, glued to letters or not, in a name or a parameter: the
		// error quotes them masked.
		{Task{Name: "z4761739001010267", Kind: "k", Schedule: "@daily"}, `task name "z476173******0267": holds a card number`},
		{Task{Name: "a", Kind: "k", Schedule: "@daily", Params: map[string]string{"note": "card 4761 7390 0101 0119"}}, `parameter "note": holds a card number (card 476173******0119)`},
		{Task{Name: "a", Kind: "k", Schedule: "@daily", Params: map[string]string{"dir": "/srv/x4761739001010119"}}, `(/srv/x476173******0119)`},
	} {
		err := s.Define(tc.t)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error about %s", tc.t, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "4761739001010") || strings.Contains(err.Error(), "4761 7390 0101 0119")) {
			t.Errorf("the error quotes a card number in clear: %v", err)
		}
	}
}

func TestTaskPutUnderReview(t *testing.T) {
	db := openDB(t)
	c := &clock{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
	reg, err := registry.New(db, c.Now, registry.Options{SeenFlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	s := newSched(t, db, c, Options{})
	s.Register("k", func(context.Context, map[string]string) (string, error) { return "", nil })
	if err := s.UseReview(reg); err != nil {
		t.Fatal(err)
	}
	alice := registry.Actor{Name: "alice", Role: registry.RoleOperator}
	bob := registry.Actor{Name: "bob", Role: registry.RoleReviewer}
	if _, err := s.RequestPut(alice, PutRequest{Task: Task{Name: "x", Kind: "k", Schedule: "bad"}}); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("bad schedule: %v", err)
	}
	ch, err := s.RequestPut(alice, PutRequest{Task: Task{Name: "x", Kind: "k", Schedule: "@daily"}, Reason: "nightly"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Task("x"); ok {
		t.Fatal("task defined before approval")
	}
	if _, err := reg.Approve(alice, ch.ID, ""); err == nil {
		t.Fatal("requester approved their own task")
	}
	if _, err := reg.Approve(bob, ch.ID, ""); err != nil {
		t.Fatal(err)
	}
	if tk, ok := s.Task("x"); !ok || tk.Source != ch.ID {
		t.Fatalf("after approval: %+v %v", tk, ok)
	}
}

// TestTaskPutOfNothingRefused: a task put whose every field is what the task
// approved through review already has is refused at the request (ErrInvalid naming
// the fields; no change is requested), empty and absent parameters alike; a put
// that changes one field, or a put over a task of the configuration with its very
// fields (which puts it under review), is requested.
func TestTaskPutOfNothingRefused(t *testing.T) {
	db := openDB(t)
	c := &clock{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
	reg, err := registry.New(db, c.Now, registry.Options{SeenFlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	s := newSched(t, db, c, Options{})
	s.Register("k", func(context.Context, map[string]string) (string, error) { return "", nil })
	if err := s.Define(Task{Name: "cfg", Kind: "k", Schedule: "@daily"}); err != nil {
		t.Fatal(err)
	}
	if err := s.UseReview(reg); err != nil {
		t.Fatal(err)
	}
	alice := registry.Actor{Name: "alice", Role: registry.RoleOperator}
	bob := registry.Actor{Name: "bob", Role: registry.RoleReviewer}
	nightly := Task{Name: "x", Kind: "k", Schedule: "30 23 * * *", Params: map[string]string{"p": "1"}}
	ch, err := s.RequestPut(alice, PutRequest{Task: nightly, Reason: "nightly"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Approve(bob, ch.ID, ""); err != nil {
		t.Fatal(err)
	}
	before, _ := reg.Changes(registry.ChangeFilter{})
	_, err = s.RequestPut(alice, PutRequest{Task: nightly, Reason: "again"})
	want := `task x: nothing to change: kind is already k, schedule is already 30 23 * * *, timezone is already none, params is already {"p":"1"}, timeout is already none, disabled is already false`
	if !errors.Is(err, registry.ErrInvalid) || err.Error() != want {
		t.Fatalf("the task put again as approved: %v\nwant %s", err, want)
	}
	if after, _ := reg.Changes(registry.ChangeFilter{}); len(after) != len(before) {
		t.Fatalf("%d changes after the refusal, want %d", len(after), len(before))
	}
	off := nightly
	off.Disabled = true
	if _, err := s.RequestPut(alice, PutRequest{Task: off}); err != nil {
		t.Fatalf("the task switched off: %v", err)
	}
	// Empty parameters are no parameters.
	bare := Task{Name: "y", Kind: "k", Schedule: "@hourly"}
	ch, err = s.RequestPut(alice, PutRequest{Task: bare})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Approve(bob, ch.ID, ""); err != nil {
		t.Fatal(err)
	}
	bare.Params = map[string]string{}
	if _, err := s.RequestPut(alice, PutRequest{Task: bare}); !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "task y: nothing to change") {
		t.Fatalf("the task put again with empty parameters: %v", err)
	}
	if _, err := s.RequestPut(alice, PutRequest{Task: Task{Name: "cfg", Kind: "k", Schedule: "@daily"}}); err != nil {
		t.Fatalf("a put of the configured task as configured (taking it under review): %v", err)
	}
}

// TestRunSleepsUntilTheNextSlot: Run waits on its timer for the next slot (at most
// a minute), runs the slot when the timer fires, and does not spin.
func TestRunSleepsUntilTheNextSlot(t *testing.T) {
	db := openDB(t)
	c := &clock{t: time.Date(2026, 5, 1, 9, 59, 30, 0, time.UTC)}
	waits := make(chan time.Duration)
	fire := make(chan time.Time)
	s := newSched(t, db, c, Options{After: func(d time.Duration) <-chan time.Time { waits <- d; return fire }})
	r := &recorder{c: c}
	s.Register("k", r.fn)
	s.Define(Task{Name: "h", Kind: "k", Schedule: "0 * * * *"})
	<-s.wake // Define's wake-up, which would only make Run loop once more
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	next := func() time.Duration {
		t.Helper()
		select {
		case d := <-waits:
			return d
		case <-time.After(10 * time.Second):
			t.Fatal("Run does not wait on its timer")
			return 0
		}
	}
	if d := next(); d <= 29*time.Second || d > 31*time.Second {
		t.Fatalf("first wait %v, want about 30 s (to 10:00)", d)
	}
	c.Set(time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC))
	fire <- c.Now()
	if d := next(); d != maxWait {
		t.Fatalf("wait after the 10:00 run %v, want %v (the next slot is an hour away)", d, maxWait)
	}
	if n := len(r.runs()); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
	cancel()
	for {
		select {
		case <-waits:
		case fire <- c.Now():
		case <-done:
			return
		}
	}
}

// TestLocalKindRunsOnEveryNode: a kind registered with RegisterLocal skips the
// cluster's claim (every node runs its slot, once); other kinds still need it.
func TestLocalKindRunsOnEveryNode(t *testing.T) {
	db := openDB(t)
	c := &clock{t: time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC)}
	claims := 0
	s := newSched(t, db, c, Options{Claim: func(context.Context, string, time.Time) (bool, error) {
		claims++
		return false, nil // another node always wins
	}})
	local, shared := &recorder{c: c}, &recorder{c: c}
	s.RegisterLocal("local", local.fn)
	s.Register("shared", shared.fn)
	s.Define(Task{Name: "l", Kind: "local", Schedule: "0 * * * *"})
	s.Define(Task{Name: "s", Kind: "shared", Schedule: "0 * * * *"})
	ctx := context.Background()
	s.Tick(ctx)
	c.Set(time.Date(2026, 5, 1, 10, 0, 30, 0, time.UTC))
	s.Tick(ctx)
	s.Tick(ctx)
	if len(local.runs()) != 1 || len(shared.runs()) != 0 || claims != 1 {
		t.Fatalf("local ran %d times, shared %d, claims %d: want 1, 0, 1", len(local.runs()), len(shared.runs()), claims)
	}
}
