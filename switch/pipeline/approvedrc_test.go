package pipeline

import (
	"testing"

	"github.com/moov-io/iso8583"
)

// TestApprovalCodesCountAsApproved: an issuer's approval with 08 (honour with
// identification), 10 (partial) or 11 (VIP) is an approval everywhere else in the
// switch (message.Approved, journal.Record.Approved, the settlement, a void or a
// refund of it): the velocity counters must count it as one when it is observed, as
// RecordInput (the other nodes' fold, backtests, retractions) reads it back. Observed
// as not approved and then retracted as approved, a void of it takes another sale of
// the card out of the sum: the split purchase after it passes.
func TestApprovalCodesCountAsApproved(t *testing.T) {
	for _, rc := range []string{"08", "10", "11"} {
		t.Run(rc, func(t *testing.T) {
			h := newHarness(t, withEngine(splitRules))
			next := rc
			h.bank.script(func(sent) (*iso8583.Message, error) {
				a := issuerAnswer(next, "123456")
				if next == "10" { // a partial approval names the amount approved: here all of it
					_ = a.Field(4, "000000001000")
				}
				next = "00"
				return a, nil
			})
			first := h.do(h.purchase(1000))
			if first.RC != rc {
				t.Fatalf("first sale: %+v, want %s", first.Result, rc)
			}
			// The first sale (approved with rc) counts: a second of 1000 is a split purchase.
			if a := h.do(h.purchase(1000)); a.RC != "05" {
				t.Fatalf("a second sale of 10.00 after one approved %s: %s (%s), want 05 (split purchase: the first counts as approved)", rc, a.RC, h.record(a.RRN).Reason)
			}
		})
	}
	t.Run("void of an 08 sale", func(t *testing.T) {
		h := newHarness(t, withEngine(splitRules))
		rcs := []string{"08", "00"}
		h.bank.script(func(sent) (*iso8583.Message, error) {
			rc := rcs[0]
			if len(rcs) > 1 {
				rcs = rcs[1:]
			}
			return issuerAnswer(rc, "123456"), nil
		})
		first := h.do(h.purchase(200))
		if first.RC != "08" {
			t.Fatalf("first sale: %+v", first.Result)
		}
		second := h.do(h.purchase(1000))
		if second.RC != "00" {
			t.Fatalf("second sale: %+v", second.Result)
		}
		if a := h.do(h.void(first, 200)); a.RC != "00" {
			t.Fatalf("void of the 08 sale: %+v", a.Result)
		}
		// The card's live approved sales: 10.00 (the second). 10.00 + 6.00 > 15.00.
		if a := h.do(h.purchase(600)); a.RC != "05" {
			t.Fatalf("a sale of 6.00 after a live one of 10.00: %s (%s), want 05 (split purchase): the void of the 08 sale took the 00 sale's amount out of the counters", a.RC, h.record(a.RRN).Reason)
		}
	})
}
