package pipeline

import (
	"testing"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// withMerchantCurrency makes the registry answer every terminal as an active POS of
// the test merchant, which transacts in cur ("" for any) with limits.
func withMerchantCurrency(cur string, limits registry.Limits) func(h *harness, c *Config) {
	return func(h *harness, _ *Config) {
		h.terms.decide = func(req registry.CheckRequest) registry.CheckResult {
			return registry.CheckResult{Terminal: &registry.Terminal{ID: req.TerminalID, MerchantID: testMID, Kind: registry.KindPOS, Status: registry.TerminalActive},
				Merchant: &registry.Merchant{ID: testMID, MCC: "5411", Tier: registry.TierStandard, Status: registry.MerchantActive, Currency: cur, Limits: limits}}
		}
	}
}

// TestMerchantCurrencyDeclines: at a merchant that transacts in 156, a purchase
// and a pre-authorization in 840 are declined 58 merchant-currency-mismatch before
// the rules and the issuer are asked (the answer's DE 48 and the journal say why,
// the transactions metric counts them under 58), and a purchase in 156 is
// approved, the rules seeing merchant.currency; a refund in 840 of a sale taken in
// 840 (before the merchant had a currency) is refunded, one of a sale in 156 is
// not. At a merchant without a currency a purchase in 840 is approved as before.
// Without the check the 840 purchase reached the issuer and was approved, its
// 100000 cents measured against a limit of 100000 fen.
func TestMerchantCurrencyDeclines(t *testing.T) {
	approve := func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil }
	var seen []string
	h := newHarness(t, withRisk, withMerchantCurrency("", registry.Limits{PerTransaction: 100000}))
	h.risk.decide = func(in *risk.Input) risk.Decision {
		seen = append(seen, in.Merchant.Currency)
		return risk.Decision{Action: risk.ActionAllow}
	}
	h.bank.script(approve)
	usd := h.purchase(100000)
	usd.Currency = "840"
	before := h.do(usd)
	if before.RC != "00" {
		t.Fatalf("purchase in 840 at a merchant of any currency: %s (%s), want 00", before.RC, h.record(before.RRN).Reason)
	}

	// The same merchant once it transacts in 156, on the same journal (the sale in
	// 840 above is a refund's original below).
	h = newHarness(t, withRisk, withMerchantCurrency("156", registry.Limits{PerTransaction: 100000}),
		func(n *harness, _ *Config) { n.j, n.stan = h.j, h.stan })
	h.risk.decide = func(in *risk.Input) risk.Decision {
		seen = append(seen, in.Merchant.Currency)
		return risk.Decision{Action: risk.ActionAllow}
	}
	h.bank.script(approve)
	seen = nil
	usd = h.purchase(100000)
	usd.Currency = "840"
	pre := h.preauth(5000)
	pre.Currency = "840"
	for _, c := range []struct {
		name string
		a    answer
	}{{"purchase", h.do(usd)}, {"pre-authorization", h.do(pre)}} {
		rec := h.record(c.a.RRN)
		if c.a.RC != "58" || c.a.Reason != ReasonMerchantCurrency || rec.Reason != ReasonMerchantCurrency || rec.RC != "58" || rec.Currency != "840" {
			t.Fatalf("%s in 840 at a merchant of 156: %s (answer's reason %q, record's %q), want 58 %s", c.name, c.a.RC, c.a.Reason, rec.Reason, ReasonMerchantCurrency)
		}
		note := ""
		for _, e := range rec.Events {
			if e.State == journal.StateDeclined {
				note = e.Note
			}
		}
		if note != ReasonMerchantCurrency+": DE 49 840, merchant "+testMID+" takes 156 only" {
			t.Errorf("%s: the journal's declined event says %q", c.name, note)
		}
	}
	if n := len(h.bank.sent()); n != 0 {
		t.Fatalf("the issuer was asked %d times for transactions in the wrong currency", n)
	}
	if len(seen) != 0 {
		t.Fatalf("the rules ran %d times for transactions in the wrong currency", len(seen))
	}
	if n := testutil.ToFloat64(h.p.metrics.Transactions.WithLabelValues("0200", "58", "", "switch")); n != 1 {
		t.Errorf("switchyard_transactions_total{mti=0200,rc=58,decided_by=switch} = %v, want 1", n)
	}
	if n := testutil.ToFloat64(h.p.metrics.Transactions.WithLabelValues("0100", "58", "", "switch")); n != 1 {
		t.Errorf("switchyard_transactions_total{mti=0100,rc=58,decided_by=switch} = %v, want 1", n)
	}
	cny := h.do(h.purchase(100000))
	if cny.RC != "00" || len(seen) != 1 || seen[0] != "156" {
		t.Fatalf("purchase in 156 at a merchant of 156: %s (%s), the rules saw currencies %v; want 00, 156", cny.RC, h.record(cny.RRN).Reason, seen)
	}

	// Refunds: of the sale in 840 taken before, in 840: refunded; of the sale in
	// 156, in 840: declined.
	back := h.refund(before, 1000)
	back.Currency = "840"
	if a := h.do(back); a.RC != "00" {
		t.Errorf("refund in 840 of a sale in 840: %s (%s), want 00", a.RC, h.record(a.RRN).Reason)
	}
	wrong := h.refund(cny, 1000)
	wrong.Currency = "840"
	if a := h.do(wrong); a.RC != "58" || h.record(a.RRN).Reason != ReasonMerchantCurrency {
		t.Errorf("refund in 840 of a sale in 156: %s (%s), want 58", a.RC, h.record(a.RRN).Reason)
	}
}

// TestMerchantCurrencyOfflineCapture: an offline approval in another currency
// than its merchant's is not captured (58 merchant-currency-mismatch, no advice
// queued: its limits cannot be checked), one in the merchant's is.
func TestMerchantCurrencyOfflineCapture(t *testing.T) {
	h := newHarness(t, withMerchantCurrency("156", registry.Limits{}))
	tx := h.offlineSale(4200, h.clock.Now().Add(-time.Hour))
	tx.Currency = "840"
	a := h.capture(tx, true)
	if rec := h.record(a.RRN); a.RC != "58" || rec.Reason != ReasonMerchantCurrency || !rec.Offline || len(h.q.all()) != 0 {
		t.Fatalf("offline capture in 840 at a merchant of 156: %s (%s), %d queued; want 58, nothing queued", a.RC, rec.Reason, len(h.q.all()))
	}
	if a := h.capture(h.offlineSale(4200, h.clock.Now().Add(-time.Hour)), true); a.RC != "00" || len(h.q.all()) != 1 {
		t.Fatalf("offline capture in 156: %s (%s)", a.RC, h.record(a.RRN).Reason)
	}
}
