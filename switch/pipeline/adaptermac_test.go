package pipeline

import (
	"testing"

	"github.com/switchyard/switchyard/switch/registry"
)

// TestAdapterVerifiedMAC: a request a dialect adapter hands over as MAC-verified
// (frontend.Conn.MACVerified: the cup adapter verified F64 under the MAK) from a
// terminal registered with a TAK is processed, not answered 63 for the MAC its ASCII
// rendering cannot carry, and the ASCII answer carries none (the adapter MACs its
// own). The same request on a plain connection still needs its MAC.
func TestAdapterVerifiedMAC(t *testing.T) {
	term := registry.Terminal{ID: testTID, MerchantID: testMID, Keys: registry.KeyRefs{TAK: "T0000001.TAK", TPK: "T0000001.TPK", TMK: "T0000001.TMK"}}
	h := newHarness(t, withHSM, withTerminal(term))
	if a := h.do(h.purchase(1000)); a.RC != "63" || a.Reason != "mac-missing" {
		t.Fatalf("unMAC'd purchase on a plain connection: %s %s, want 63 mac-missing", a.RC, a.Reason)
	}
	inner := *h.conn
	inner.MACVerified = true
	h.conn = &inner
	a := h.do(h.purchase(1000))
	if a.RC != "00" {
		t.Fatalf("purchase the adapter verified: %s %s, want 00", a.RC, a.Reason)
	}
	if a.MAC != "" {
		t.Fatalf("the answer to the adapter carries a MAC %s: the adapter MACs its own", a.MAC)
	}
}
