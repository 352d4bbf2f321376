package server

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
)

// TestApprovalCodesFoldAlike: an issuer's approval answered 08, 10 or 11 is counted
// the same on the node that handled it (the pipeline observes it with
// risk.OutcomeOf, as pipeline.observe does) and on the nodes that fold its final
// record (onRemoteRecord, through pipeline.RecordInput): otherwise the rules decide a
// card's next transaction differently depending on the node it reaches, and the
// handling node counts an approval among the card's issuer declines (card testing).
func TestApprovalCodesFoldAlike(t *testing.T) {
	for _, rc := range []string{"08", "10", "11"} {
		t.Run(rc, func(t *testing.T) {
			dir := t.TempDir()
			rules := writeRules(t, dir, `
counters:
  - {name: card_sum_30m, dimension: card, measure: sum, window: 30m, where: 'outcome.approved && txn.txn_type == "purchase"'}
  - {name: card_declines_30m, dimension: card, measure: count, window: 30m, where: '!outcome.approved && !outcome.risk_declined && !outcome.unavailable'}
rules:
  - {id: split, condition: 'txn.txn_type == "purchase" && velocity.card_sum_30m + txn.amount > 1500', action: decline}
  - {id: testing, condition: 'velocity.card_declines_30m >= 1', action: decline, response_code: "59"}
`)
			engine := func() *risk.Engine {
				e, err := risk.New(rules, risk.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = e.Close() })
				return e
			}
			handling, folding := engine(), engine()
			j := testJournal(t, dir)
			s := &Server{Risk: folding, Journal: j}

			at := time.Now().UTC().Add(-time.Minute)
			in := risk.Input{Txn: risk.Txn{Type: risk.TxnPurchase, Amount: 1000, CardHash: "c1", Time: at}}
			// Node 1 decides and observes it as the pipeline does.
			d := handling.Evaluate(&in)
			if d.Declined() {
				t.Fatalf("first sale declined: %+v", d)
			}
			handling.Observe(&in, risk.OutcomeOf(&d, rc))
			// Node 2 folds its final record.
			rec := &journal.Record{RRN: "100000000001", Received: at, MTI: "0200", ProcCode: "000000", Type: "purchase", Amount: 1000,
				CardHash: "c1", RC: rc, DecidedBy: "issuer", TID: "T0000001", STAN: "000001", DE7: "1201120000", Facts: in.AppendBinary(nil)}
			if err := j.Write(context.Background(), rec, true, true); err != nil {
				t.Fatal(err)
			}
			s.onRemoteRecord(rec, nil, j.Get)

			decide := func(e *risk.Engine) risk.Decision {
				next := risk.Input{Txn: risk.Txn{Type: risk.TxnPurchase, Amount: 1000, CardHash: "c1", Time: time.Now().UTC()}}
				return e.Evaluate(&next)
			}
			on1, on2 := decide(handling), decide(folding)
			if on1.Rule != on2.Rule || on1.Action != on2.Action {
				t.Fatalf("the card's next sale of 10.00 after one approved %s: node 1 (that handled it) decides %s by %q, node 2 (that folded its record) %s by %q; want the same",
					rc, on1.Action, on1.Rule, on2.Action, on2.Rule)
			}
		})
	}
}
