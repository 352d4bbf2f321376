package pipeline

import (
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestKSNBoundToTerminal: a DUKPT KSN is taken only from a terminal the registry
// gives DUKPT, under that terminal's BDK, and only of its registered DUKPT device.
// Before, the KSN of any terminal went to the HSM with the BDK found by the KSN's
// prefix: a terminal of a static TPK (or of no PIN key) sending the demo device's
// KSN and recorded PIN block was approved, and the device's own request then came
// second, 63 dukpt-replay. Each refusal is 63 with its reason, journaled, counted,
// and reaches neither the HSM (nothing decrypted) nor the issuer.
func TestKSNBoundToTerminal(t *testing.T) {
	unbound := termDUKPT
	unbound.Keys.DUKPTDevice = ""
	noBDK := termDUKPT
	noBDK.Keys.BDK, noBDK.Keys.DUKPTDevice = "", ""
	cases := []struct {
		name      string
		term      registry.Terminal
		ksn       string
		hsmErr    error
		reason    string // "" approved
		toHSM     bool
		hsmSource string
	}{
		{name: "static TPK terminal", term: termTPK, ksn: "FFFF9876543210E00001", reason: "dukpt-not-registered"},
		{name: "terminal of no PIN key", term: termNoKey, ksn: "FFFF9876543210E00001", reason: "dukpt-not-registered"},
		{name: "PIN mode dukpt without a BDK", term: noBDK, ksn: "FFFF9876543210E00001", reason: "dukpt-not-registered"},
		{name: "another device of the key set", term: termDUKPT, ksn: "FFFF9876543211E00001", reason: "ksn-not-bound"},
		{name: "another key set's bit before the counter", term: termDUKPT, ksn: "FFFF9876543210C00001", reason: "ksn-not-bound"},
		{name: "AES KSN to a TDES device", term: termDUKPT, ksn: "FFFF9876543210E000000001", reason: "ksn-not-bound"},
		{name: "not a KSN", term: termDUKPT, ksn: "FFFF98", reason: "ksn-not-bound"},
		{name: "its own device", term: termDUKPT, ksn: "ffff9876543210e00001", toHSM: true, hsmSource: registry.DemoBDKRef},
		{name: "its own device, counter past 0x100000", term: termDUKPT, ksn: "FFFF9876543210F00001", toHSM: true, hsmSource: registry.DemoBDKRef},
		{name: "no device registered: the BDK's", term: unbound, ksn: "FFFF9876543210E00001", toHSM: true, hsmSource: registry.DemoBDKRef},
		{name: "no device registered: the HSM finds the KSN outside the BDK's prefix", term: unbound, ksn: "AAAA9876543210E00001",
			hsmErr: hsm.ErrKSNNotOfBDK, reason: "ksn-not-bound", toHSM: true, hsmSource: registry.DemoBDKRef},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, withHSM, withTerminal(tc.term))
			h.hsm.translateErr = tc.hsmErr
			tx := h.purchase(1000)
			tx.PINBlock = pinBlock
			tx.TLV = append(tx.TLV, [2]string{message.TagKSN, tc.ksn})
			a := h.do(tx)
			rc := "00"
			if tc.reason != "" {
				rc = "63"
			}
			if a.RC != rc || a.Reason != tc.reason {
				t.Fatalf("answer %s %q, want %s %q", a.RC, a.Reason, rc, tc.reason)
			}
			tr := h.hsm.translations
			if (len(tr) > 0) != tc.toHSM {
				t.Fatalf("%d PIN translations asked of the HSM, want any: %v", len(tr), tc.toHSM)
			}
			if tc.toHSM && (tr[0].Source.ID != tc.hsmSource || tr[0].KSN != tc.ksn) {
				t.Fatalf("HSM asked to translate under %q with KSN %q, want the terminal's BDK %q", tr[0].Source.ID, tr[0].KSN, tc.hsmSource)
			}
			if tc.reason == "" {
				return
			}
			rec := h.record(a.RRN)
			if rec.RC != "63" || rec.Reason != tc.reason || rec.DecidedBy != "hsm" || rec.KSN != "" {
				t.Errorf("record rc %s reason %q by %s KSN %q, want 63 %q by hsm without the KSN", rec.RC, rec.Reason, rec.DecidedBy, rec.KSN, tc.reason)
			}
			if n := len(h.bank.sent()); n != 0 {
				t.Errorf("the issuer got %d requests", n)
			}
			if n := counterValue(h.p.metrics.Transactions.WithLabelValues("0200", "63", "bank", "hsm")); n != 1 {
				t.Errorf("transactions_total{rc=63,decided_by=hsm} = %v, want 1", n)
			}
		})
	}
}
