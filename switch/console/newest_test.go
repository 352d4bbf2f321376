package console

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
)

// writeRecords journals n approved purchases of terminal tid, the i-th received at
// at(i), with RRNs from first on.
func writeRecords(t *testing.T, j *journal.Store, first, n int, tid string, at func(i int) time.Time) {
	t.Helper()
	for i := 0; i < n; i++ {
		rec := &journal.Record{RRN: fmt.Sprintf("%012d", first+i), Received: at(i), MTI: "0200", Type: "purchase", TID: tid,
			MID: "000000000000001", STAN: fmt.Sprintf("%06d", (first+i)%1000000), Amount: 100, Currency: "156", State: journal.StateAnswered, RC: "00"}
		if i%7 == 0 {
			rec.RC = "51"
		}
		if err := j.Write(context.Background(), rec, true, true); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNewest: newest gives the newest n matches of the span, newest first, across
// windows of every size (records a second apart in the last minutes, then hours
// apart), with the filter applied and nothing before the span's start; fewer
// when the span holds fewer.
func TestNewest(t *testing.T) {
	j := openJournal(t)
	end := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	// RRN 1..100: one every 3 h 10 min back from 1 h before end (days back);
	// RRN 101..200: one a second in the last 100 s.
	writeRecords(t, j, 1, 100, "T0000001", func(i int) time.Time { return end.Add(-time.Hour - time.Duration(99-i)*190*time.Minute) })
	writeRecords(t, j, 101, 100, "T0000001", func(i int) time.Time { return end.Add(-time.Duration(100-i) * time.Second) })
	q := journal.Query{From: end.Add(-30 * 24 * time.Hour), To: end}
	for _, n := range []int{1, 20, 150, 250} {
		got, err := newest(context.Background(), j, q, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := min(n, 200); len(got) != want {
			t.Fatalf("newest %d: %d records, want %d", n, len(got), want)
		}
		for i, r := range got {
			if want := fmt.Sprintf("%012d", 200-i); r.RRN != want {
				t.Fatalf("newest %d: record %d is %s, want %s", n, i, r.RRN, want)
			}
		}
	}
	declined, err := newest(context.Background(), j, q, 5, func(r *journal.Record) bool { return r.RC == "51" })
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"000000000199", "000000000192", "000000000185", "000000000178", "000000000171"} {
		if declined[i].RRN != want {
			t.Fatalf("newest declined: %s at %d, want %s", declined[i].RRN, i, want)
		}
	}
	q.From = end.Add(-50 * time.Second)
	if got, _ := newest(context.Background(), j, q, 100, nil); len(got) != 50 || got[49].RRN != "000000000151" {
		t.Fatalf("span of the last 50 s: %d records", len(got))
	}
	// A range of centuries (the console's search, from 0001 or to 3000) reads
	// every record once, and ends: the doubling windows once overflowed past 292
	// years and went forward again, until the request's deadline.
	for _, r := range [][2]time.Time{
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)},
		{end.Add(-30 * 24 * time.Hour), time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		got, err := newest(ctx, j, journal.Query{From: r[0], To: r[1]}, 250, nil)
		cancel()
		seen := map[string]bool{}
		for _, rec := range got {
			if seen[rec.RRN] {
				t.Errorf("%v to %v: %s listed twice", r[0], r[1], rec.RRN)
			}
			seen[rec.RRN] = true
		}
		if err != nil || len(got) != 200 || got[0].RRN != "000000000200" || got[199].RRN != "000000000001" {
			t.Errorf("%v to %v: %d records, %v", r[0], r[1], len(got), err)
		}
	}
}

// TestTransactionsPageShowsTheNewest: on a busy day (more than 5000 transactions
// in the span) the transactions page lists the newest. Before, it kept the first
// 5000 matches, the oldest, and listed the newest 200 of those: the day's
// latest transactions, the ones an operator looks for, were not on it.
func TestTransactionsPageShowsTheNewest(t *testing.T) {
	f := newFixture(t)
	j := openJournal(t)
	f.con.o.Journal = j
	now := f.clock.Now()
	writeRecords(t, j, 1, 5100, "T0000001", func(i int) time.Time { return now.Add(-20*time.Hour + time.Duration(i)*10*time.Second) })
	c := f.client()
	f.login(t, c, "operator", "operator-demo-pw")
	_, page := get(t, c, f.srv.URL+"/console/transactions?terminal=T0000001&from="+url.QueryEscape(now.Add(-23*time.Hour).Local().Format("2006-01-02T15:04")))
	if !strings.Contains(page, ">000000005100</a>") || !strings.Contains(page, ">000000004901</a>") || strings.Contains(page, ">000000004900</a>") {
		t.Errorf("the page does not list the newest 200 transactions (5100 down to 4901)")
	}
}

// TestRuleHitsCountTheLastHour: the rules page's hit counts read the last hour
// first: on a switch with more transactions a day than the scan's bound, the
// last hour's hits are counted. Before, the day was read from its start and the
// bound reached before the last hour, whose counts read 0.
func TestRuleHitsCountTheLastHour(t *testing.T) {
	old := maxHitScan
	maxHitScan = 50
	t.Cleanup(func() { maxHitScan = old })
	f := newFixture(t)
	j := openJournal(t)
	f.con.o.Journal = j
	now := f.clock.Now()
	for i := 0; i < 110; i++ {
		at, hit := now.Add(-20*time.Hour+time.Duration(i)*10*time.Minute), "old-rule"
		if i >= 100 {
			at, hit = now.Add(-time.Hour+time.Duration(i-100)*time.Minute), "new-rule"
		}
		rec := &journal.Record{RRN: fmt.Sprintf("%012d", i+1), Received: at, MTI: "0200", Type: "purchase", TID: "T0000001", MID: "000000000000001",
			STAN: fmt.Sprintf("%06d", i+1), Amount: 100, Currency: "156", State: journal.StateAnswered, RC: "00", RuleHits: []journal.RuleHit{{ID: hit, Action: "review"}}}
		if err := j.Write(context.Background(), rec, true, true); err != nil {
			t.Fatal(err)
		}
	}
	hour, day, scanned := f.con.ruleHits(context.Background())
	if hour["new-rule"] != 10 || day["new-rule"] != 10 || hour["old-rule"] != 0 || day["old-rule"] != 40 || scanned != 50 {
		t.Errorf("hits: hour %v, day %v, %d read; want new-rule 10 in both, old-rule 40 in the day, 50 read", hour, day, scanned)
	}
}
