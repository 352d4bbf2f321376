package pipeline

import (
	"testing"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestLateOrderPaymentNeverRefundable: a late (or refused) merchant-presented
// payment is given back to the payer in full by its reversal. Its record was
// journaled approved first and marked reversed by a second write: when that write
// failed (or the process died between the two), the journal held an approved,
// unreversed purchase whose full reversal was queued, and a terminal's refund of it
// was approved and sent to the wallet too: the payer paid back the whole payment
// and the refund. Now the record's first version is already reversed, so a
// refund of it is declined and the wallet never asked.
func TestLateOrderPaymentNeverRefundable(t *testing.T) {
	w := &fakeWallet{fakeLink: newFakeLink(qr.WeChat)}
	h := newHarness(t, withWallet(w))
	const rrn = "000000009991"
	writes := 0
	h.j.writeHook = func(rec *journal.Record, _ bool) error {
		if rec.RRN != rrn {
			return nil
		}
		if writes++; writes == 2 {
			return errScripted // the write after the first version fails
		}
		return nil
	}
	op := OrderPayment{RRN: rrn, TID: testTID, MID: testMID, Currency: "156", Amount: 700, Network: qr.WeChat,
		Connector: qr.WeChat, AuthCode: "654321", At: h.clock.Now(), Late: true}
	_, _ = h.p.RecordOrderPayment(t.Context(), op)
	if n := h.advices("0420", rrn); n != 1 {
		t.Fatalf("%d reversals of the late payment queued, want 1", n)
	}
	rec, err := h.j.Get(rrn)
	if err == nil && !rec.Reversed() && !reversalPending(rec) {
		t.Errorf("journal holds the late payment approved and unreversed (reversed by %q) while its full reversal is queued", rec.ReversedBy)
	}
	ref := h.refund(answer{Result: termclient.Result{RRN: rrn}}, 400)
	ref.PAN, ref.Expiry, ref.QRRefund = "", "", true
	if r := h.do(ref); r.RC == "00" || len(w.refunds) != 0 {
		t.Fatalf("refund of a late payment being reversed in full: RC %s, wallet refunds %+v; want declined, none", r.RC, w.refunds)
	}
}
