package e2e

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/message"
)

// TestCUPRefusedSignInEndsTheSession: a terminal signed in at home signs in again
// from 1000 km away and is refused (59, no keys). It still holds the working keys of
// its first sign-in; its next sale must not pass the binding checks on the identity
// that sign-in reported (home), which the refused one has just contradicted: the
// session no longer vouches for it, and the answer asks for a sign-in. A reversal
// still goes through (on the registered identity), so no approval is left standing.
func TestCUPRefusedSignInEndsTheSession(t *testing.T) {
	f := startCUP(t)
	term := cupTerminal(t, f, "003", cupHome)
	sale := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1300, PIN: "1234"})
	if sale.Str(39) != "00" {
		t.Fatalf("sale at home: %s", cup.Summary(sale))
	}
	term.Device = cupAway
	ans, err := term.SignIn("003")
	if err != nil || ans.Str(39) != "59" || len(ans.Bytes(62)) != 0 {
		t.Fatalf("sign-in 1000 km away: %v %s", err, answerSummary(ans))
	}
	after := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1400, PIN: "1234"})
	if message.Approved(after.Str(39)) {
		t.Fatalf("a sale after the terminal's sign-in was refused 59 was approved on the identity of its earlier sign-in: %s", cup.Summary(after))
	}
	if after.Header.ProcessingRequirement() != cup.ReqSignIn {
		t.Errorf("the answer after a refused sign-in asks for processing requirement %d, want %d (sign in)", after.Header.ProcessingRequirement(), cup.ReqSignIn)
	}
	rev := cupDo(t, term, cup.Txn{Kind: "reversal", PAN: cupCard, Expiry: cupCardExp, Amount: 1300, STAN: sale.Str(11)})
	if rev.Str(39) != "00" {
		t.Fatalf("reversal after the refused sign-in: %s", cup.Summary(rev))
	}
	if rec, err := f.s.Journal.Get(sale.Str(37)); err != nil || rec.ReversedBy == "" {
		t.Fatalf("the sale is not reversed: %v %+v", err, rec)
	}
	// Signed in at home again, it trades as before.
	term.Device = cupHome
	if ans, err := term.SignIn("003"); err != nil || ans.Str(39) != "00" {
		t.Fatalf("sign-in at home: %v %s", err, answerSummary(ans))
	}
	if ans := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1500, PIN: "1234"}); ans.Str(39) != "00" {
		t.Fatalf("sale after signing in at home again: %s", cup.Summary(ans))
	}
}

// answerSummary is cup.Summary of an answer that may be missing.
func answerSummary(f *cup.Frame) string {
	if f == nil {
		return "no answer"
	}
	return cup.Summary(f)
}

// TestCUPReplayedSignIn: the dialect's 0800 carries no MAC and its F62 identity
// travels in clear, so anyone on the network path can sign a terminal in again, over
// another connection. Within the key lifetime that sign-in gets the keys the
// terminal holds, and the terminal's next sale is answered 00 with F64, asking
// nothing. Until 6 December 2026 it made new keys: the sale was approved at the
// issuer but answered without F64 and asked for a sign-in, so the terminal reversed
// it; repeated, the terminal could not trade.
func TestCUPReplayedSignIn(t *testing.T) {
	f := startCUP(t)
	term := cupTerminal(t, f, "003", cupHome)
	tmk, _ := hex.DecodeString(cupTMK)
	intruder, err := cup.DialTerminal(f.s.ListenerAddr("cup"), "T0000001", "000000000000001", tmk)
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Close()
	intruder.Device = cupHome // seen in clear in the terminal's own sign-in
	var sent []byte
	for i := range 3 {
		ans, err := intruder.SignIn("003")
		if err != nil || ans.Str(39) != "00" {
			t.Fatalf("intruder's sign-in %d: %v %s", i+1, err, answerSummary(ans))
		}
		if sent != nil && !bytes.Equal(sent, ans.Bytes(62)) {
			t.Errorf("intruder's sign-in %d made new keys", i+1)
		}
		sent = ans.Bytes(62)
		sale := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1300 + int64(i), PIN: "1234"})
		if sale.Str(39) != "00" || !sale.Has(64) || sale.Header.ProcessingRequirement() != cup.ReqNone {
			t.Fatalf("the terminal's sale after the intruder's sign-in %d: %s, F64 %v; want 00 with F64, nothing asked", i+1, cup.Summary(sale), sale.Has(64))
		}
	}
}
