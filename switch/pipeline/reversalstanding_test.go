package pipeline

import (
	"testing"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestReversalFromInactiveTerminal: a suspended terminal (reported stolen), or one
// of a frozen merchant, reverses its request of the last duplicate window (the
// one it got no answer to around its suspension), but not an older approval: its
// thief would credit back his own purchase, the goods long gone. An active
// terminal's reversal of an older approval is taken as before.
func TestReversalFromInactiveTerminal(t *testing.T) {
	cases := []struct {
		name     string
		term     registry.TerminalStatus
		merchant registry.MerchantStatus
		age      time.Duration
		rc       string
		reason   string
		reversed bool
	}{
		{"suspended, original 10 min old", registry.TerminalSuspended, registry.MerchantActive, 10 * time.Minute, "58", ReasonReversalNotActive, false},
		{"closed, original 2 days old", registry.TerminalClosed, registry.MerchantActive, 48 * time.Hour, "58", ReasonReversalNotActive, false},
		{"merchant frozen, original 1 h old", registry.TerminalActive, registry.MerchantFrozen, time.Hour, "58", ReasonReversalNotActive, false},
		{"suspended, original 1 min old", registry.TerminalSuspended, registry.MerchantActive, time.Minute, "00", "", true},
		{"active, original 2 days old", registry.TerminalActive, registry.MerchantActive, 48 * time.Hour, "00", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Active while it buys; its standing changes before the reversal.
			term := &registry.Terminal{ID: testTID, MerchantID: testMID, Status: registry.TerminalActive}
			m := &registry.Merchant{ID: testMID, Status: registry.MerchantActive}
			h := newHarness(t, func(h *harness, _ *Config) {
				h.terms.decide = func(registry.CheckRequest) registry.CheckResult {
					return registry.CheckResult{Terminal: term, Merchant: m}
				}
			})
			h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil })
			orig := h.purchase(1000)
			oa := h.do(orig)
			if oa.RC != "00" {
				t.Fatalf("purchase: %+v", oa.Result)
			}
			h.clock.Advance(tc.age)
			h.terms.mu.Lock()
			term.Status, m.Status = tc.term, tc.merchant
			h.terms.mu.Unlock()
			queued := len(h.q.all())
			a := h.do(h.reversal(orig, 1000))
			if a.RC != tc.rc || a.Reason != tc.reason {
				t.Fatalf("reversal: %s %q, want %s %q (%+v)", a.RC, a.Reason, tc.rc, tc.reason, h.record(a.RRN).Events)
			}
			o := h.record(oa.RRN)
			if !tc.reversed {
				if o.ReversedBy != "" || len(h.q.all()) != queued {
					t.Fatalf("original reversed by %q, %d queued", o.ReversedBy, len(h.q.all())-queued)
				}
				return
			}
			if o.ReversedBy != a.RRN {
				t.Fatalf("original reversed by %q, want %s", o.ReversedBy, a.RRN)
			}
		})
	}
}
