package risk

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestBacktestChangesBounded: a backtest lists at most maxListedChanges changed
// decisions, even with MaxChanges 0 ("all") or above it, so that a candidate that
// changes a share of a long range does not hold every change in memory; Changed and
// the per-rule figures still count every transaction.
func TestBacktestChangesBounded(t *testing.T) {
	defer func(n int) { maxListedChanges = n }(maxListedChanges)
	maxListedChanges = 5
	rs, err := Load(writeRules(t, map[string]string{"a.yaml": "rules:\n  - {id: all, condition: 'txn.amount > 0', action: decline}\n"}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 6, 4, 1, 0, 0, 0, time.UTC)
	h := &memHistory{}
	for i := 0; i < 12; i++ {
		in := purchase(1000 + i)
		in.Txn.Time, in.Txn.RRN = start.Add(time.Duration(i)*time.Second), fmt.Sprintf("%012d", i+1)
		h.recs = append(h.recs, Record{Time: in.Txn.Time, RRN: in.Txn.RRN, Input: *in, Outcome: Outcome{Approved: true, ResponseCode: "00"}, Decision: Decision{Action: ActionAllow}})
	}
	for _, max := range []int{0, 100, 3} {
		rep, err := Backtest(context.Background(), h, rs, BacktestOptions{From: start, To: start.Add(time.Hour), MaxChanges: max})
		if err != nil {
			t.Fatal(err)
		}
		want := min(5, max)
		if max == 0 {
			want = 5
		}
		if rep.Changed != 12 || len(rep.Changes) != want || rep.Rules[0].Hits != 12 || rep.DeclinesAfter != 12 {
			t.Errorf("MaxChanges %d: changed %d, listed %d, hits %d, declines %d; want 12, %d, 12, 12", max, rep.Changed, len(rep.Changes), rep.Rules[0].Hits, rep.DeclinesAfter, want)
		}
	}
}
