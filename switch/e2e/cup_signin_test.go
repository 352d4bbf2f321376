package e2e

import (
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
