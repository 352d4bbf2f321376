package server

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/sched"
)

// TestJournalRetentionTask: the journal.retention task, run by the scheduler at its
// slot on an injected clock, removes the records older than params.days (and their
// segment files) and keeps the recent ones; a retention shorter than 7 days is
// refused at start.
func TestJournalRetentionTask(t *testing.T) {
	dir := t.TempDir()
	c := demoConfig(t, dir)
	c.Journal.SegmentMB = 1
	day := time.Now().UTC().Truncate(24 * time.Hour)
	var mu sync.Mutex
	now := day.Add(3 * time.Hour)
	c.Clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	c.Tasks = []config.Task{{Name: "retention", Kind: TaskJournalRetention, Schedule: "0 4 * * *", Timezone: "UTC",
		Params: map[string]string{"days": "14"}}}
	s := start(t, c, nil)
	ctx := context.Background()
	// 1200 records of about 1 KB 30, 20 and 1 days ago: a few 1 MiB segments each.
	write := func(at time.Time) []string {
		var rrns []string
		for i := range 1200 {
			rrn, err := s.Journal.NextRRN()
			if err != nil {
				t.Fatal(err)
			}
			rec := &journal.Record{RRN: rrn, Received: at.Add(time.Duration(i) * time.Second), MTI: "0200", Type: "purchase",
				TID: "T0000001", STAN: "000001", Amount: 100, RC: "00", Facts: make([]byte, 1000)}
			rec.AddEvent(journal.StateAnswered, rec.Received, "")
			if err := s.Journal.Write(ctx, rec, true, i == 1199); err != nil {
				t.Fatal(err)
			}
			rrns = append(rrns, rrn)
		}
		return rrns
	}
	old, mid, recent := write(day.AddDate(0, 0, -30)), write(day.AddDate(0, 0, -20)), write(day.AddDate(0, 0, -1))
	s.Tasks.Tick(ctx) // 03:00: the task's first slot is 04:00
	set(day.Add(4*time.Hour + 30*time.Second))
	s.Tasks.Tick(ctx)
	var run sched.Run
	for deadline := time.Now().Add(10 * time.Second); ; {
		h, err := s.Tasks.History("retention", 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) == 1 && h[0].Outcome != sched.OutcomeRunning {
			run = h[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention did not run at its slot: %+v", h)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("run: %+v", run)
	if run.Outcome != sched.OutcomeOK || !run.Slot.Equal(day.Add(4*time.Hour)) || !strings.Contains(run.Output, "segments") {
		t.Fatalf("run: %+v", run)
	}
	gone := func(rrns []string) (n int) {
		for _, rrn := range rrns {
			_, err := s.Journal.Get(rrn)
			switch {
			case errors.Is(err, journal.ErrNotFound):
				n++
			case err != nil:
				t.Fatalf("Get %s: %v", rrn, err)
			}
		}
		return n
	}
	if g := gone(old); g != len(old) {
		t.Fatalf("%d of %d records 30 days old removed", g, len(old))
	}
	if g := gone(recent); g != 0 {
		t.Fatalf("%d records of yesterday removed", g)
	}
	if g := gone(mid); g == 0 {
		t.Fatal("no record 20 days old removed")
	}
	n := 0
	if err := s.Journal.Scan(ctx, journal.Query{TID: "T0000001"}, func(*journal.Record) bool { n++; return true }); err != nil || n < len(recent) {
		t.Fatalf("terminal scan after the purge: %d records, %v", n, err)
	}

	// Less than 7 days is refused, naming the task and the parameter.
	c2 := demoConfig(t, t.TempDir())
	c2.Tasks = []config.Task{{Name: "too-short", Kind: TaskJournalRetention, Schedule: "@daily", Params: map[string]string{"days": "3"}}}
	if s2, err := New(c2, zerolog.Nop(), testDemoIssuer); err == nil {
		s2.Close()
		t.Fatal("a retention of 3 days accepted")
	} else if !strings.Contains(err.Error(), "too-short") || !strings.Contains(err.Error(), "at least 7") {
		t.Fatalf("error: %v", err)
	}
}
