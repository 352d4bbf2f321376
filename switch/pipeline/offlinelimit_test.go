package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// gradeLimit is a Ratings that lowers every merchant's single limit to single (as a
// rating grade's limit does).
type gradeLimit struct{ single int }

func (g gradeLimit) Apply(m *risk.Merchant, _ bool) {
	if m.SingleLimit == 0 || m.SingleLimit > g.single {
		m.SingleLimit = g.single
	}
}

// TestCaptureOfflineOverLimit: an offline approval over the merchant's per-transaction
// limit (the registry's limits.per_transaction, lowered by its rating grade as the
// rules' merchant.single_limit is) is not captured: answered 61 offline-over-limit,
// journaled as a refusal marked offline that does not take the upload's duplicate key,
// nothing advised, the masked PAN (never the clear one) and the limit logged. At the
// limit, and for a merchant without a limit of its own, it is captured; the refused
// upload sent again once the limit allows it is captured anew.
func TestCaptureOfflineOverLimit(t *testing.T) {
	var logs syncbuf.Buffer
	h := newHarness(t, withTerminal(termNoKey), func(_ *harness, c *Config) { c.Logger = zerolog.New(&logs) })
	merchant := &registry.Merchant{ID: testMID, Tier: registry.TierStandard, Status: registry.MerchantActive,
		Limits: registry.Limits{PerTransaction: 5000}}
	h.terms.decide = func(req registry.CheckRequest) registry.CheckResult {
		m := *merchant
		return registry.CheckResult{Terminal: h.terms.terms[req.TerminalID], Merchant: &m}
	}

	over := h.offlineSale(5001, h.clock.Now().Add(-2*time.Hour))
	a := h.capture(over, true)
	if a.RC != message.RCExceedsAmountLimit || a.Reason != ReasonOfflineOverLimit {
		t.Fatalf("offline approval of 50.01 over a limit of 50.00: %+v", a.Result)
	}
	rec := h.record(a.RRN)
	if !rec.Offline || rec.Approved() || rec.DE7 != "" || rec.DecidedBy != "switch" || rec.Reason != ReasonOfflineOverLimit || rec.Issuer != "" {
		t.Errorf("refusal record %+v: want offline, refused by the switch, without the duplicate key's DE 7", rec)
	}
	said := false
	for _, e := range rec.Events {
		said = said || e.State == journal.StateDeclined && strings.Contains(e.Note, "5001") && strings.Contains(e.Note, "limit of 5000")
	}
	if !said {
		t.Errorf("the refusal's events %+v do not say the amount and the limit", rec.Events)
	}
	if n := len(h.q.all()); n != 0 || len(h.bank.sent()) != 0 {
		t.Errorf("%d advices queued, %d requests to the issuer for a refusal", n, len(h.bank.sent()))
	}
	out := logs.String()
	if !strings.Contains(out, "over the merchant's per-transaction limit") || !strings.Contains(out, message.MaskPAN(testPAN)) ||
		!strings.Contains(out, `"limit":5000`) {
		t.Errorf("no warning with the masked PAN and the limit:\n%s", out)
	}
	if strings.Contains(out, testPAN) {
		t.Error("the log holds the clear PAN")
	}

	if at := h.capture(h.offlineSale(5000, h.clock.Now().Add(-time.Hour)), true); at.RC != "00" {
		t.Errorf("offline approval at the limit: %+v, want captured", at.Result)
	}

	// A rating grade's lower single limit applies too.
	h.p.ratings = gradeLimit{single: 3000}
	if r := h.capture(h.offlineSale(3001, h.clock.Now().Add(-time.Hour)), true); r.RC != message.RCExceedsAmountLimit || r.Reason != ReasonOfflineOverLimit {
		t.Errorf("offline approval over the grade's limit: %+v", r.Result)
	}
	h.p.ratings = nil

	// The limit raised, the refused upload sent again is captured.
	merchant.Limits.PerTransaction = 0 // no limit of its own (the tier's are the rules')
	h.clock.Advance(time.Minute)
	ok := h.capture(over, true)
	if ok.RC != "00" || ok.RRN == a.RRN {
		t.Fatalf("the refused upload once the merchant has no limit: %+v, want captured anew", ok.Result)
	}
	if big := h.capture(h.offlineSale(99_999_999, h.clock.Now().Add(-time.Hour)), true); big.RC != "00" {
		t.Errorf("a merchant without a limit of its own: %+v, want captured (bounded by the listener's ceiling only)", big.Result)
	}
}
