package risk

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestBacktestAcquirer: a backtest (switchyard rules backtest) counts the acquirer
// counters of the default pack as the switch does, one count for every merchant:
// twelve card-reason declines of 1.50 probes of new cards, each at a merchant and
// BIN of its own, make card-testing-acquirer review the 11th and 12th probes and a
// new card's 1.50 ticket at a thirteenth merchant; the same history with the
// probes approved (ordinary small tickets) reviews nothing.
func TestBacktestAcquirer(t *testing.T) {
	rs, err := Load(copyRules(t, nil), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	history := func(probeRC string) *memHistory {
		h := &memHistory{}
		add := func(at time.Time, n int, rc string) {
			term := Terminal{ID: fmt.Sprintf("TA%06d", n), Kind: "pos", Status: "active", AgeDays: 200}
			m := Merchant{ID: fmt.Sprintf("%015d", 900+n), MCC: "5812", Tier: "micro", Status: "active"}
			in := simPurchase(at, term, m, fmt.Sprintf("probe-card-%03d", n), 150)
			in.Txn.BIN = fmt.Sprintf("62%04d", 1000+n)
			in.Txn.RRN = fmt.Sprintf("%012d", n)
			h.recs = append(h.recs, Record{Time: at, RRN: in.Txn.RRN, Input: in,
				Outcome:  Outcome{Approved: rc == "00", ResponseCode: rc},
				Decision: Decision{Action: ActionAllow}})
		}
		for n := 1; n <= 12; n++ {
			add(start.Add(time.Duration(n)*30*time.Second), n, probeRC)
		}
		add(start.Add(7*time.Minute), 13, "00")
		return h
	}
	for _, c := range []struct {
		rc   string
		hits int
	}{{"14", 3}, {"00", 0}} {
		rep, err := Backtest(context.Background(), history(c.rc), rs, BacktestOptions{From: start, To: start.Add(time.Hour), Warmup: -1})
		if err != nil {
			t.Fatal(err)
		}
		hits := -1
		for _, st := range rep.Rules {
			if st.Rule == "card-testing-acquirer" {
				hits = st.Hits
			}
		}
		if hits != c.hits {
			t.Errorf("probes answered %s: card-testing-acquirer hit %d times (-1: not in the report), want %d", c.rc, hits, c.hits)
		}
	}
}
