package pipeline

import (
	"testing"

	"github.com/switchyard/switchyard/switch/message"
)

// TestReversalProcessingCode: a terminal's reversal (0400) whose DE 3 is of
// another transaction type than its original's (000000, a purchase's, naming a
// refund, 200000) is declined 12 reversal-processing-code-mismatch, the refund not
// reversed and nothing queued; with the refund's DE 3 it is reversed. The account
// types (digits 3 to 6) are not compared: a reversal of a purchase with DE 3
// 003000 reverses it. Before, the 000000 reversal took back the card's refund
// while the terminal showed a purchase cancelled.
func TestReversalProcessingCode(t *testing.T) {
	h := newHarness(t)
	sale := h.approved(1000)
	rf := h.refund(sale, 400)
	refund := h.do(rf)
	if refund.RC != "00" {
		t.Fatalf("refund: %s %q", refund.RC, refund.Reason)
	}
	queued := len(h.q.all())
	wrong := h.reversal(rf, 400)
	wrong.ProcCode = message.PCPurchase
	if a := h.do(wrong); a.RC != "12" || a.Reason != "reversal-processing-code-mismatch" {
		t.Fatalf("reversal with DE 3 000000 of a refund: %s %q, want 12 reversal-processing-code-mismatch", a.RC, a.Reason)
	}
	if r := h.record(refund.RRN); r.Reversed() || len(h.q.all()) != queued {
		t.Fatalf("declined reversal: refund reversed by %q, %d queued", r.ReversedBy, len(h.q.all())-queued)
	}
	right := h.reversal(rf, 400) // the refund's DE 3, 200000
	if a := h.do(right); a.RC != "00" || h.record(refund.RRN).ReversedBy != a.RRN {
		t.Fatalf("reversal with the refund's DE 3: %s %q, refund reversed by %q", a.RC, a.Reason, h.record(refund.RRN).ReversedBy)
	}

	buy := h.purchase(700)
	ba := h.do(buy)
	acct := h.reversal(buy, 700)
	acct.ProcCode = "003000"
	if a := h.do(acct); a.RC != "00" || h.record(ba.RRN).ReversedBy != a.RRN {
		t.Fatalf("reversal with DE 3 003000 of a purchase: %s %q, purchase reversed by %q", a.RC, a.Reason, h.record(ba.RRN).ReversedBy)
	}
}
