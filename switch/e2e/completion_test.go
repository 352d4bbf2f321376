package e2e

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/server"
	"github.com/switchyard/switchyard/switch/termclient"
)

// waitAdvice polls the demo issuer's ledger (up to 40 s: the store-and-forward
// queue's backoff after an outage) until rrn's entry satisfies cond.
func waitAdvice(t *testing.T, f *fixture, rrn, what string, cond func(issuersim.Entry) bool) issuersim.Entry {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		e := f.sim().Ledger()[rrn]
		if cond(e) {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the issuer's ledger for %s: %+v", what, rrn, e)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkPreauthCompletedBy checks the pre-authorization's completion mark.
func checkPreauthCompletedBy(t *testing.T, f *fixture, pre, want string) {
	t.Helper()
	rec, err := f.s.Journal.Get(pre)
	if err != nil {
		t.Fatal(err)
	}
	if rec.CompletedBy != want {
		t.Errorf("pre-authorization %s completed by %q, want %q", pre, rec.CompletedBy, want)
	}
}

// TestCompletionASCII: over the ASCII contract (0220 naming the pre-authorization by
// DE 37 + DE 38) a completion within the tolerance is approved without a second
// authorization, counts in settlement (the pre-authorization does not), and its
// advice reaches the issuer; one above the tolerance, of an unknown or of an already
// completed pre-authorization is refused with its code and reason; a void of the
// completion reopens the pre-authorization; with the issuer down the completion is
// answered and its advice delivered once the issuer is back.
func TestCompletionASCII(t *testing.T) {
	f := startDemo(t, nil)
	preauth := func(amount int64) termclient.Result {
		t.Helper()
		tx := pos(amount)
		tx.MTI = "0100"
		r := f.send(tx)
		if r.RC != "00" || r.AuthCode == "" {
			t.Fatalf("pre-authorization: %+v", r)
		}
		return r
	}
	complete := func(pre termclient.Result, amount int64) termclient.Result {
		tx := pos(amount)
		tx.MTI, tx.RRN, tx.AuthCode = "0220", pre.RRN, pre.AuthCode
		return f.send(tx)
	}
	pre := preauth(10000)
	c := complete(pre, 11500)
	if c.RC != "00" || c.AuthCode != pre.AuthCode {
		t.Fatalf("completion within the tolerance: %+v", c)
	}
	checkPreauthCompletedBy(t, f, pre.RRN, c.RRN)
	e := waitAdvice(t, f, c.RRN, "completion advice", func(e issuersim.Entry) bool { return e.Advices >= 1 })
	if e.Requests != 0 || e.Amount != 11500 {
		t.Errorf("the issuer's view of the completion %+v: want one advice of 11500, no authorization request", e)
	}
	tot, err := f.s.Pipeline.TerminalTotals(context.Background(), "T0000001", journal.Query{})
	if err != nil || tot.PurchaseCount != 1 || tot.PurchaseSum != 11500 {
		t.Errorf("settlement totals %+v (%v): want the completion alone", tot, err)
	}
	// The day's settlement report too.
	loc, _ := time.LoadLocation("Asia/Shanghai") // the demo's timezone
	crec, err := f.s.Journal.Get(c.RRN)
	if err != nil {
		t.Fatal(err)
	}
	// The completion's own day (the test may run across midnight there).
	rep, err := server.Settle(context.Background(), f.s.Journal, crec.Received.In(loc).Format("2006-01-02"), loc)
	if err != nil || rep.Total == nil || rep.Total.PurchaseCount != 1 || rep.Total.PurchaseAmount != 11500 {
		t.Errorf("settlement report %+v (%v): want the completion alone", rep, err)
	}

	pre2 := preauth(10000)
	if r := complete(pre2, 11501); r.RC != "13" || r.Reason != "completion-exceeds-preauth" {
		t.Errorf("completion above the tolerance: %+v", r)
	}
	if r := complete(termclient.Result{RRN: "999999999999", AuthCode: "123456"}, 100); r.RC != "25" || r.Reason != "preauth-not-found" {
		t.Errorf("completion of an unknown pre-authorization: %+v", r)
	}
	if r := complete(pre, 100); r.RC != "12" || r.Reason != "preauth-already-completed" {
		t.Errorf("second completion: %+v", r)
	}

	v := pos(11500)
	v.ProcCode, v.RRN, v.AuthCode = message.PCVoid, c.RRN, c.AuthCode
	if r := f.send(v); r.RC != "00" {
		t.Fatalf("void of the completion: %+v", r)
	}
	checkPreauthCompletedBy(t, f, pre.RRN, "")
	waitAdvice(t, f, c.RRN, "completion's reversal", func(e issuersim.Entry) bool { return e.Reversals >= 1 })
	c2 := complete(pre, 9000)
	if c2.RC != "00" {
		t.Fatalf("completion of the reopened pre-authorization: %+v", c2)
	}

	// The issuer down: the completion is answered, its advice waits and then arrives.
	pre3 := preauth(5000)
	if err := f.sim().StartOutage(issuersim.OutageDown); err != nil {
		t.Fatal(err)
	}
	c3 := complete(pre3, 5000)
	if c3.RC != "00" {
		t.Fatalf("completion with the issuer down: %+v", c3)
	}
	if err := f.sim().EndOutage(); err != nil {
		t.Fatal(err)
	}
	waitAdvice(t, f, c3.RRN, "advice after the outage", func(e issuersim.Entry) bool { return e.Advices >= 1 })
}

// TestCompletionCUP: the same over the cup dialect: completion (0200, 60.1 = 20, the
// pre-authorization in F37 + F38) and its void (60.1 = 21), settlement by 0500. The
// first completion carries the chip's data (F55), which reaches the issuer in the
// advice's DE 55 without the card's track, with DE 14.
func TestCompletionCUP(t *testing.T) {
	f := startCUP(t)
	term := cupTerminal(t, f, "003", cupHome)
	preauth := func(amount int64) *cup.Frame {
		t.Helper()
		a := cupDo(t, term, cup.Txn{Kind: "preauth", PAN: cupCard, Expiry: cupCardExp, Amount: amount, PIN: "1234"})
		if a.Str(39) != "00" || a.Str(38) == "" {
			t.Fatalf("pre-authorization: %s", cup.Summary(a))
		}
		return a
	}
	complete := func(rrn, auth string, amount int64) *cup.Frame {
		t.Helper()
		return cupDo(t, term, cup.Txn{Kind: "completion", PAN: cupCard, Expiry: cupCardExp, Amount: amount, RRN: rrn, Auth: auth})
	}
	reason := func(a *cup.Frame) string {
		t.Helper()
		rec, err := f.s.Journal.Get(a.Str(37))
		if err != nil {
			t.Fatalf("record of %s: %v", cup.Summary(a), err)
		}
		return rec.Reason
	}
	pre := preauth(10000)
	// The terminal read the chip for the completion: F55 with the card's cryptogram
	// and its track 2 equivalent (57), which the advice must not carry.
	const arqc = "9F26081122334455667788" + "9F270180" + "9F3602000C"
	cf, err := term.Build(cup.Txn{Kind: "completion", PAN: cupCard, Expiry: cupCardExp, Amount: 11500, RRN: pre.Str(37), Auth: pre.Str(38)})
	if err != nil {
		t.Fatal(err)
	}
	icc, _ := hex.DecodeString(arqc + "5710" + cupCard + "D" + cupCardExp + "2010000000F")
	cf.SetBytes(55, icc)
	c, err := term.Exchange(cf, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Str(39) != "00" || c.Str(38) != pre.Str(38) || c.MTI() != "0210" || !c.Has(64) {
		t.Fatalf("completion within the tolerance: %s", cup.Summary(c))
	}
	checkPreauthCompletedBy(t, f, pre.Str(37), c.Str(37))
	if e := waitAdvice(t, f, c.Str(37), "completion advice", func(e issuersim.Entry) bool { return e.Advices >= 1 }); e.Requests != 0 {
		t.Errorf("the issuer was asked to authorize the completion: %+v", e)
	} else if e.AdviceICC != arqc || e.AdviceExpiry != cupCardExp {
		t.Errorf("the completion advice's DE 55 %q, DE 14 %q: want the card's cryptogram %q without its track, its expiry %s", e.AdviceICC, e.AdviceExpiry, arqc, cupCardExp)
	}

	pre2 := preauth(10000)
	if a := complete(pre2.Str(37), pre2.Str(38), 11501); a.Str(39) != "13" || reason(a) != "completion-exceeds-preauth" {
		t.Errorf("completion above the tolerance: %s", cup.Summary(a))
	}
	if a := complete("999999999999", "123456", 100); a.Str(39) != "25" || reason(a) != "preauth-not-found" {
		t.Errorf("completion of an unknown pre-authorization: %s", cup.Summary(a))
	}
	if a := complete(pre.Str(37), pre.Str(38), 100); a.Str(39) != "12" || reason(a) != "preauth-already-completed" {
		t.Errorf("second completion: %s", cup.Summary(a))
	}
	// Settlement: the completion is the batch's one debit (pre-authorizations and
	// refused completions are not).
	if a := cupDo(t, term, cup.Txn{Kind: "settlement", Totals: message.BatchTotals{PurchaseCount: 1, PurchaseSum: 11500}}); a.Str(39) != "00" {
		t.Errorf("settlement with the completion: %s F48 %s", cup.Summary(a), a.Str(48))
	}

	// The batch is closed: its completion is no longer voided (since 7 December
	// 2026; the settlement would lose what the terminal reconciled).
	if v := cupDo(t, term, cup.Txn{Kind: "completion-void", PAN: cupCard, Expiry: cupCardExp, Amount: 11500, RRN: c.Str(37), Auth: c.Str(38), OrigSTAN: c.Str(11)}); v.Str(39) != "12" || reason(v) != "void-batch-closed" {
		t.Errorf("void of a completion in a closed batch: %s", cup.Summary(v))
	}
	// In the open batch, a completion's void reopens its pre-authorization.
	preV := preauth(10000)
	cV := complete(preV.Str(37), preV.Str(38), 10000)
	if cV.Str(39) != "00" {
		t.Fatalf("completion in the new batch: %s", cup.Summary(cV))
	}
	v := cupDo(t, term, cup.Txn{Kind: "completion-void", PAN: cupCard, Expiry: cupCardExp, Amount: 10000, RRN: cV.Str(37), Auth: cV.Str(38), OrigSTAN: cV.Str(11)})
	if v.Str(39) != "00" {
		t.Fatalf("completion void: %s", cup.Summary(v))
	}
	checkPreauthCompletedBy(t, f, preV.Str(37), "")
	waitAdvice(t, f, cV.Str(37), "completion's reversal", func(e issuersim.Entry) bool { return e.Reversals >= 1 })
	if a := complete(preV.Str(37), preV.Str(38), 9000); a.Str(39) != "00" {
		t.Fatalf("completion of the reopened pre-authorization: %s", cup.Summary(a))
	}

	pre3 := preauth(5000)
	if err := f.sim().StartOutage(issuersim.OutageDown); err != nil {
		t.Fatal(err)
	}
	c3 := complete(pre3.Str(37), pre3.Str(38), 5000)
	if c3.Str(39) != "00" {
		t.Fatalf("completion with the issuer down: %s", cup.Summary(c3))
	}
	if err := f.sim().EndOutage(); err != nil {
		t.Fatal(err)
	}
	waitAdvice(t, f, c3.Str(37), "advice after the outage", func(e issuersim.Entry) bool { return e.Advices >= 1 })
}

// TestCompletionTermCommand: `switchyard term completion` completes a pre-authorization
// from the shell in both dialects, and says what it lacks without --rrn and --auth.
func TestCompletionTermCommand(t *testing.T) {
	f := startCUP(t)
	for _, d := range []struct{ dialect, listener, want, stan string }{{"ascii", "ascii", "RC=00", "700001"}, {"cup", "cup", "0210 rc=00", "700002"}} {
		addr := f.s.ListenerAddr(d.listener)
		tx := pos(4000)
		tx.MTI = "0100"
		pre := f.send(tx)
		if pre.RC != "00" {
			t.Fatalf("pre-authorization: %+v", pre)
		}
		// A STAN of its own: the fixture's pre-authorization used the process-wide
		// counter under the same terminal ID in the same second.
		args := []string{"term", "completion", "--dialect", d.dialect, "--addr", addr, "--pan", cupCard, "--amount", "45.00", "--stan", d.stan}
		if out, code := cliLocal(args...); code == 0 || !strings.Contains(out, "--rrn and --auth") {
			t.Errorf("%s: completion without --rrn: exit %d\n%s", d.dialect, code, out)
		}
		out, code := cliLocal(append(args, "--rrn", pre.RRN, "--auth", pre.AuthCode)...)
		if code != 0 || !strings.Contains(out, d.want) {
			t.Fatalf("%s: term completion: exit %d\n%s", d.dialect, code, out)
		}
		completedBy(t, f, pre.RRN)
	}
}

// completedBy returns the completion mark of a pre-authorization, failing when none.
func completedBy(t *testing.T, f *fixture, pre string) string {
	t.Helper()
	rec, err := f.s.Journal.Get(pre)
	if err != nil || rec.CompletedBy == "" {
		t.Fatalf("pre-authorization %s not completed (%v)", pre, err)
	}
	return rec.CompletedBy
}
