package pipeline

import (
	"context"
	"fmt"
	"testing"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/switch/journal"
)

// TestApprovalNotMACdIsReversed: an approval whose answer cannot be MAC'd (the HSM
// stopped answering between the request's MAC check and the answer) reaches no
// terminal: it is an undelivered approval, reversed at once (a reversal advice to
// the issuer, the record reversed by switch:undelivered and marked undelivered).
// Before, the error closed the connection and left the approval standing, the
// cardholder charged for a sale the terminal never saw approved.
func TestApprovalNotMACdIsReversed(t *testing.T) {
	h := newHarness(t, withHSM, withTerminal(termMAC))
	h.macKey = termMAC.Keys.TAK
	h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil })
	h.hsm.mu.Lock()
	h.hsm.generateErr = fmt.Errorf("M6: %w", hsm.ErrUnavailable)
	h.hsm.mu.Unlock()
	resp, err := h.p.Process(context.Background(), h.conn, h.frame(h.purchase(1000)))
	if err == nil || resp.Body != nil {
		t.Fatalf("answer without its MAC: %v, %v; want no answer and an error", resp.Body, err)
	}
	var rec *journal.Record
	_ = h.j.Scan(context.Background(), journal.Query{}, func(r *journal.Record) bool {
		rec = r
		return true
	})
	if rec == nil {
		t.Fatal("nothing journaled")
	}
	if rec.RC != "00" || rec.ReversedBy != "switch:undelivered" || !hasEvent(rec, journal.StateUndeliver) {
		t.Fatalf("record rc %s reversed by %q events %v; want the approval reversed as undelivered", rec.RC, rec.ReversedBy, rec.Events)
	}
	checkReversalAdvice(t, h.q.all(), rec, "switch:undelivered")
}
