package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// batchOf sends the terminal's 0500 with totals bt and returns its answer.
func (h *harness) batchOf(bt string) answer {
	h.t.Helper()
	tx := h.purchase(0)
	tx.MTI, tx.ProcCode, tx.PAN, tx.Expiry = "0500", message.PCBatch, "", ""
	tx.TLV = [][2]string{{message.TagBatchTotals, bt}}
	return h.do(tx)
}

// TestBatchMembershipByDecision: over a real journal, every approved and unreversed
// transaction of a terminal is in exactly one batch, the first one closed after its
// approval was known to the journal: a purchase still at its issuer when the batch
// closed (answered after the 0500) and a merchant-presented payment whose wallet
// notified it after the close (received by the order book before it; once a few
// seconds before, once two hours before, which the index of late changes finds) are
// in the next batch, a purchase approved before the close is in the closed batch
// only, and neither a void nor a reversal after the close changes it (both are
// declined, void-batch-closed and reversal-batch-closed). Before, a batch counted the records received
// between the closes that were approved when it closed: the
// purchase and the payments were in no batch, the next one was answered 95.
func TestBatchMembershipByDecision(t *testing.T) {
	store := openStore(t)
	h := newHarness(t, func(h *harness, _ *Config) { h.store = store })

	beforeTx := h.purchase(1000)
	before := h.do(beforeTx) // decided before the first close: in batch 1
	if before.RC != "00" {
		t.Fatalf("purchase before the close: %s %q", before.RC, before.Reason)
	}
	h.clock.Advance(time.Second)

	// A purchase the issuer holds across the close.
	entered, release := h.gateIssuer()
	body := h.frame(h.purchase(2500))
	type result struct {
		resp frontend.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := h.p.Process(context.Background(), h.conn, body)
		done <- result{resp, err}
	}()
	<-entered
	h.clock.Advance(time.Second)

	// A QR order paid a moment before the close and one paid two hours before it
	// (the sweep of owed orders), both notified after it.
	paidAt, paidLongAgo := h.clock.Now().Add(-2*time.Second), h.clock.Now().Add(-2*time.Hour)
	h.clock.Advance(time.Second)

	if a := h.batchOf("1,1000,0,0"); a.RC != "00" {
		t.Fatalf("batch 1 (the purchase decided before it): %s %q, want 00", a.RC, a.Reason)
	}
	h.clock.Advance(time.Second)
	close(release)
	r := <-done
	if r.err != nil {
		t.Fatalf("purchase in flight across the close: %v", r.err)
	}
	inFlight := h.answered(r.resp, true)
	if inFlight.RC != "00" {
		t.Fatalf("purchase in flight across the close: %s %q, want 00", inFlight.RC, inFlight.Reason)
	}
	for i, at := range []time.Time{paidAt, paidLongAgo} {
		op := OrderPayment{RRN: []string{"000000009998", "000000009999"}[i], TID: testTID, MID: testMID, Currency: "156",
			Amount: 700, Network: "wechat", Connector: "bank", AuthCode: "654321", At: at}
		if _, err := h.p.RecordOrderPayment(t.Context(), op); err != nil {
			t.Fatal(err)
		}
	}
	// The purchase of batch 1 voided and reversed after its close: the terminal
	// counted it in the batch it closed, and the switch did too, so both are
	// declined (TestVoidAfterBatchClosed, TestReversalAfterBatchClosed).
	h.clock.Advance(time.Second)
	if a := h.do(h.void(before, 1000)); a.RC != "12" || a.Reason != ReasonVoidBatchClosed {
		t.Fatalf("void after the close: %s %q, want 12 %s", a.RC, a.Reason, ReasonVoidBatchClosed)
	}
	if a := h.do(h.reversal(beforeTx, 1000)); a.RC != "12" || a.Reason != ReasonReversalBatchClosed {
		t.Fatalf("reversal after the close: %s %q, want 12 %s", a.RC, a.Reason, ReasonReversalBatchClosed)
	}
	h.clock.Advance(time.Second)
	if a := h.batchOf("3,3900,0,0"); a.RC != "00" {
		t.Fatalf("batch 2 (the purchase answered after the close, the payments notified after it): %s %q, want 00", a.RC, a.Reason)
	}
	h.clock.Advance(time.Second)
	if a := h.batchOf("0,0,0,0"); a.RC != "00" {
		t.Fatalf("batch 3 (nothing since): %s %q, want 00", a.RC, a.Reason)
	}
	if rec, err := store.Get(inFlight.RRN); err != nil || !rec.Approved() {
		t.Fatalf("purchase record %+v (%v)", rec, err)
	}
}
