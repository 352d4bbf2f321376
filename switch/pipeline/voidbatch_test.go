package pipeline

import (
	"testing"
	"time"
)

// TestVoidAfterBatchClosed: a purchase the terminal totalled in a batch it closed
// (0500 after it, answered 00) is not voided: 12 void-batch-closed, the original
// not reversed, no reversal queued, and the next batch of nothing balances (the
// terminal refunds it instead). A purchase after the close is voided within its
// open batch as before, and the batch after it balances without it. Before, the
// void of the totalled purchase was approved: the terminal had reconciled 2222,
// the day's settlement had no line for it.
func TestVoidAfterBatchClosed(t *testing.T) {
	h := newHarness(t)
	if a := h.batchOf("0,0,0,0"); a.RC != "00" {
		t.Fatalf("first batch: %s %q", a.RC, a.Reason)
	}
	h.clock.Advance(time.Second)
	totalled := h.approved(2222)
	h.clock.Advance(time.Second)
	if a := h.batchOf("1,2222,0,0"); a.RC != "00" {
		t.Fatalf("batch of the purchase: %s %q", a.RC, a.Reason)
	}
	h.clock.Advance(time.Second)
	queued := len(h.q.all())
	if a := h.do(h.void(totalled, 2222)); a.RC != "12" || a.Reason != ReasonVoidBatchClosed {
		t.Fatalf("void of a purchase of a closed batch: %s %q, want 12 %s", a.RC, a.Reason, ReasonVoidBatchClosed)
	}
	if o := h.record(totalled.RRN); o.Reversed() || len(h.q.all()) != queued {
		t.Fatalf("declined void: original reversed by %q, %d reversals queued", o.ReversedBy, len(h.q.all())-queued)
	}

	open := h.approved(1500)
	h.clock.Advance(time.Second)
	if a := h.do(h.void(open, 1500)); a.RC != "00" {
		t.Fatalf("void within the open batch: %s %q, want 00", a.RC, a.Reason)
	}
	h.clock.Advance(time.Second)
	if a := h.batchOf("0,0,0,0"); a.RC != "00" {
		t.Fatalf("batch after the declined void and the void within it: %s %q, want 00", a.RC, a.Reason)
	}
}

// TestReversalAfterBatchClosed: a terminal's reversal of a purchase it totalled in
// a batch it has closed is declined 12 reversal-batch-closed, nothing reversed or
// queued, and the next batch of nothing balances; a reversal of a purchase of the
// open batch reverses it as before. Before, the late reversal was approved and took
// out of the day's settlement a purchase the terminal had reconciled.
func TestReversalAfterBatchClosed(t *testing.T) {
	h := newHarness(t)
	if a := h.batchOf("0,0,0,0"); a.RC != "00" {
		t.Fatalf("first batch: %s %q", a.RC, a.Reason)
	}
	h.clock.Advance(time.Second)
	tx := h.purchase(2222)
	totalled := h.do(tx)
	if totalled.RC != "00" {
		t.Fatalf("purchase: %s %q", totalled.RC, totalled.Reason)
	}
	h.clock.Advance(time.Second)
	if a := h.batchOf("1,2222,0,0"); a.RC != "00" {
		t.Fatalf("batch of the purchase: %s %q", a.RC, a.Reason)
	}
	h.clock.Advance(time.Second)
	queued := len(h.q.all())
	if a := h.do(h.reversal(tx, 2222)); a.RC != "12" || a.Reason != ReasonReversalBatchClosed {
		t.Fatalf("reversal of a purchase of a closed batch: %s %q, want 12 %s", a.RC, a.Reason, ReasonReversalBatchClosed)
	}
	if o := h.record(totalled.RRN); o.Reversed() || len(h.q.all()) != queued {
		t.Fatalf("declined reversal: original reversed by %q, %d reversals queued", o.ReversedBy, len(h.q.all())-queued)
	}

	open := h.purchase(1500)
	if a := h.do(open); a.RC != "00" {
		t.Fatalf("purchase of the open batch: %s %q", a.RC, a.Reason)
	}
	h.clock.Advance(time.Second)
	if a := h.do(h.reversal(open, 1500)); a.RC != "00" || a.Reason != "" {
		t.Fatalf("reversal within the open batch: %s %q, want 00", a.RC, a.Reason)
	}
	h.clock.Advance(time.Second)
	if a := h.batchOf("0,0,0,0"); a.RC != "00" {
		t.Fatalf("batch after the declined reversal and the one within it: %s %q, want 00", a.RC, a.Reason)
	}
}
