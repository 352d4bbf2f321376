package e2e

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/message"
)

// TestCUPSignInIdentityAges: a cup terminal signs in at home; its sales carry no
// location of their own (no F59), so the sign-in's place stands for them. Past three
// quarters of the sign-in's maximum age (cup.sign_in_max_age, default 24 h) its
// answers ask it to sign in again; past the age the sign-in no longer vouches for it:
// a terminal carried off the day after its sign-in is not approved on the place it
// signed in from (59 identity-missing under its policy decline) until it signs in
// again, where it is. Until 6 December 2026 a sign-in stood until the next one,
// however old. The switch's clock is moved forward, nothing sleeps.
func TestCUPSignInIdentityAges(t *testing.T) {
	var ahead atomic.Int64
	f := startDemo(t, func(c *config.Config) {
		c.RulesDir = middayRules(t, time.Now())
		c.Clock = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	})
	term := cupTerminal(t, f, "003", cupHome)
	sale := func(amount int64) *cup.Frame {
		t.Helper()
		return cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: amount, PIN: "1234"})
	}
	if a := sale(1100); a.Str(39) != "00" || a.Header.ProcessingRequirement() != cup.ReqNone {
		t.Fatalf("sale just after the sign-in: %s, requirement %d", cup.Summary(a), a.Header.ProcessingRequirement())
	}
	ahead.Store(int64(19 * time.Hour))
	if a := sale(1200); a.Str(39) != "00" || a.Header.ProcessingRequirement() != cup.ReqSignIn {
		t.Fatalf("sale 19 h after the sign-in: %s, requirement %d, want 00 asking for a sign-in (%d)", cup.Summary(a), a.Header.ProcessingRequirement(), cup.ReqSignIn)
	}
	ahead.Store(int64(25 * time.Hour))
	a := sale(1300)
	if message.Approved(a.Str(39)) {
		t.Fatalf("sale 25 h after the sign-in approved on the sign-in's place: %s", cup.Summary(a))
	}
	if a.Str(39) != "59" || a.Header.ProcessingRequirement() != cup.ReqSignIn {
		t.Errorf("sale 25 h after the sign-in: %s, requirement %d, want 59 asking for a sign-in", cup.Summary(a), a.Header.ProcessingRequirement())
	}
	if rec := f.record(a.Str(37)); rec.Reason != "identity-missing" {
		t.Errorf("its record: reason %q, want identity-missing", rec.Reason)
	}
	// Where it is now: signed in from Shanghai, refused; at home, it trades again.
	term.Device = cupAway
	if ans, err := term.SignIn("003"); err != nil || ans.Str(39) != "59" {
		t.Fatalf("sign-in from 1000 km away: %v %s", err, answerSummary(ans))
	}
	term.Device = cupHome
	if ans, err := term.SignIn("003"); err != nil || ans.Str(39) != "00" {
		t.Fatalf("sign-in at home: %v %s", err, answerSummary(ans))
	}
	if a := sale(1400); a.Str(39) != "00" || a.Header.ProcessingRequirement() != cup.ReqNone {
		t.Fatalf("sale after signing in again: %s, requirement %d", cup.Summary(a), a.Header.ProcessingRequirement())
	}
}

// TestCUPTerminalWithRegisteredTAK: a cup terminal registered with a TAK (its MAK's
// ID, T0000001.TAK: the cup dialect MACs every transaction under it) signs in and
// trades over cup, and its ID sent through the ASCII listener without a MAC is
// refused 63 mac-missing, nothing reaching the issuer. Until 6 December 2026 such a
// terminal could not sign in (63: the pipeline asked the sign-in's ASCII rendering
// for a MAC, which the dialect's 0800 does not carry), so a cup terminal had to be
// registered without a TAK, and then whoever knew its IDs traded as it, unMAC'd,
// through an ASCII listener.
func TestCUPTerminalWithRegisteredTAK(t *testing.T) {
	f := startCUP(t)
	f.requestAndApprove("terminal", "change", "T0000001", "--tak", "T0000001.TAK")
	term := cupTerminal(t, f, "003", cupHome)
	if a := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1100, PIN: "1234"}); a.Str(39) != "00" || !a.Has(64) {
		t.Fatalf("cup sale: %s", cup.Summary(a))
	}
	if ans, err := term.Echo(); err != nil || ans.Str(39) != "00" {
		t.Fatalf("cup echo: %v %s", err, answerSummary(ans))
	}
	forged := pos(1200)
	forged.PAN, forged.Expiry, forged.EntryMode, forged.STAN = cupCard, cupCardExp, "072", "777001"
	if r := f.send(forged); r.RC != "63" || r.Reason != "mac-missing" {
		t.Fatalf("ASCII purchase of the cup terminal without a MAC: %+v, want 63 mac-missing", r)
	}
	if n := len(f.sim().Ledger()); n != 1 {
		t.Errorf("the issuer saw %d requests, want the cup sale alone", n)
	}
}
