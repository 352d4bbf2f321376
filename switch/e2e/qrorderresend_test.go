package e2e

import (
	"testing"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestQROrderResendSoftPOS: over TCP, the demo SoftPOS asks for an order's code and
// resends the request (the same DE 41, 11, 7 and the same attestation token, as a
// terminal that lost the answer does): the resend is answered with the same order
// and code, not declined 59 attestation-replayed; the same key with another amount
// is 94. Before, the resend was declined as a replayed token (an incident raised),
// and a resend from a terminal without a token made another order.
func TestQROrderResendSoftPOS(t *testing.T) {
	f, _ := startQR(t)
	mac, _ := termclient.RetailMAC(demoTAK)
	// A GL whose digits do not read as a card number (carddata.MaskField masks
	// "31.230400,121.473700", softpos's, since 65dec2e2: de48-GL-malformed).
	tx := softpos(2500, [2]string{"GL", "31.230401,121.473700"})
	tx.MTI, tx.ProcCode, tx.PAN, tx.Expiry = "0100", message.PCQROrder, "", ""
	first := sendOn(t, f.c, tx, mac)
	ftlv := orderTLV(t, first)
	if first.RC != "00" || ftlv.QROrder == "" || ftlv.QRPayload == "" {
		t.Fatalf("order: %+v", first)
	}
	for i := range 2 {
		again := sendOn(t, f.c, tx, mac)
		if atlv := orderTLV(t, again); again.RC != "00" || atlv.QROrder != ftlv.QROrder || atlv.QRPayload != ftlv.QRPayload {
			t.Fatalf("resend %d: %+v (%+v); want order %s again", i+1, again, atlv, ftlv.QROrder)
		}
	}
	other := tx
	other.Amount = 3000
	if a := sendOn(t, f.c, other, mac); a.RC != "94" {
		t.Fatalf("the same key, another amount: %+v; want 94", a)
	}
}
