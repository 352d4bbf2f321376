package pipeline

import (
	"context"
	"strings"
	"testing"
)

// TestJournalRefusal: a refusal an adapter answered itself is journaled final, as a
// decline with its code, reason and who decided, with the card masked and hashed
// (never clear), and without a DE 7: a request of the same terminal and STAN that the
// pipeline then processes is a new request, not a duplicate of the refusal.
func TestJournalRefusal(t *testing.T) {
	h := newHarness(t)
	rrn, err := h.p.JournalRefusal(context.Background(), h.conn, Refusal{MTI: "0200", ProcCode: "000000", TID: testTID, MID: testMID,
		STAN: "000001", PAN: testPAN, Amount: 500, Currency: "156", EntryMode: "012", RC: "A0", DecidedBy: "cup", Reason: "mac-invalid"})
	if err != nil {
		t.Fatal(err)
	}
	r := h.record(rrn)
	if r.Type != "purchase" || r.RC != "A0" || r.DecidedBy != "cup" || r.Reason != "mac-invalid" || !r.Final() || r.DE7 != "" ||
		r.PANMasked != "621234******1234" || r.CardHash != h.p.CardHash(testPAN) || r.Amount != 500 || r.Listener != "test" {
		t.Fatalf("refusal record %+v", r)
	}
	if strings.Contains(r.PANMasked, testPAN) {
		t.Fatal("clear PAN in the record")
	}
	h.stan = 0 // the next purchase has STAN 000001
	if a := h.do(h.purchase(500)); a.RC != "00" || a.RRN == rrn {
		t.Fatalf("the same STAN processed after the refusal: %+v", a.Result)
	}
	if _, err := h.p.JournalRefusal(context.Background(), h.conn, Refusal{TID: testTID, STAN: "000002"}); err == nil {
		t.Error("a refusal without a response code was journaled")
	}
}
