package pipeline

import (
	"testing"

	"github.com/moov-io/iso8583"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/registry"
)

// withRulePack gives the pipeline a real rule engine over the default rule pack
// (rules/), what a switch runs.
func withRulePack(h *harness, c *Config) {
	e, err := risk.New("../../rules", risk.Options{})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = e.Close() })
	c.Risk = e
}

// withMerchantLimits makes the registry answer every terminal as an active POS of
// the test merchant, a standard one with limits.
func withMerchantLimits(limits registry.Limits) func(h *harness, c *Config) {
	return func(h *harness, _ *Config) {
		h.terms.decide = func(req registry.CheckRequest) registry.CheckResult {
			return registry.CheckResult{Terminal: &registry.Terminal{ID: req.TerminalID, MerchantID: testMID, Kind: registry.KindPOS, Status: registry.TerminalActive},
				Merchant: &registry.Merchant{ID: testMID, MCC: "5411", Tier: registry.TierStandard, Status: registry.MerchantActive, Limits: limits}}
		}
	}
}

// TestMerchantDailyCount: the registry's daily count limit (limits.daily_count) was
// stored but enforced by no rule: a merchant limited to 2 transactions a day took
// any number. With the default rule pack, its first two purchases of 10.00 are
// approved and the third is declined 61 by merchant-daily-count, as its journal
// record says; a declined one does not count (the fourth is declined too), and once
// one of the two approved is voided, a purchase fits again. A merchant without a
// count limit takes the third.
func TestMerchantDailyCount(t *testing.T) {
	approve := func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil }
	h := newHarness(t, withRulePack, withMerchantLimits(registry.Limits{DailyCount: 2}))
	h.bank.script(approve)
	var first answer
	for i := range 2 {
		a := h.do(h.purchase(1000))
		if a.RC != "00" {
			t.Fatalf("purchase %d of a daily count of 2: %s (%s), want 00", i+1, a.RC, h.record(a.RRN).Reason)
		}
		if i == 0 {
			first = a
		}
	}
	for i := 3; i <= 4; i++ {
		a := h.do(h.purchase(1000))
		if rec := h.record(a.RRN); a.RC != "61" || rec.Reason != "merchant-daily-count" {
			t.Fatalf("purchase %d of a daily count of 2: %s (%q), want 61 (merchant-daily-count)", i, a.RC, rec.Reason)
		}
	}
	if a := h.do(h.void(first, 1000)); a.RC != "00" {
		t.Fatalf("void of the first: %s (%s)", a.RC, h.record(a.RRN).Reason)
	}
	if a := h.do(h.purchase(1000)); a.RC != "00" {
		t.Fatalf("purchase after a void: %s (%s), want 00 (the void took the first back)", a.RC, h.record(a.RRN).Reason)
	}

	h = newHarness(t, withRulePack, withMerchantLimits(registry.Limits{}))
	h.bank.script(approve)
	for i := range 3 {
		if a := h.do(h.purchase(1000)); a.RC != "00" {
			t.Fatalf("purchase %d without a count limit: %s (%s), want 00", i+1, a.RC, h.record(a.RRN).Reason)
		}
	}
}

// TestMerchantDailyCountCountsQROrders: a merchant-presented QR payment went through
// no velocity counter, so the rules' daily count (merchant_count_24h, rule
// merchant-daily-count) let a merchant limited to 2 transactions a day take two card
// purchases after a QR payment. With the default rule pack, a paid QR payment counts
// in the merchant's counters: one card purchase fits, the next is declined 61; a late
// (reversed) payment does not count; the journaled record carries the facts the other
// nodes fold it from, with no card.
func TestMerchantDailyCountCountsQROrders(t *testing.T) {
	approve := func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil }
	h := newHarness(t, withRulePack, withMerchantLimits(registry.Limits{DailyCount: 2}))
	h.bank.script(approve)
	late := OrderPayment{RRN: "000000009998", TID: testTID, MID: testMID, Currency: "156", Amount: 700, Network: "wechat",
		Connector: "bank", AuthCode: "654320", At: h.clock.Now(), Late: true}
	if _, err := h.p.RecordOrderPayment(t.Context(), late); err != nil && h.record(late.RRN) == nil {
		t.Fatalf("late QR payment: %v", err)
	}
	paid := OrderPayment{RRN: "000000009999", TID: testTID, MID: testMID, Currency: "156", Amount: 700, Network: "wechat",
		Connector: "bank", AuthCode: "654321", At: h.clock.Now()}
	rec, err := h.p.RecordOrderPayment(t.Context(), paid)
	if err != nil {
		t.Fatalf("QR payment: %v", err)
	}
	var in risk.Input
	if out, ok := RecordInput(rec, &in); !ok || !out.Approved || in.Merchant.ID != testMID || in.Txn.CardHash != "" || in.Txn.Type != "purchase" || in.Txn.Amount != 700 {
		t.Fatalf("QR payment's journaled facts: ok %v, outcome %+v, merchant %q, card %q, type %q, amount %d", ok, out, in.Merchant.ID, in.Txn.CardHash, in.Txn.Type, in.Txn.Amount)
	}
	if a := h.do(h.purchase(1000)); a.RC != "00" {
		t.Fatalf("card purchase after one QR payment, daily count 2: %s (%s), want 00 (the late one does not count)", a.RC, h.record(a.RRN).Reason)
	}
	a := h.do(h.purchase(1000))
	if rec := h.record(a.RRN); a.RC != "61" || rec.Reason != "merchant-daily-count" {
		t.Fatalf("second card purchase after one QR payment, daily count 2: %s (%q), want 61 (merchant-daily-count)", a.RC, rec.Reason)
	}
}
