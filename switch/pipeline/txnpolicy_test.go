package pipeline

import (
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/registry"
)

// TestTxnPolicy: the void and refund policy follows the terminal's kind (as the
// registry's check found it, with or without an HSM) and the merchant's tier.
func TestTxnPolicy(t *testing.T) {
	softpos := registry.Terminal{ID: testTID, MerchantID: testMID, Kind: registry.KindSoftPOS}
	micro := &registry.Merchant{ID: testMID, Tier: registry.TierMicro}
	cases := []struct {
		name     string
		term     registry.Terminal
		policies []TxnPolicy
		advance  time.Duration
		void     bool
		amount   int64
		rc       string
		reason   string
	}{
		{name: "softpos refund the same day", term: softpos, amount: 400, rc: "12", reason: "refund-not-before-next-day"},
		{name: "softpos refund the next day", term: softpos, advance: 24 * time.Hour, amount: 400, rc: "00"},
		{name: "softpos void the same day", term: softpos, void: true, amount: 1000, rc: "00"},
		{name: "pos refund the same day", term: termNoKey, amount: 400, rc: "00"},
		{name: "configured: micro merchants refund at most half", term: termNoKey, policies: []TxnPolicy{{Tier: registry.TierMicro, MaxRefundPercent: 50}},
			amount: 501, rc: "13", reason: "refund-exceeds-policy-share"},
		{name: "configured: softpos voids refused", term: softpos, policies: []TxnPolicy{{Kind: "softpos", NoVoid: true}}, void: true, amount: 1000,
			rc: "12", reason: "void-not-allowed-for-terminal"},
		{name: "configured: another tier's policy does not apply", term: softpos, policies: []TxnPolicy{{Tier: "enterprise", NoVoid: true}}, void: true, amount: 1000, rc: "00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			term := tc.term
			h := newHarness(t, withTerminal(term), func(h *harness, c *Config) { c.TxnPolicies = tc.policies })
			h.terms.decide = func(req registry.CheckRequest) registry.CheckResult {
				return registry.CheckResult{Terminal: &term, Merchant: micro}
			}
			h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil })
			orig := h.do(h.purchase(1000))
			h.clock.Advance(tc.advance)
			tx := h.refund(orig, tc.amount)
			if tc.void {
				tx = h.void(orig, tc.amount)
			}
			if a := h.do(tx); a.RC != tc.rc || a.Reason != tc.reason {
				t.Fatalf("got %s %q, want %s %q", a.RC, a.Reason, tc.rc, tc.reason)
			}
		})
	}
}
