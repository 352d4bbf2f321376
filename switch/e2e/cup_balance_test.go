package e2e

import (
	"fmt"
	"testing"

	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
)

// TestCUPBalanceInquiry, over TCP: the issuer's balance (the simulator's DE 54,
// ISO 8583:1987: account type, amount type 02 available, currency, sign, 12 digits)
// reaches a cup terminal in F54 of its balance inquiry's answer, and an ASCII
// terminal in DE 54; a sale's answer has none, and the journal holds no balance.
// Until 6 December 2026 (fifth release) the pipeline dropped the issuer's DE 54 and
// no balance reached a terminal.
func TestCUPBalanceInquiry(t *testing.T) {
	f := startCUP(t)
	want := fmt.Sprintf("0002156C%012d", issuersim.DemoBalance)
	term := cupTerminal(t, f, "003", cupHome)
	ans := cupDo(t, term, cup.Txn{Kind: "balance", PAN: cupCard, Expiry: cupCardExp, PIN: "1234"})
	if ans.Str(39) != "00" || ans.Str(54) != want || !ans.Has(64) {
		t.Fatalf("cup balance inquiry: %s F54 %q, want 00 F54 %q MAC'd", cup.Summary(ans), ans.Str(54), want)
	}
	sale := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 3100, PIN: "1234"})
	if sale.Str(39) != "00" || sale.Has(54) {
		t.Errorf("cup sale: %s F54 %q, want 00 without F54", cup.Summary(sale), sale.Str(54))
	}
	if rec := f.record(ans.Str(37)); rec.Type != "balance" || rec.RC != "00" {
		t.Errorf("balance inquiry journaled as %s %s", rec.Type, rec.RC)
	}
	tx := pos(0)
	tx.ProcCode, tx.STAN = message.PCBalance, "000901" // not a STAN of the cup terminal's (T0000001 too)
	if r := f.send(tx); r.RC != "00" || r.Balance != want {
		t.Errorf("ASCII balance inquiry: rc %s DE 54 %q, want 00 %q", r.RC, r.Balance, want)
	}
}

// TestCUPBalanceInquiryResent: a balance inquiry the terminal sends again (the same
// bytes: its answer was lost) is answered from the journal's first answer, over TCP,
// and carries the same F54 as the first answer did; nothing goes to the issuer
// again. Until the sixth release of 6 December 2026 the resend's answer had no F54
// (the balance was not journaled).
func TestCUPBalanceInquiryResent(t *testing.T) {
	f := startCUP(t)
	want := fmt.Sprintf("0002156C%012d", issuersim.DemoBalance)
	term := cupTerminal(t, f, "003", cupHome)
	req, err := term.Build(cup.Txn{Kind: "balance", PAN: cupCard, Expiry: cupCardExp, PIN: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	body, err := req.Encode(term.MACOf)
	if err != nil {
		t.Fatal(err)
	}
	first, _, err := term.RoundTrip(body)
	if err != nil || first.Str(39) != "00" || first.Str(54) != want {
		t.Fatalf("balance inquiry: %v %v F54 %q, want 00 F54 %q", err, first, first.Str(54), want)
	}
	again, _, err := term.RoundTrip(body)
	if err != nil {
		t.Fatal(err)
	}
	if again.Str(39) != "00" || again.Str(37) != first.Str(37) || again.Str(54) != want || !again.Has(64) {
		t.Errorf("resent balance inquiry: %s F54 %q, want the first answer (RRN %s) with F54 %q, MAC'd", cup.Summary(again), again.Str(54), first.Str(37), want)
	}
}
