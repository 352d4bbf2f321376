package e2e

import (
	"testing"

	"github.com/switchyard/switchyard/switch/cup"
)

// TestCUPPreauthVoidByReference, over TCP: a pre-authorization void whose 61.2 is
// zeros (UnionPay terminals' form: the pre-authorization named by its approval code
// in F38, the card and the amount) releases that pre-authorization at the issuer
// (its reversal), and a completion of it is then refused; one naming the approval
// code with another card is answered 25 preauth-void-original-not-found, nothing
// released. Until 6 December 2026 (fifth release) it was the reversal of an unknown
// original: answered 00, nothing released, the hold left on the card.
func TestCUPPreauthVoidByReference(t *testing.T) {
	f := startCUP(t)
	term := cupTerminal(t, f, "003", cupHome)
	pre := cupDo(t, term, cup.Txn{Kind: "preauth", PAN: cupCard, Expiry: cupCardExp, Amount: 6100, PIN: "1234"})
	if pre.Str(39) != "00" || pre.Str(38) == "" {
		t.Fatalf("pre-authorization: %s", cup.Summary(pre))
	}
	const otherCard = "4761739001010267"
	wrong := cupDo(t, term, cup.Txn{Kind: "preauth-void", PAN: otherCard, Expiry: cupCardExp, Amount: 6100, Auth: pre.Str(38)})
	if wrong.Str(39) != "25" {
		t.Fatalf("void with the approval code and another card: %s, want 25", cup.Summary(wrong))
	}
	if rec := f.record(wrong.Str(37)); rec.Reason != cup.ReasonPreauthNotFound {
		t.Errorf("void with another card journaled %s, want %s", rec.Reason, cup.ReasonPreauthNotFound)
	}
	if e := f.sim().Ledger()[pre.Str(37)]; e.Reversed {
		t.Fatalf("the pre-authorization was reversed by a void of another card")
	}
	void := cupDo(t, term, cup.Txn{Kind: "preauth-void", PAN: cupCard, Expiry: cupCardExp, Amount: 6100, Auth: pre.Str(38)})
	if void.Str(39) != "00" || void.MTI() != "0110" {
		t.Fatalf("pre-authorization void by F38, card and amount: %s", cup.Summary(void))
	}
	if rec := f.record(pre.Str(37)); rec.ReversedBy == "" {
		t.Errorf("the pre-authorization is not marked reversed: %+v", rec)
	}
	if e := f.sim().Ledger()[pre.Str(37)]; !e.Reversed {
		// The reversal advice goes through the store-and-forward queue: wait for it.
		waitFor(t, "the issuer's reversal of the pre-authorization", func() bool { return f.sim().Ledger()[pre.Str(37)].Reversed })
	}
	comp := cupDo(t, term, cup.Txn{Kind: "completion", PAN: cupCard, Expiry: cupCardExp, Amount: 6100, RRN: pre.Str(37), Auth: pre.Str(38)})
	if comp.Str(39) == "00" {
		t.Errorf("completion of the voided pre-authorization approved: %s", cup.Summary(comp))
	}
}
