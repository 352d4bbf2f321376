package cup

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// TestToolReversalOfRefund: the reversal switchyard term builds of a refund
// (Txn.Reverses "refund": F3 200000, 60.1 25 under MTI 0400) reaches the pipeline
// as the reversal of that refund, DE 90 naming it with its DE 7 and DE 3 200000,
// as a terminal's own reversal of the refund frame (ReversalOf) does. Before,
// every reversal the tool built was a sale's (60.1 22): the adapter did not take
// the refund's STAN as its original, the pipeline answered 00 for an unknown
// original and the refund stood. A kind no reversal takes back is refused.
func TestToolReversalOfRefund(t *testing.T) {
	h := newCUPHarness(t)
	card := "4761739001010119"
	h.send(Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 300, STAN: "000001"}, nil)
	h.now = h.now.Add(time.Second)
	refund := Txn{Kind: "refund", PAN: card, Expiry: "2912", Amount: 300, RRN: "000000000042", OrigSTAN: "000001", STAN: "000002"}
	rf, err := h.term.Build(refund)
	if err != nil {
		t.Fatal(err)
	}
	if ans := h.send(refund, nil); ans.Str(39) != "00" {
		t.Fatalf("refund: %s", Summary(ans))
	}
	refundDE7 := h.p.last().DE7
	h.now = h.now.Add(time.Second)

	tool := h.send(Txn{Kind: "reversal", Reverses: "refund", PAN: card, Expiry: "2912", Amount: 300, STAN: "000002", OrigSTAN: "000002"}, nil)
	r := h.p.last()
	if tool.MTI() != "0410" || r.MTI != "0400" || r.Original[:20] != "0200000002"+refundDE7 || r.ProcCode != message.PCRefund {
		t.Fatalf("the tool's reversal of the refund: %s, pipeline got %s DE 90 %s DE 3 %s; want 0400 DE 90 0200000002%s DE 3 %s",
			Summary(tool), r.MTI, r.Original, r.ProcCode, refundDE7, message.PCRefund)
	}
	rev, err := ReversalOf(rf)
	if err != nil {
		t.Fatal(err)
	}
	n := len(h.p.reqs)
	exchange(t, h.a, &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}, rev, h.term.MACOf)
	if len(h.p.reqs) != n+1 {
		t.Fatal("a terminal's reversal of the refund did not reach the pipeline")
	}
	if own := h.p.last(); own.Original[:20] != r.Original[:20] || own.ProcCode != r.ProcCode {
		t.Errorf("a terminal's reversal of the refund: DE 90 %s DE 3 %s; the tool's: DE 90 %s DE 3 %s", own.Original, own.ProcCode, r.Original, r.ProcCode)
	}
	for _, of := range []string{"reversal", "settlement", "upload", "gift"} {
		if _, err := h.term.Build(Txn{Kind: "reversal", Reverses: of, PAN: card, Expiry: "2912", Amount: 300, STAN: "000002"}); err == nil {
			t.Errorf("a reversal of a %q was built", of)
		}
	}
}
