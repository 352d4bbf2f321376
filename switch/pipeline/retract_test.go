package pipeline

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/moov-io/iso8583"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// splitRules decline a card's purchase that takes its approved purchases of the last
// 30 minutes past 15.00; the sum retracts voids, reversals and refunds.
const splitRules = `
counters:
  - {name: card_sum_30m, dimension: card, measure: sum, window: 30m,
     where: 'outcome.approved && txn.txn_type == "purchase"', retract: [void, reversal, refund]}
rules:
  - {id: split, condition: 'txn.txn_type == "purchase" && velocity.card_sum_30m + txn.amount > 1500',
     action: decline, reason: split-purchase}
`

// withEngine gives the pipeline a real rule engine over the rule file content.
func withEngine(rules string) func(h *harness, c *Config) {
	return func(h *harness, c *Config) {
		dir := h.t.(*testing.T).TempDir()
		if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(rules), 0o644); err != nil {
			h.t.Fatal(err)
		}
		e, err := risk.New(dir, risk.Options{})
		if err != nil {
			h.t.Fatal(err)
		}
		h.t.Cleanup(func() { _ = e.Close() })
		c.Risk = e
	}
}

// A sale voided, reversed by the terminal, reversed by the switch (answer not
// delivered) or refunded, then rung up again, is not a split purchase: the void, the
// reversal or the refund took the first sale back out of the counters (issue 22's
// false positive 6). Without one, the second sale is declined.
func TestRetractedSaleRungUpAgain(t *testing.T) {
	approve := func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil }
	cases := []struct {
		name   string
		undo   func(h *harness, first answer, tx1 any)
		second int64
		rc     string
	}{
		{name: "no undo: split purchase", second: 1000, rc: "05"},
		{name: "voided", second: 1000, rc: "00", undo: func(h *harness, first answer, _ any) {
			if a := h.do(h.void(first, 1000)); a.RC != "00" {
				t.Fatalf("void: %+v", a.Result)
			}
		}},
		{name: "refunded in part", second: 1000, rc: "00", undo: func(h *harness, first answer, _ any) {
			if a := h.do(h.refund(first, 600)); a.RC != "00" {
				t.Fatalf("refund: %+v", a.Result)
			}
		}},
		{name: "refunded in part, not enough", second: 1200, rc: "05", undo: func(h *harness, first answer, _ any) {
			h.do(h.refund(first, 600))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, withEngine(splitRules))
			h.bank.script(approve)
			first := h.do(h.purchase(1000))
			if first.RC != "00" {
				t.Fatalf("first sale: %+v", first.Result)
			}
			if tc.undo != nil {
				tc.undo(h, first, nil)
			}
			a := h.do(h.purchase(tc.second))
			if a.RC != tc.rc {
				t.Fatalf("second sale: %s (%s), want %s", a.RC, h.record(a.RRN).Reason, tc.rc)
			}
		})
	}
	t.Run("reversed by the terminal", func(t *testing.T) {
		h := newHarness(t, withEngine(splitRules))
		h.bank.script(approve)
		tx := h.purchase(1000)
		if a := h.do(tx); a.RC != "00" {
			t.Fatalf("first sale: %+v", a.Result)
		}
		if a := h.do(h.reversal(tx, 1000)); a.RC != "00" {
			t.Fatalf("reversal: %+v", a.Result)
		}
		if a := h.do(h.purchase(1000)); a.RC != "00" {
			t.Fatalf("second sale: %s (%s), want 00", a.RC, h.record(a.RRN).Reason)
		}
		// A second reversal of the same sale reverses nothing, and takes nothing back.
		if a := h.do(h.reversal(tx, 1000)); a.RC != "00" {
			t.Fatalf("second reversal: %+v", a.Result)
		}
		if a := h.do(h.purchase(600)); a.RC != "05" {
			t.Fatalf("third sale: %s, want 05 (1000 + 600 > 1500)", a.RC)
		}
	})
	t.Run("reversed by the switch: answer not delivered", func(t *testing.T) {
		h := newHarness(t, withEngine(splitRules))
		h.bank.script(approve)
		first := h.process(h.frame(h.purchase(1000)), false)
		if rec := h.record(first.RRN); first.RC != "00" || rec.ReversedBy != "switch:undelivered" {
			t.Fatalf("first sale: %+v reversed by %q", first.Result, rec.ReversedBy)
		}
		if a := h.do(h.purchase(1000)); a.RC != "00" {
			t.Fatalf("second sale: %s (%s), want 00", a.RC, h.record(a.RRN).Reason)
		}
	})
}

// A purchase of nothing, which the switch declines before the rules, is observed (a
// card tested with nothing to pay), with its facts journaled; balance inquiries are
// observed as before.
func TestProbesObserved(t *testing.T) {
	h := newHarness(t, withRisk)
	a := h.do(h.purchase(0))
	if a.RC != message.RCInvalidAmount {
		t.Fatalf("purchase of nothing: %+v", a.Result)
	}
	if len(h.risk.observed) != 1 || h.risk.observed[0].ResponseCode != message.RCInvalidAmount || h.risk.observed[0].RiskDeclined {
		t.Fatalf("observed %+v, want the 13", h.risk.observed)
	}
	var in risk.Input
	if _, ok := RecordInput(h.record(a.RRN), &in); !ok || in.Txn.CardHash == "" || in.Txn.Type != risk.TxnPurchase {
		t.Fatalf("journaled facts: %+v", in.Txn)
	}
	bal := h.purchase(0)
	bal.ProcCode = message.PCBalance
	h.do(bal)
	if len(h.risk.observed) != 2 {
		t.Fatalf("observed %d, want the balance inquiry too", len(h.risk.observed))
	}
}

// The rules see the merchant's group and region from the registry, and the journal
// keeps them with the facts: the other nodes of a cluster and the backtest key the
// merchant_group and region counters the same way.
func TestMerchantGroupToRulesAndJournal(t *testing.T) {
	var seen risk.Input
	h := newHarness(t, withRisk, func(h *harness, _ *Config) {
		h.terms.decide = func(req registry.CheckRequest) registry.CheckResult {
			return registry.CheckResult{Terminal: &registry.Terminal{ID: req.TerminalID, Kind: registry.KindPOS, Status: registry.TerminalActive},
				Merchant: &registry.Merchant{ID: testMID, Region: "CN-BJ", Group: "CHAIN-1", Tier: registry.TierMicro, Status: registry.MerchantActive}}
		}
	})
	h.risk.decide = func(in *risk.Input) risk.Decision { seen = *in; return risk.Decision{Action: risk.ActionAllow} }
	a := h.do(h.purchase(1000))
	if seen.Merchant.Group != "CHAIN-1" || seen.Terminal.Region != "CN-BJ" {
		t.Fatalf("the rules saw merchant %+v, terminal %+v", seen.Merchant, seen.Terminal)
	}
	var in risk.Input
	if _, ok := RecordInput(h.record(a.RRN), &in); !ok || in.Merchant.Group != "CHAIN-1" || in.Terminal.Region != "CN-BJ" || in.Txn.BIN != "621234" {
		t.Fatalf("journaled facts: merchant %+v, region %q, BIN %q", in.Merchant, in.Terminal.Region, in.Txn.BIN)
	}
}
