package risk

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/risk/state"
)

// Backtest and explain retract, from the journal, what the live engine retracted: a
// sale voided (or reversed by the switch) and rung up again is not a split purchase in
// the replay either; a reversal that reversed nothing takes nothing back.
func TestReplayRetracts(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"r.yaml": `
counters:
  - {name: card_sum_30m, dimension: card, measure: sum, window: 30m, where: 'outcome.approved && txn.txn_type == "purchase"'}
rules:
  - {id: split, condition: 'txn.txn_type == "purchase" && velocity.card_sum_30m + txn.amount > 1500', action: decline}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 6, 4, 6, 0, 0, 0, time.UTC)
	n := 0
	ok := Outcome{Approved: true, ResponseCode: "00"}
	rec := func(typ string, amount int, orig string) Record {
		n++
		at := t0.Add(time.Duration(n) * time.Minute)
		rrn := "00000000000" + string(rune('0'+n))
		return Record{Time: at, RRN: rrn, OriginalRRN: orig, Outcome: ok, Decision: Decision{Action: ActionAllow},
			Input: Input{Txn: Txn{Type: typ, Amount: amount, CardHash: "c1", RRN: rrn, Time: at}}}
	}
	for _, c := range []struct {
		name    string
		build   func() []Record
		changed int
	}{
		{"no void: the second sale is a split purchase", func() []Record {
			return []Record{rec(TxnPurchase, 1000, ""), rec(TxnPurchase, 1000, "")}
		}, 1},
		{"voided and rung up again", func() []Record {
			a := rec(TxnPurchase, 1000, "")
			v := rec(TxnVoid, 1000, a.RRN)
			a.ReversedBy = v.RRN
			return []Record{a, v, rec(TxnPurchase, 1000, "")}
		}, 0},
		{"reversed by the switch (undelivered) and rung up again", func() []Record {
			a := rec(TxnPurchase, 1000, "")
			a.ReversedBy = "switch:undelivered"
			return []Record{a, rec(TxnPurchase, 1000, "")}
		}, 0},
		{"refunded in part: refunds do not retract from this counter", func() []Record {
			a := rec(TxnPurchase, 1000, "")
			a.Refunded = 1000
			return []Record{a, rec(TxnRefund, 1000, a.RRN), rec(TxnPurchase, 1000, "")}
		}, 1},
		{"a reversal that reversed nothing", func() []Record {
			a := rec(TxnPurchase, 1000, "")
			return []Record{a, rec(TxnReversal, 1000, a.RRN), rec(TxnPurchase, 1000, "")}
		}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &memHistory{recs: c.build()}
			rep, err := Backtest(context.Background(), h, rs, BacktestOptions{From: t0, To: t0.Add(time.Hour), Warmup: 0})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Changed != c.changed || rep.DeclinesAfter != c.changed {
				t.Errorf("backtest: %d changed, %d declines; want %d", rep.Changed, rep.DeclinesAfter, c.changed)
			}
			last := h.recs[len(h.recs)-1]
			x, err := Explain(context.Background(), h, rs, last.RRN, -1)
			if err != nil {
				t.Fatal(err)
			}
			if x.Decision.Declined() != (c.changed == 1) {
				t.Errorf("explain: %s, want declined %v", x.Decision.Summary(), c.changed == 1)
			}
		})
	}
}

// A replayed refund is partial until the refunds replayed so far cover the original
// (the journal holds only their total): the count goes with the last one, once.
func TestReplayPartialRefunds(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"r.yaml": `
counters:
  - {name: n, dimension: card, window: 30m, where: 'outcome.approved && txn.txn_type == "purchase"', retract: [refund]}
  - {name: sum, dimension: card, measure: sum, window: 30m, where: 'outcome.approved && txn.txn_type == "purchase"', retract: [refund]}
rules:
  - {id: r, condition: "velocity.n + velocity.sum >= 0", action: alert}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 6, 4, 6, 0, 0, 0, time.UTC)
	ok := Outcome{Approved: true, ResponseCode: "00"}
	mk := func(rrn, typ string, amount int, at time.Duration, orig string) Record {
		return Record{Time: t0.Add(at), RRN: rrn, OriginalRRN: orig, Outcome: ok,
			Input: Input{Txn: Txn{Type: typ, Amount: amount, CardHash: "c1", RRN: rrn, Time: t0.Add(at)}}}
	}
	a := mk("000000000001", TxnPurchase, 1000, time.Minute, "")
	a.Refunded = 1000
	h := &memHistory{recs: []Record{a, mk("000000000002", TxnPurchase, 500, 2*time.Minute, ""),
		mk("000000000003", TxnRefund, 300, 3*time.Minute, a.RRN), mk("000000000004", TxnRefund, 700, 4*time.Minute, a.RRN)}}
	store := state.NewVelocity(nil, 0, 0)
	refunded := map[string]int{}
	read := func() (int, int) {
		probe := Input{Txn: Txn{Type: TxnPurchase, CardHash: "c1", Time: t0.Add(10 * time.Minute)}}
		env := rs.Prepare(&probe, store, nil)
		return env.Velocity[rs.Counter("n").Index], env.Velocity[rs.Counter("sum").Index]
	}
	want := [][2]int{{1, 1000}, {2, 1500}, {2, 1200}, {1, 500}}
	for i := range h.recs {
		r := h.recs[i]
		rs.Observe(&r.Input, ok, store)
		replayRetract(context.Background(), h, rs, store, &r, ok, refunded)
		if n, sum := read(); n != want[i][0] || sum != want[i][1] {
			t.Errorf("after %s %d: n %d, sum %d; want %v", r.Input.Txn.Type, r.Input.Txn.Amount, n, sum, want[i])
		}
	}
}
