package pipeline

import (
	"slices"
	"testing"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestMACNeverUnderDUKPT: the message path verifies and makes MACs under the
// terminal's static TAK, never under a DUKPT KSN, also for a terminal that sends a
// KSN (its PIN's). Only a translated PIN block puts the KSN in the record
// (journal.Record.KSN), from which every node of a cluster refuses its replay; a KSN
// without a PIN block takes no counter and is not recorded, and its request's replay
// is the journal's duplicate. docs/hsm.md: a dialect that comes to verify DUKPT MACs
// must record the MAC's KSN as the PIN's is, or a MAC KSN accepted on one node would
// verify again on another (whose key store's counter never learnt it); this test
// fails first then, to send whoever does it there.
func TestMACNeverUnderDUKPT(t *testing.T) {
	term := termMAC
	term.Keys.TPK, term.Keys.PINMode, term.Keys.BDK, term.Keys.DUKPTDevice = "", registry.PINModeDUKPT, termDUKPT.Keys.BDK, termDUKPT.Keys.DUKPTDevice
	h := newHarness(t, withHSM, withTerminal(term))
	h.macKey = term.Keys.TAK

	const ksn = "ffff9876543210e00001"
	tx := h.purchase(1000)
	tx.PINBlock = pinBlock
	tx.TLV = append(tx.TLV, [2]string{message.TagKSN, ksn})
	a := h.do(tx)
	if a.RC != "00" || a.MAC == "" {
		t.Fatalf("DUKPT PIN from a MAC'ing terminal: %s (%s), MAC %q; want 00 with a MAC", a.RC, a.Reason, a.MAC)
	}
	if rec := h.record(a.RRN); rec.KSN != "FFFF9876543210E00001" {
		t.Fatalf("record carries KSN %q, want the translated PIN's, upper-cased", rec.KSN)
	}

	tx = h.purchase(1100)
	tx.TLV = append(tx.TLV, [2]string{message.TagKSN, "FFFF9876543210E00002"})
	a = h.do(tx)
	if a.RC != "00" {
		t.Fatalf("a KSN without a PIN: %s (%s)", a.RC, a.Reason)
	}
	if rec := h.record(a.RRN); rec.KSN != "" {
		t.Fatalf("a KSN without a PIN block is recorded (%q): no counter took it", rec.KSN)
	}

	h.hsm.mu.Lock()
	macs := slices.Clone(h.hsm.macs)
	h.hsm.mu.Unlock()
	if len(macs) < 4 { // each request verified, each answer MAC'd
		t.Fatalf("%d MAC requests asked of the HSM, want a verification and a generation a transaction", len(macs))
	}
	for i, m := range macs {
		if m.KSN != "" || m.Key.ID != term.Keys.TAK {
			t.Fatalf("MAC request %d under key %q with KSN %q: the message path MACs under the static TAK only (see the test's comment)", i, m.Key.ID, m.KSN)
		}
	}
}
