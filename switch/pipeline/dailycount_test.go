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
