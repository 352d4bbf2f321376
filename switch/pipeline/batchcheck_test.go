package pipeline

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestBatchChecksTheTerminal: a batch (0500) of a terminal without a MAC key runs the
// registry's terminal checks (registry.CheckBatch, with the connection's source
// address), and one they refuse is answered with their code and
// reason and closes nothing: the next batch still counts the purchase. Before, no
// check ran and anyone naming the terminal closed its batch (00), from any network.
func TestBatchChecksTheTerminal(t *testing.T) {
	h := newHarness(t, withTerminal(registry.Terminal{ID: testTID, MerchantID: testMID, Status: registry.TerminalActive}))
	batch := func(bt string) termclient.Txn {
		tx := h.purchase(0)
		tx.MTI, tx.ProcCode, tx.PAN, tx.Expiry = "0500", message.PCBatch, "", ""
		tx.TLV = [][2]string{{message.TagBatchTotals, bt}}
		return tx
	}
	h.approved(1000)
	h.clock.Advance(time.Second)
	refuse := map[string]registry.Reason{}
	h.terms.decide = func(req registry.CheckRequest) registry.CheckResult {
		if why, ok := refuse[req.SourceIP.String()]; ok {
			return registry.CheckResult{Decline: true, ResponseCode: registry.RCNotPermittedToTerm, Reason: why}
		}
		return registry.CheckResult{Terminal: h.terms.terms[req.TerminalID]}
	}
	refuse[h.conn.Remote.Addr().String()] = registry.ReasonNetworkDenied
	if a := h.do(batch("1,1000,0,0")); a.RC != registry.RCNotPermittedToTerm || a.Reason != string(registry.ReasonNetworkDenied) {
		t.Fatalf("batch from a denied network: %s %q, want %s %q", a.RC, a.Reason, registry.RCNotPermittedToTerm, registry.ReasonNetworkDenied)
	}
	h.terms.mu.Lock()
	last := h.terms.checks[len(h.terms.checks)-1]
	h.terms.mu.Unlock()
	if last.Purpose != registry.CheckBatch || last.SourceIP != h.conn.Remote.Addr() || last.Request.MTI != "0500" {
		t.Fatalf("batch checked as purpose %d from %v (MTI %s), want %d (CheckBatch) from %v, 0500",
			last.Purpose, last.SourceIP, last.Request.MTI, registry.CheckBatch, h.conn.Remote.Addr())
	}
	// Nothing was closed: the passing batch still counts the purchase.
	delete(refuse, h.conn.Remote.Addr().String())
	if a := h.do(batch("1,1000,0,0")); a.RC != message.RCApproved {
		t.Fatalf("batch that passes the checks: %s %q, want 00 (the refused one closed nothing)", a.RC, a.Reason)
	}
}

// TestBatchMACRequired: the batch of a terminal with a MAC key must carry its MAC
// like any request: one without is answered 63 mac-missing and closes nothing (the
// MAC'd batch after it still counts the purchase); one with a MAC under another key,
// 63 mac-invalid.
func TestBatchMACRequired(t *testing.T) {
	h := newHarness(t, withHSM, withTerminal(termMAC))
	h.macKey = termMAC.Keys.TAK
	batch := func() termclient.Txn {
		tx := h.purchase(0)
		tx.MTI, tx.ProcCode, tx.PAN, tx.Expiry = "0500", message.PCBatch, "", ""
		tx.TLV = [][2]string{{message.TagBatchTotals, "1,1000,0,0"}}
		return tx
	}
	h.approved(1000)
	h.clock.Advance(time.Second)
	for key, reason := range map[string]string{"": "mac-missing", "another key": "mac-invalid"} {
		h.macKey = key
		if a := h.do(batch()); a.RC != "63" || a.Reason != reason {
			t.Fatalf("batch MAC'd under %q: %s %q, want 63 %s", key, a.RC, a.Reason, reason)
		}
	}
	h.macKey = termMAC.Keys.TAK
	if a := h.do(batch()); a.RC != message.RCApproved {
		t.Fatalf("MAC'd batch after the refused ones: %s %q, want 00 (they closed nothing)", a.RC, a.Reason)
	}
}
