package e2e

import (
	"testing"

	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/message"
)

// TestCUPPaddedPAN, over TCP: odd PANs padded with F as terminals send them (F2 of
// 19 digits with the F after the length, F2 of 15 digits whose length, 16, counts
// the F, a track 2 whose length counts its F) are approved by the issuer as their
// digits and journaled masked; an F2 with a hex digit inside is answered 30
// (format-error-F2) on a connection that stays open, nothing sent to the issuer.
// Until 6 December 2026 an F2 whose length counted the F, or with a hex digit
// inside, closed the connection without an answer.
func TestCUPPaddedPAN(t *testing.T) {
	f := startCUP(t)
	term := cupTerminal(t, f, "003", cupHome)
	const pan15, pan19 = "476173900101015", "4761739001010123452" // Luhn-valid, the demo issuer's BIN
	const f2At = 5 + 6 + 2 + 8                                    // TPDU, header, MTI, bitmap: F2's length byte
	// send builds tx, has patch change its encoded body, MACs the result as the
	// terminal would and returns the answer.
	send := func(tx cup.Txn, patch func(body []byte)) *cup.Frame {
		t.Helper()
		req, err := term.Build(tx)
		if err != nil {
			t.Fatal(err)
		}
		body, err := req.Encode(term.MACOf)
		if err != nil {
			t.Fatal(err)
		}
		patch(body)
		sum, err := term.MACOf(cup.MACInput(body, req))
		if err != nil {
			t.Fatal(err)
		}
		copy(body[len(body)-8:], sum)
		ans, _, err := term.RoundTrip(body)
		if err != nil {
			t.Fatalf("%s of %s: %v (the connection closed without an answer)", tx.Kind, message.MaskPAN(tx.PAN), err)
		}
		return ans
	}
	approved := func(what string, ans *cup.Frame, pan string) {
		t.Helper()
		if ans.Str(39) != "00" {
			t.Fatalf("%s: %s, want 00", what, cup.Summary(ans))
		}
		if rec := f.record(ans.Str(37)); rec.PANMasked != message.MaskPAN(pan) || rec.RC != "00" {
			t.Errorf("%s: journaled %s rc %s, want %s 00", what, rec.PANMasked, rec.RC, message.MaskPAN(pan))
		}
	}
	// 19 digits, F pad after the length (19): as a terminal packs it.
	ans := send(cup.Txn{Kind: "sale", PAN: pan19, Expiry: cupCardExp, Amount: 1100}, func(b []byte) { b[f2At+1+9] |= 0x0F })
	approved("19-digit PAN padded F", ans, pan19)
	if ans.Str(2) != pan19 {
		t.Errorf("answer's F2 %s, want the PAN", message.MaskPAN(ans.Str(2)))
	}
	// 15 digits, the length counting the F: 16.
	ans = send(cup.Txn{Kind: "sale", PAN: pan15, Expiry: cupCardExp, Amount: 1200}, func(b []byte) {
		b[f2At] = 0x16
		b[f2At+1+7] |= 0x0F
	})
	approved("15-digit PAN padded F, counted", ans, pan15)
	// Track 2 of 33 characters, its length counting the F: 34.
	req, err := term.Build(cup.Txn{Kind: "sale", Track2: pan15 + "=29121010000000000", Amount: 1300})
	if err != nil {
		t.Fatal(err)
	}
	req.Set(35, pan15+"D29121010000000000F")
	ans, err = term.Exchange(req, true)
	if err != nil {
		t.Fatalf("track 2 padded F, counted: %v", err)
	}
	approved("track 2 padded F, counted", ans, pan15)
	// A hex digit inside the PAN: 30, the connection stays.
	sent := len(f.sim().Ledger())
	ans = send(cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1400}, func(b []byte) { b[f2At+3] = 0xA1 })
	if ans.Str(39) != "30" || !ans.Has(64) {
		t.Fatalf("PAN with a hex digit: %s, want 30 MAC'd", cup.Summary(ans))
	}
	if rec := f.record(ans.Str(37)); rec.Reason != "format-error-F2" || rec.DecidedBy != "cup" {
		t.Errorf("PAN with a hex digit journaled %s by %s, want format-error-F2 by cup", rec.Reason, rec.DecidedBy)
	}
	if n := len(f.sim().Ledger()); n != sent {
		t.Errorf("the issuer saw %d requests for the PAN with a hex digit", n-sent)
	}
	if ans := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1500}); ans.Str(39) != "00" {
		t.Fatalf("a sale on the same connection after the 30: %s", cup.Summary(ans))
	}
}
