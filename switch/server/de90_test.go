package server

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestIssuerMatchesReversalsOnDE90: a terminal whose clock is 95 s behind the
// switch's voids a purchase, and voids the completion of a pre-authorization; each
// 0420 reaches the issuer with a DE 90 naming the message the issuer got (its MTI,
// DE 11, DE 7, the acquirer's DE 32): the purchase's 0200, and the completion's 0220
// advice, whose DE 11 and DE 7 are the ones it was queued with. Until 5 December 2026
// DE 90 carried the terminal's DE 7 and zeros for the acquirer, and an advice a new
// DE 11 and DE 7 at each try: an issuer matching reversals on DE 90 found neither.
func TestIssuerMatchesReversalsOnDE90(t *testing.T) {
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", BIN: "411111"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	c := demoConfig(t, t.TempDir())
	c.Issuers = []config.Issuer{{ID: "sim", Addrs: []string{sim.Addr()}, AcquirerID: "4321", Timeout: config.Duration(10 * time.Second)}}
	c.Routes = append(c.Routes, config.Route{Prefix: "411111", Issuer: "sim"})
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s := start(t, c, nil)
	deadline := time.Now().Add(5 * time.Second)
	for !s.links["sim"].Up() {
		if time.Now().After(deadline) {
			t.Fatal("the issuer did not sign on")
		}
		time.Sleep(20 * time.Millisecond)
	}
	tc := dial(t, s, "ascii", message.DialectASCII)
	do := func(tx termclient.Txn) termclient.Result {
		t.Helper()
		tx.STAN, tx.Time = termclient.NextSTAN(), time.Now().Add(-95*time.Second)
		r := send(t, tc, message.DialectASCII, tx)
		if r.RC != "00" {
			t.Fatalf("%s %s answered %s (%s)", tx.MTI, tx.ProcCode, r.RC, r.Reason)
		}
		return r
	}
	const card = "4111111111111111"
	sale := do(purchase(card, 1000))
	void := purchase(card, 1000)
	void.ProcCode, void.RRN, void.AuthCode = message.PCVoid, sale.RRN, sale.AuthCode
	do(void)

	pre := purchase(card, 10000)
	pre.MTI = "0100"
	p := do(pre)
	comp := purchase(card, 9000)
	comp.MTI, comp.RRN, comp.AuthCode = "0220", p.RRN, p.AuthCode
	cr := do(comp)
	cvoid := purchase(card, 9000)
	cvoid.ProcCode, cvoid.RRN, cvoid.AuthCode = message.PCVoid, cr.RRN, cr.AuthCode
	do(cvoid)

	for _, rrn := range []string{sale.RRN, cr.RRN} {
		var e issuersim.Entry
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			e = sim.Ledger()[rrn]
			if e.Reversed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no reversal of %s reached the issuer: %+v", rrn, e)
			}
		}
		if want := e.Original90(); e.Reversal90 != want || want == "" {
			t.Errorf("the 0420 of %s (first %s with DE 11 %s, DE 7 %s, DE 32 %s) came with DE 90 %q, want %q",
				rrn, e.FirstMTI, e.STAN, e.DE7, e.AcquirerID, e.Reversal90, want)
		}
	}
}
