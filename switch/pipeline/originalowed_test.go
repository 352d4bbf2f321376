package pipeline

import (
	"context"
	"testing"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestOriginalOwedReversalSurvivesRestart: a void or a terminal's reversal whose 0420
// of the original the queue refuses (a quorum lost) is answered otherwise than
// approved and owes the 0420 in memory (owedAdvices): the housekeeping queues it
// when the queue is back. A restart before that must queue it too, so the original
// carries a reversal_owed event, written with it or, the journal unavailable as well,
// by settle once the journal is back.
func TestOriginalOwedReversalSurvivesRestart(t *testing.T) {
	for _, tc := range []struct {
		name        string
		undo        func(h *harness, orig answer, tx termclient.Txn) termclient.Txn
		unavailable bool // the journal refuses the original's write too
	}{
		{"void", func(h *harness, orig answer, _ termclient.Txn) termclient.Txn { return h.void(orig, 1000) }, false},
		{"void, journal unavailable", func(h *harness, orig answer, _ termclient.Txn) termclient.Txn { return h.void(orig, 1000) }, true},
		{"reversal", func(h *harness, _ answer, tx termclient.Txn) termclient.Txn { return h.reversal(tx, 1000) }, false},
		{"reversal, journal unavailable", func(h *harness, _ answer, tx termclient.Txn) termclient.Txn { return h.reversal(tx, 1000) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tx := h.purchase(1000)
			a := h.do(tx)
			if a.RC != "00" {
				t.Fatalf("purchase answered %s", a.RC)
			}
			h.queueRefuses(true)
			if tc.unavailable {
				h.j.writeHook = func(r *journal.Record, _ bool) error {
					if r.RRN == a.RRN {
						return errNoQuorum
					}
					return nil
				}
			}
			u := h.do(tc.undo(h, a, tx))
			if u.RC == "00" || h.p.owedAdvices.len() != 1 || h.advices("0420", a.RRN) != 0 {
				t.Fatalf("answered %s %q with %d reversal advices owed, %d queued; want not approved, 1 owed",
					u.RC, u.Reason, h.p.owedAdvices.len(), h.advices("0420", a.RRN))
			}
			if tc.unavailable {
				if hasEvent(h.record(a.RRN), journal.StateReversalOwed) {
					t.Fatal("the original written while the journal refused it")
				}
				h.j.writeHook = nil
				h.p.retryAdvices() // the tick, the queue still refusing
				h.p.settle(context.Background())
			}
			if r := h.record(a.RRN); !hasEvent(r, journal.StateReversalOwed) || r.Reversed() {
				t.Errorf("original %s: events %v, reversed by %q; want a reversal_owed event, not reversed", a.RRN, states(r), r.ReversedBy)
			}
			h.restart(t)
			if n, r := h.advices("0420", a.RRN), h.record(a.RRN); n != 1 || !r.Reversed() {
				t.Errorf("after the restart %d reversals of %s queued, reversed by %q; want 1, reversed (queued %q)", n, a.RRN, r.ReversedBy, queued(h))
			}
		})
	}
}

// TestOriginalOwedReversalQueuedOnce: the reversal_owed event of a void's original
// does not make the 0420 go twice: once the housekeeping queued it (the original
// reversed), a restart's recovery leaves the original alone.
func TestOriginalOwedReversalQueuedOnce(t *testing.T) {
	h := newHarness(t)
	a := h.do(h.purchase(1000))
	h.queueRefuses(true)
	if v := h.do(h.void(a, 1000)); v.RC == "00" {
		t.Fatalf("void approved with its 0420 refused")
	}
	h.queueRefuses(false)
	h.p.retryAdvices()
	h.p.settle(context.Background())
	if r := h.record(a.RRN); !r.Reversed() || r.State != journal.StateReversed {
		t.Fatalf("original after the tick: reversed by %q, state %s", r.ReversedBy, r.State)
	}
	h.restart(t)
	if n := h.advices("0420", a.RRN); n != 1 {
		t.Errorf("%d reversals of %s queued, want 1 (queued %q)", n, a.RRN, queued(h))
	}
}

// TestLateQRPaymentOwedRefundSurvivesRestart: a late QR payment whose refund (a 0420)
// the queue refuses is journaled with a reversal_owed event, once however often the
// network repeats the notification, and a restart before the queue takes the 0420
// queues it.
func TestLateQRPaymentOwedRefundSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	h.queueRefuses(true)
	op := OrderPayment{RRN: "000000009999", TID: testTID, MID: testMID, Currency: "156", Amount: 700, Network: "wechat",
		Connector: "bank", AuthCode: "654321", At: h.clock.Now(), Late: true}
	for i := range 2 {
		if _, err := h.p.RecordOrderPayment(t.Context(), op); err == nil {
			t.Fatalf("notification %d taken while the queue refuses its refund", i+1)
		}
	}
	owed := 0
	for _, e := range h.record(op.RRN).Events {
		if e.State == journal.StateReversalOwed {
			owed++
		}
	}
	if owed != 1 {
		t.Fatalf("%d reversal_owed events after two notifications, want 1 (%v)", owed, states(h.record(op.RRN)))
	}
	h.restart(t)
	if n := h.advices("0420", op.RRN); n != 1 || !h.record(op.RRN).Reversed() {
		t.Errorf("after the restart %d refunds of the late payment %s queued, want 1 (queued %q)", n, op.RRN, queued(h))
	}
}

// TestNoRefundWhileReversalOwed: an original whose 0420 is owed (the queue refused
// it when its terminal reversed it) is being reversed: a refund or a second void of
// it meanwhile is declined, or the card would be credited twice once the 0420 goes.
func TestNoRefundWhileReversalOwed(t *testing.T) {
	for _, tc := range []struct {
		name string
		orig func(h *harness) termclient.Txn
		then func(h *harness, orig answer) termclient.Txn
	}{
		{"refund", (*harness).purchaseOf1000, func(h *harness, orig answer) termclient.Txn { return h.refund(orig, 400) }},
		{"void", (*harness).purchaseOf1000, func(h *harness, orig answer) termclient.Txn { return h.void(orig, 1000) }},
		{"completion", func(h *harness) termclient.Txn { return h.preauth(1000) }, func(h *harness, orig answer) termclient.Txn { return h.completion(orig, 1000) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tx := tc.orig(h)
			a := h.do(tx)
			h.queueRefuses(true)
			if u := h.do(h.reversal(tx, 1000)); h.p.owedAdvices.len() != 1 {
				t.Fatalf("reversal answered %s %q with %d advices owed, want 1", u.RC, u.Reason, h.p.owedAdvices.len())
			}
			h.queueRefuses(false)
			if r := h.do(tc.then(h, a)); r.RC != "12" || r.Reason != "original-reversal-owed" {
				t.Fatalf("%s of %s while its reversal is owed: %s %q, want 12 original-reversal-owed", tc.name, a.RRN, r.RC, r.Reason)
			}
			if n := h.advices("0420", a.RRN); n != 0 {
				t.Fatalf("%d reversals of %s queued before the tick, want 0", n, a.RRN)
			}
		})
	}
}

func (h *harness) purchaseOf1000() termclient.Txn { return h.purchase(1000) }
