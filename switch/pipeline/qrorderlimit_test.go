package pipeline

import (
	"testing"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// withTerminalKind makes the registry answer every terminal as an active one of kind
// at the test merchant, a standard one without limits of its own.
func withTerminalKind(kind registry.TerminalKind) func(h *harness, c *Config) {
	return func(h *harness, _ *Config) {
		h.terms.decide = func(req registry.CheckRequest) registry.CheckResult {
			return registry.CheckResult{Terminal: &registry.Terminal{ID: req.TerminalID, MerchantID: testMID, Kind: kind, Status: registry.TerminalActive},
				Merchant: &registry.Merchant{ID: testMID, MCC: "5411", Tier: registry.TierStandard, Status: registry.MerchantActive}}
		}
	}
}

// TestQROrderSoftPOSLimit: a merchant-presented order requested from a SoftPOS
// terminal for more than the SoftPOS limit of the default rule pack (1,000.00) is
// declined 61 softpos-limit, as a purchase of that amount is, no order made and the
// decline journaled; one at the limit, one whose amount the payer enters and one of
// the same amount from a countertop POS are made. Until the fifteenth release of 8
// December 2026 an order of 1,000.01 was made at a SoftPOS, whose purchase of 1,000.01
// is declined.
func TestQROrderSoftPOSLimit(t *testing.T) {
	orders := &countingOrders{}
	withOrders := func(_ *harness, c *Config) { c.Orders = orders }
	order := func(h *harness, amount int64) answer {
		tx := h.purchase(amount)
		tx.MTI, tx.ProcCode, tx.PAN, tx.Expiry = "0100", message.PCQROrder, "", ""
		return h.do(tx)
	}
	h := newHarness(t, withRulePack, withTerminalKind(registry.KindSoftPOS), withOrders)
	if a := h.do(h.purchase(100001)); a.RC != "61" || a.Reason != "softpos-limit" {
		t.Fatalf("SoftPOS purchase of 1,000.01: %s %q, want 61 softpos-limit", a.RC, a.Reason)
	}
	a := order(h, 100001)
	if a.RC != "61" || a.Reason != "softpos-limit" || len(orders.made) != 0 {
		t.Fatalf("SoftPOS order of 1,000.01: %s %q, %d orders made; want 61 softpos-limit, none made", a.RC, a.Reason, len(orders.made))
	}
	if rec := h.record(a.RRN); rec.RC != "61" || rec.Reason != "softpos-limit" || rec.DecidedBy != "risk" || rec.Facts != nil {
		t.Fatalf("declined order journaled %s %q by %q, facts %s", rec.RC, rec.Reason, rec.DecidedBy, rec.Facts)
	}
	for _, amount := range []int64{100000, 0} {
		if a := order(h, amount); a.RC != "00" {
			t.Fatalf("SoftPOS order of %d: %s %q, want 00", amount, a.RC, a.Reason)
		}
	}
	if len(orders.made) != 2 {
		t.Fatalf("%d orders made, want 2", len(orders.made))
	}

	h = newHarness(t, withRulePack, withTerminalKind(registry.KindPOS), withOrders)
	if a := order(h, 100001); a.RC != "00" || len(orders.made) != 3 {
		t.Fatalf("POS order of 1,000.01: %s %q, %d orders made; want 00", a.RC, a.Reason, len(orders.made))
	}
}
