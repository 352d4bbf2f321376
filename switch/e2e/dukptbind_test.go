package e2e

import (
	"testing"

	"github.com/switchyard/switchyard/switch/termclient"
)

// TestDUKPTKSNBoundToItsTerminal: on the demo switch (software HSM, demo registry),
// the demo SoftPOS T0000002's DUKPT PIN block and KSN sent first from the countertop
// T0000001 (a static TPK terminal, no BDK) are refused 63 dukpt-not-registered,
// nothing decrypted and the device's counter untouched, so the device's own request
// with that KSN is approved after it. Before, the switch found the BDK by the KSN's
// prefix whatever the terminal: T0000001 was approved with the device's PIN, and the
// device itself then got 63 dukpt-replay. T0000002 sending a KSN of another device
// is refused 63 ksn-not-bound.
func TestDUKPTKSNBoundToItsTerminal(t *testing.T) {
	f := startDemo(t, nil)
	mac, _ := termclient.RetailMAC(demoTAK)
	dev := withDUKPTPIN(t, softpos(2000), "1234")
	var ksn string
	for _, tag := range dev.TLV {
		if tag[0] == "KS" {
			ksn = tag[1]
		}
	}
	stolen := pos(2000, [2]string{"KS", ksn})
	stolen.PAN, stolen.PINBlock = dev.PAN, dev.PINBlock
	if r := f.send(stolen); r.RC != "63" || r.Reason != "dukpt-not-registered" || r.RRN == "" {
		t.Fatalf("T0000002's KSN %s and PIN block from T0000001: %s %q (RRN %q), want 63 dukpt-not-registered, journaled", ksn, r.RC, r.Reason, r.RRN)
	}
	if r := sendOn(t, f.c, dev, mac); r.RC != "00" {
		t.Fatalf("T0000002's own request with KSN %s after T0000001 sent it: %s %q, want 00", ksn, r.RC, r.Reason)
	}
	other := softpos(2000)
	b, err := termclient.PINBlockDUKPT(demoBDK, "FFFF9876543211E00001", "1234", other.PAN)
	if err != nil {
		t.Fatal(err)
	}
	other.PINBlock, other.TLV = b, append(other.TLV, [2]string{"KS", "FFFF9876543211E00001"})
	if r := sendOn(t, f.c, other, mac); r.RC != "63" || r.Reason != "ksn-not-bound" {
		t.Fatalf("T0000002 with another device's KSN: %s %q, want 63 ksn-not-bound", r.RC, r.Reason)
	}
}
