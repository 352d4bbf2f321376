package pipeline

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestBatchCurrenciesMixed: the batch totals (DE 48 BT) carry no currency, so a batch
// whose approvals are of several currencies cannot be reconciled by one sum: a
// purchase of 100.00 yuan and a refund of 100.00 dollars (which the refund's checks
// let through: see the report of h/settle) add up to the terminal's "1,10000,1,10000",
// and were answered 00, balanced. Now 95 batch-currencies-mixed, with the totals by
// currency in the record's event; TerminalTotals refuses to add them; a batch of one
// currency still balances.
func TestBatchCurrenciesMixed(t *testing.T) {
	batch := func(h *harness, bt string) termclient.Txn {
		tx := h.purchase(0)
		tx.MTI, tx.ProcCode, tx.PAN, tx.Expiry = "0500", message.PCBatch, "", ""
		tx.TLV = [][2]string{{message.TagBatchTotals, bt}}
		return tx
	}
	h := newHarness(t)
	p := h.purchase(10000)
	p.Currency = "156"
	a := h.do(p)
	if a.RC != "00" {
		t.Fatalf("purchase: %+v", a.Result)
	}
	rf := h.refund(a, 10000)
	rf.Currency = "840"
	if r := h.do(rf); r.RC != "00" {
		t.Skipf("the refund in another currency is declined (%s %s): nothing to mix", r.RC, r.Reason)
	}
	h.clock.Advance(time.Second)
	if _, err := h.p.TerminalTotals(t.Context(), testTID, journal.Query{}); err == nil {
		t.Error("TerminalTotals added yuan and dollars together")
	}
	b := h.do(batch(h, "1,10000,1,10000"))
	if b.RC != message.RCReconciliationError || b.Reason != "batch-currencies-mixed" {
		t.Fatalf("batch of yuan and dollars: %s %q, want 95 batch-currencies-mixed", b.RC, b.Reason)
	}
	noted := false
	for _, e := range h.record(b.RRN).Events {
		noted = noted || e.State == journal.StateAnswered && e.Note == "terminal 1,10000,1,10000 switch by currency 156 1,10000,0,0; 840 0,0,1,10000"
	}
	if !noted {
		t.Errorf("batch record's events %+v: want the totals by currency", h.record(b.RRN).Events)
	}

	// The next batch, of yuan only, balances.
	h.clock.Advance(time.Second)
	p2 := h.purchase(2500)
	p2.Currency = "156"
	h.do(p2)
	h.clock.Advance(time.Second)
	if b := h.do(batch(h, "1,2500,0,0")); b.RC != "00" {
		t.Fatalf("batch of one currency: %s %q, want 00", b.RC, b.Reason)
	}
}

// TestBatchCloseNeverMovesBack: a clock stepped back (NTP) before a batch's 0500 does
// not move the terminal's batch close back. Before, the close was set to the
// stepped-back time, and the next batch counted again the transactions of the
// batch closed before: a terminal whose next batch was right was told 95.
func TestBatchCloseNeverMovesBack(t *testing.T) {
	batch := func(h *harness, bt string) termclient.Txn {
		tx := h.purchase(0)
		tx.MTI, tx.ProcCode, tx.PAN, tx.Expiry = "0500", message.PCBatch, "", ""
		tx.TLV = [][2]string{{message.TagBatchTotals, bt}}
		return tx
	}
	h := newHarness(t)
	h.approved(1000)
	h.clock.Advance(10 * time.Second)
	if b := h.do(batch(h, "1,1000,0,0")); b.RC != "00" {
		t.Fatalf("first batch: %s %q", b.RC, b.Reason)
	}
	h.clock.Advance(-30 * time.Second) // the clock is stepped back past the purchase
	if b := h.do(batch(h, "0,0,0,0")); b.RC != "00" {
		t.Fatalf("empty batch on the stepped-back clock: %s %q", b.RC, b.Reason)
	}
	h.clock.Advance(time.Minute)
	h.approved(2500)
	h.clock.Advance(time.Second)
	if b := h.do(batch(h, "1,2500,0,0")); b.RC != "00" {
		t.Fatalf("the next batch: %s %q, want 00: the first batch's purchase counted again", b.RC, b.Reason)
	}
}
