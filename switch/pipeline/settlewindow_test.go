package pipeline

import (
	"context"
	"testing"

	"github.com/switchyard/switchyard/switch/termclient"
)

// TestNoRefundOfApprovalTakenBackBeforeSettle: an approval whose final write the
// journal took after reporting it unavailable (takenAfterAll) is taken back
// (undoApproval: its 0420 queued at once) and answered 91; the kept 91 version, with
// the reversal mark, waits for the housekeeping's settle (up to 5 s). Meanwhile the
// journal holds the approval, neither reversed nor with a reversal_owed event. A
// refund or a void of it in that window must not move the money again: the 0420 is
// queued already, so a refund credits the card twice, and a void queues a second
// 0420 of it.
func TestNoRefundOfApprovalTakenBackBeforeSettle(t *testing.T) {
	for _, tc := range []struct {
		name string
		then func(h *harness, orig answer) termclient.Txn
	}{
		{"refund", func(h *harness, orig answer) termclient.Txn { return h.refund(orig, 300) }},
		{"void", func(h *harness, orig answer) termclient.Txn { return h.void(orig, 1000) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			takenAfterAll(h, "purchase")
			a := h.do(h.purchase(1000))
			h.j.writeHook = nil
			if a.RC == "00" || h.p.unsettled.len() != 1 || h.advices("0420", a.RRN) != 1 {
				t.Fatalf("purchase answered %s %q, %d kept for settle, %d 0420 queued; want 91, 1, 1",
					a.RC, a.Reason, h.p.unsettled.len(), h.advices("0420", a.RRN))
			}
			a.AuthCode = h.record(a.RRN).AuthCode
			u := h.do(tc.then(h, a))
			h.p.settle(context.Background()) // the next tick
			r := h.record(a.RRN)
			if u.RC == "00" {
				t.Errorf("%s of %s, whose 0420 is queued, answered 00 (original now: rc %s, reversed by %q, refunded %d; %d 0420 queued)",
					tc.name, a.RRN, r.RC, r.ReversedBy, r.Refunded, h.advices("0420", a.RRN))
			}
			if n := h.advices("0420", a.RRN); n != 1 {
				t.Errorf("%d reversals of %s queued, want 1 (queued %q)", n, a.RRN, queued(h))
			}
		})
	}
}
