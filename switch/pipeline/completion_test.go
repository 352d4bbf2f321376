package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// preauth is a pre-authorization of amount on the test card and terminal.
func (h *harness) preauth(amount int64) termclient.Txn {
	tx := h.purchase(amount)
	tx.MTI = "0100"
	return tx
}

// completion is a completion of amount of the pre-authorization pre.
func (h *harness) completion(pre answer, amount int64) termclient.Txn {
	tx := h.purchase(amount)
	tx.MTI, tx.RRN, tx.AuthCode = "0220", pre.RRN, pre.AuthCode
	return tx
}

// approvedPreauth sends a pre-authorization of amount and checks its approval.
func (h *harness) approvedPreauth(amount int64) answer {
	h.t.Helper()
	a := h.do(h.preauth(amount))
	if a.RC != "00" {
		h.t.Fatalf("pre-authorization: %+v", a.Result)
	}
	return a
}

// advices returns the queued advices of mti about rrn.
func (h *harness) advices(mti, rrn string) int {
	n := 0
	for _, it := range h.q.all() {
		if it.MTI == mti && it.RRN == rrn {
			n++
		}
	}
	return n
}

// TestCompletion: a completion within the tolerance is answered 00 with the
// pre-authorization's approval code, without a second authorization at the issuer;
// its advice (0220, with the sealed PAN and the pre-authorization in DE 90) is
// queued; the pre-authorization is marked completed; settlement counts the
// completion, not the pre-authorization; a resend is a duplicate.
func TestCompletion(t *testing.T) {
	h := newHarness(t)
	pre := h.approvedPreauth(10000)
	tx := h.completion(pre, 11500) // +15 %: the default tolerance
	c := h.do(tx)
	if c.RC != "00" || c.AuthCode != pre.AuthCode || c.RRN == "" || c.RRN == pre.RRN {
		t.Fatalf("completion within the tolerance: %+v", c.Result)
	}
	if n := len(h.bank.sent()); n != 1 {
		t.Fatalf("the issuer was asked %d times; want once (the pre-authorization): the completion is an advice", n)
	}
	items := h.q.all()
	if len(items) != 1 || items[0].MTI != "0220" || items[0].Issuer != "bank" || items[0].RRN != c.RRN {
		t.Fatalf("queued %+v; want one 0220 advice for bank", items)
	}
	it := items[0]
	if it.Fields[4] != "000000011500" || it.Fields[38] != pre.AuthCode || !strings.HasPrefix(it.Fields[90], "0100") || len(it.Fields[90]) != 42 {
		t.Errorf("advice fields %v", it.Fields)
	}
	if pan, err := h.p.OpenSealedPAN(it.Binary[2]); err != nil || pan != testPAN {
		t.Errorf("advice PAN does not open to the card: %v", err)
	}
	if r := h.record(pre.RRN); r.CompletedBy != c.RRN {
		t.Errorf("pre-authorization completed by %q, want %s", r.CompletedBy, c.RRN)
	}
	if r := h.record(c.RRN); r.Type != "completion" || r.OriginalRRN != pre.RRN || r.Issuer != "bank" || r.Amount != 11500 || !strings.HasPrefix(r.PANMasked, "621234") || strings.Contains(r.PANMasked, testPAN) {
		t.Errorf("completion record %+v", r)
	}
	tot, err := h.p.TerminalTotals(context.Background(), testTID, journal.Query{})
	if err != nil || tot.PurchaseCount != 1 || tot.PurchaseSum != 11500 {
		t.Errorf("totals %+v (%v): want the completion alone", tot, err)
	}
	// The same message again: the first answer, nothing queued again.
	if again := h.do(tx); again.RC != "00" || again.RRN != c.RRN || h.advices("0220", c.RRN) != 1 {
		t.Errorf("resent completion: %+v, %d advices", again.Result, h.advices("0220", c.RRN))
	}
	// A second completion of the same pre-authorization is refused.
	if twice := h.do(h.completion(pre, 100)); twice.RC != "12" || twice.Reason != "preauth-already-completed" {
		t.Errorf("second completion: %+v", twice.Result)
	}
}

// TestCompletionRefused: each completion that does not match an open, approved
// pre-authorization (or goes beyond its tolerance) is refused with a code and reason,
// and nothing is queued for the issuer.
func TestCompletionRefused(t *testing.T) {
	cases := []struct {
		name      string
		cfg       func(c *Config)
		preRC     string // the pre-authorization's issuer answer (default 00)
		setup     func(h *harness, pre answer)
		amount    int64
		change    func(tx *termclient.Txn)
		rc, reasn string
	}{
		{name: "above the default tolerance", amount: 11501, rc: "13", reasn: "completion-exceeds-preauth"},
		{name: "above a configured tolerance", cfg: func(c *Config) { c.CompletionTolerance = 0.05 }, amount: 10501, rc: "13", reasn: "completion-exceeds-preauth"},
		{name: "no tolerance", cfg: func(c *Config) { c.CompletionTolerance = -1 }, amount: 10001, rc: "13", reasn: "completion-exceeds-preauth"},
		{name: "unknown pre-authorization", amount: 5000, change: func(tx *termclient.Txn) { tx.RRN = "999999999999" }, rc: "25", reasn: "preauth-not-found"},
		{name: "declined pre-authorization", preRC: "51", amount: 5000, change: func(tx *termclient.Txn) { tx.AuthCode = "000000" }, rc: "12", reasn: "preauth-not-approved"},
		{name: "reversed pre-authorization", amount: 5000, setup: func(h *harness, pre answer) {
			rev := h.purchase(10000)
			rev.MTI, rev.STAN = "0400", h.record(pre.RRN).STAN
			rev.Original = "0100" + rev.STAN + h.record(pre.RRN).DE7 + strings.Repeat("0", 22)
			rev.Time = h.clock.Now().Add(1e9)
			if a := h.do(rev); a.RC != "00" || !h.record(pre.RRN).Reversed() {
				h.t.Fatalf("reversal of the pre-authorization: %+v", a.Result)
			}
		}, rc: "12", reasn: "preauth-reversed"},
		{name: "a purchase, not a pre-authorization", amount: 5000, setup: nil, change: nil, rc: "12", reasn: "completion-original-not-a-preauth"},
		{name: "other card", amount: 5000, change: func(tx *termclient.Txn) { tx.PAN = "6212345678901242" }, rc: "12", reasn: "completion-other-card"},
		{name: "other merchant", amount: 5000, change: func(tx *termclient.Txn) { tx.MID = "M00000000000002" }, rc: "12", reasn: "completion-other-merchant"},
		{name: "wrong approval code", amount: 5000, change: func(tx *termclient.Txn) { tx.AuthCode = "654321" }, rc: "12", reasn: "completion-auth-code-mismatch"},
		{name: "refund processing code", amount: 5000, change: func(tx *termclient.Txn) { tx.ProcCode = message.PCRefund }, rc: "12", reasn: "completion-processing-code"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, func(_ *harness, cfg *Config) {
				if c.cfg != nil {
					c.cfg(cfg)
				}
			})
			if c.preRC != "" {
				h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer(c.preRC, ""), nil })
			}
			ptx := h.preauth(10000)
			if c.reasn == "completion-original-not-a-preauth" {
				ptx.MTI = "0200"
			}
			pre := h.do(ptx)
			if c.setup != nil {
				c.setup(h, pre)
			}
			tx := h.completion(pre, c.amount)
			if c.change != nil {
				c.change(&tx)
			}
			a := h.do(tx)
			if a.RC != c.rc || a.Reason != c.reasn {
				t.Fatalf("completion: %s %s, want %s %s", a.RC, a.Reason, c.rc, c.reasn)
			}
			if n := h.advices("0220", a.RRN); n != 0 {
				t.Errorf("%d advices queued for a refused completion", n)
			}
			if r := h.record(a.RRN); r.Type != "completion" || r.RC != c.rc {
				t.Errorf("refused completion journaled as %+v", r)
			}
		})
	}
}

// TestCompletionWithoutApprovalCode: DE 38 is required (30), as DE 37 is.
func TestCompletionWithoutApprovalCode(t *testing.T) {
	h := newHarness(t)
	pre := h.approvedPreauth(1000)
	for _, change := range []func(tx *termclient.Txn){func(tx *termclient.Txn) { tx.AuthCode = "" }, func(tx *termclient.Txn) { tx.RRN = "" }} {
		tx := h.completion(pre, 1000)
		change(&tx)
		if a := h.do(tx); a.RC != "30" {
			t.Errorf("completion without DE 37 or 38: %+v", a.Result)
		}
	}
	if n := len(h.q.all()); n != 0 {
		t.Errorf("%d advices queued", n)
	}
}

// TestCompletionIssuerDown: the completion does not need its issuer: with the link
// down it is answered 00 and its advice waits in the queue.
func TestCompletionIssuerDown(t *testing.T) {
	h := newHarness(t)
	pre := h.approvedPreauth(8000)
	h.bank.setUp(false)
	c := h.do(h.completion(pre, 8000))
	if c.RC != "00" || h.advices("0220", c.RRN) != 1 {
		t.Fatalf("completion with the issuer down: %+v, %d advices", c.Result, h.advices("0220", c.RRN))
	}
}

// TestCompletionAdviceNotQueued: a queue that refuses the advice gets the completion
// answered 96 and leaves the pre-authorization open (a later completion succeeds)
// once the completion's reversal is queued: the refused advice may be stored all the
// same (saf.Store), so the completion is reversed, its 0420 owed while the queue
// refuses it too, and queued by the housekeeping's next try (retryAdvices, every 5 s).
func TestCompletionAdviceNotQueued(t *testing.T) {
	h := newHarness(t)
	pre := h.approvedPreauth(8000)
	h.q.mu.Lock()
	h.q.fail = errScripted
	h.q.mu.Unlock()
	first := h.do(h.completion(pre, 8000))
	if first.RC != "96" || first.Reason != "completion-advice-not-queued" {
		t.Fatalf("completion without a queue: %+v", first.Result)
	}
	h.q.mu.Lock()
	h.q.fail = nil
	h.q.mu.Unlock()
	h.p.retryAdvices() // the housekeeping's tick
	if n := h.advices("0420", first.RRN); n != 1 {
		t.Fatalf("%d reversals of the completion answered 96 queued once the queue is back, want 1", n)
	}
	if c := h.do(h.completion(pre, 8000)); c.RC != "00" {
		t.Fatalf("completion once the queue is back: %+v", c.Result)
	}
}

// TestCompletionVoid: a void of the completion reverses it at the issuer (a 0420 after
// its 0220), takes it out of settlement and reopens the pre-authorization, which a new
// completion then captures.
func TestCompletionVoid(t *testing.T) {
	h := newHarness(t)
	pre := h.approvedPreauth(10000)
	c := h.do(h.completion(pre, 9000))
	if c.RC != "00" {
		t.Fatalf("completion: %+v", c.Result)
	}
	v := h.do(h.void(c, 9000))
	if v.RC != "00" {
		t.Fatalf("void of the completion: %+v", v.Result)
	}
	items := h.q.all()
	if len(items) != 2 || items[0].MTI != "0220" || items[1].MTI != "0420" || items[1].RRN != c.RRN || !strings.HasPrefix(items[1].Fields[90], "0220") {
		t.Fatalf("queued %+v: want the 0220 then its 0420", items)
	}
	if r := h.record(pre.RRN); r.CompletedBy != "" {
		t.Errorf("pre-authorization still marked completed by %s", r.CompletedBy)
	}
	tot, _ := h.p.TerminalTotals(context.Background(), testTID, journal.Query{})
	if tot.PurchaseCount != 0 {
		t.Errorf("totals after the void %+v", tot)
	}
	again := h.do(h.completion(pre, 10000))
	if again.RC != "00" || h.record(pre.RRN).CompletedBy != again.RRN {
		t.Fatalf("completion after the void: %+v", again.Result)
	}
	// A terminal reversal of the new completion reopens it too.
	r := h.purchase(10000)
	r.MTI, r.STAN = "0400", h.record(again.RRN).STAN
	r.Original = "0220" + r.STAN + h.record(again.RRN).DE7 + strings.Repeat("0", 22)
	r.Time = h.clock.Now().Add(1e9)
	if a := h.do(r); a.RC != "00" || !h.record(again.RRN).Reversed() || h.record(pre.RRN).CompletedBy != "" {
		t.Fatalf("reversal of the completion: %+v, pre-authorization completed by %q", a.Result, h.record(pre.RRN).CompletedBy)
	}
}

// TestPreauthReversalUnderCompletion: a pre-authorization whose completion stands is
// not reversed (a cup pre-authorization void, or a 0400): 12 preauth-completed; once
// the completion is voided, it is.
func TestPreauthReversalUnderCompletion(t *testing.T) {
	h := newHarness(t)
	pre := h.approvedPreauth(10000)
	c := h.do(h.completion(pre, 10000))
	reverse := func() answer {
		r := h.purchase(10000)
		r.MTI, r.STAN = "0400", h.record(pre.RRN).STAN
		r.Original = "0100" + r.STAN + h.record(pre.RRN).DE7 + strings.Repeat("0", 22)
		r.Time = h.clock.Now().Add(1e9)
		h.clock.Advance(2e9)
		return h.do(r)
	}
	if a := reverse(); a.RC != "12" || a.Reason != "preauth-completed" || h.record(pre.RRN).Reversed() {
		t.Fatalf("reversal of a completed pre-authorization: %+v", a.Result)
	}
	if v := h.do(h.void(c, 10000)); v.RC != "00" {
		t.Fatalf("void of the completion: %+v", v.Result)
	}
	if a := reverse(); a.RC != "00" || !h.record(pre.RRN).Reversed() {
		t.Fatalf("reversal of the reopened pre-authorization: %+v", a.Result)
	}
}

// TestCompletionOpenAtRestart: a completion the switch crashed on after writing it
// ahead (its advice may be queued) is settled by recovery as in doubt: answered 91 in
// the journal and reversed at the issuer (0420), and its pre-authorization, whose mark
// names it, is open again for a new completion.
func TestCompletionOpenAtRestart(t *testing.T) {
	h := newHarness(t)
	pre := h.approvedPreauth(10000)
	// What the completion leaves on disk when the process dies after its write-ahead
	// and the pre-authorization's mark.
	rec := &journal.Record{RRN: "000000009999", Received: h.clock.Now(), MTI: "0220", Type: "completion", ProcCode: "000000",
		TID: testTID, MID: testMID, STAN: "000777", DE7: "1201120000", Amount: 10000, Currency: "156", Issuer: "bank", OriginalRRN: pre.RRN,
		CardHash: h.p.CardHash(testPAN)}
	rec.AddEvent(journal.StateReceived, h.clock.Now(), "")
	rec.AddEvent(journal.StateSent, h.clock.Now(), "completion of "+pre.RRN)
	if err := h.j.Write(context.Background(), rec, true, true); err != nil {
		t.Fatal(err)
	}
	p := h.record(pre.RRN)
	p.CompletedBy = rec.RRN
	if err := h.j.Write(context.Background(), p, false, true); err != nil {
		t.Fatal(err)
	}
	if n, err := h.p.RecoverRecords(context.Background(), "test", "", func(ctx context.Context, fn func(*journal.Record) bool) error {
		return h.j.Scan(ctx, journal.Query{}, fn)
	}); err != nil || n == 0 {
		t.Fatalf("recovered %d: %v", n, err)
	}
	if r := h.record(rec.RRN); r.RC != "91" || !r.Reversed() || h.advices("0420", rec.RRN) != 1 {
		t.Fatalf("open completion after recovery: %+v", r)
	}
	if c := h.do(h.completion(pre, 10000)); c.RC != "00" {
		t.Fatalf("completion of the pre-authorization after recovery: %+v", c.Result)
	}
}

// TestCompletionAdviceOutcomeUnknown: a completion's 0220 whose enqueue returns an
// error is of unknown fate on a cluster (jsaf: no acknowledgement within the
// publish timeout; a replica may commit it when the quorum returns). The completion
// is answered 96 and its pre-authorization reopened, so the merchant completes it
// again: if the first 0220 was stored after all, the issuer gets two captures of
// one pre-authorization. Either the first advice is reversed (a 0420 of it), or
// the pre-authorization is not completed a second time.
func TestCompletionAdviceOutcomeUnknown(t *testing.T) {
	h := newHarness(t)
	pre := h.approvedPreauth(10000)
	h.q.mu.Lock()
	h.q.lost = errors.New("jsaf: no acknowledgement within the publish timeout: no quorum")
	h.q.mu.Unlock()
	first := h.do(h.completion(pre, 10000))
	if first.RC == "00" {
		t.Fatalf("first completion approved while its advice's enqueue failed")
	}
	h.q.mu.Lock()
	h.q.lost = nil
	h.q.mu.Unlock()
	second := h.do(h.completion(pre, 10000)) // the merchant tries again
	captures := 0
	for _, it := range h.q.all() {
		if it.MTI == "0220" && (it.RRN == first.RRN && h.advices("0420", first.RRN) == 0 || it.RRN == second.RRN && second.RC == "00") {
			captures++
		}
	}
	if captures > 1 {
		t.Fatalf("pre-authorization %s captured %d times at the issuer: the first completion (%s, answered %s %q) left its 0220 queued "+
			"without a reversal, and the second (%s) was approved with its own", pre.RRN, captures, first.RRN, first.RC, first.Reason, second.RRN)
	}
}

// completionInDoubt makes a completion of pre whose 0220 is stored although its
// enqueue failed (lost) and whose 0420 the queue then refuses: it is answered 96 and
// its reversal owed. The queue stays so (0420s refused) until the caller changes it.
func (h *harness) completionInDoubt(pre answer) answer {
	h.t.Helper()
	h.q.mu.Lock()
	h.q.lost = errors.New("jsaf: no acknowledgement within the publish timeout: no quorum")
	h.q.refuseMTI, h.q.refuse = "0420", errors.New("jsaf: no quorum")
	h.q.mu.Unlock()
	c := h.do(h.completion(pre, 10000))
	h.q.mu.Lock()
	h.q.lost = nil
	h.q.mu.Unlock()
	if c.RC != "96" || h.advices("0220", c.RRN) != 1 || h.advices("0420", c.RRN) != 0 {
		h.t.Fatalf("completion whose advice's fate is unknown: %+v, %d advices, %d reversals queued",
			c.Result, h.advices("0220", c.RRN), h.advices("0420", c.RRN))
	}
	if r := h.record(pre.RRN); r.CompletedBy != c.RRN {
		h.t.Fatalf("pre-authorization marked completed by %q, want the completion in doubt %s", r.CompletedBy, c.RRN)
	}
	return c
}

// TestCompletionInDoubtRefusedUntilReversed: a completion whose advice may be queued
// (its enqueue failed, the advice stored all the same) and whose reversal the queue
// does not take either keeps its pre-authorization from a second completion (96,
// nothing queued) until the reversal is queued; then the pre-authorization is open,
// and the issuer nets one capture.
func TestCompletionInDoubtRefusedUntilReversed(t *testing.T) {
	h := newHarness(t)
	pre := h.approvedPreauth(10000)
	first := h.completionInDoubt(pre)
	second := h.do(h.completion(pre, 10000))
	if second.RC != "96" || second.Reason != "preauth-completion-in-doubt" || h.advices("0220", second.RRN) != 0 {
		t.Fatalf("a completion while the first one's reversal is owed: %+v, %d advices queued (the issuer would capture twice)",
			second.Result, h.advices("0220", second.RRN))
	}
	h.p.retryAdvices() // the queue still refuses 0420s: still owed
	if h.advices("0420", first.RRN) != 0 || h.record(first.RRN).Reversed() {
		t.Fatal("the reversal of the completion in doubt queued while the queue refuses it")
	}
	h.q.mu.Lock()
	h.q.refuseMTI = ""
	h.q.mu.Unlock()
	h.p.retryAdvices()
	if n := h.advices("0420", first.RRN); n != 1 || !h.record(first.RRN).Reversed() {
		t.Fatalf("%d reversals of the completion in doubt queued (record reversed by %q), want 1", n, h.record(first.RRN).ReversedBy)
	}
	third := h.do(h.completion(pre, 10000))
	if third.RC != "00" || h.advices("0220", third.RRN) != 1 {
		t.Fatalf("completion once the one in doubt is reversed: %+v", third.Result)
	}
}

// TestCompletionInDoubtSurvivesRestart: the reversal of a completion in doubt, owed in
// memory, is queued by recovery after a restart (the record says its advice's fate was
// unknown and it is not reversed), as bca0e4f does for an issuer timeout's.
func TestCompletionInDoubtSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	pre := h.approvedPreauth(10000)
	c := h.completionInDoubt(pre)
	if b := h.do(h.purchase(500)); b.RC != "00" { // moves the checkpoint on
		t.Fatalf("later purchase answered %s", b.RC)
	}
	h2 := h.restart(t)
	if n := h.advices("0420", c.RRN); n != 1 || !h.record(c.RRN).Reversed() {
		t.Fatalf("after the restart %d reversals of the completion in doubt %s queued (reversed by %q), want 1: "+
			"its 0220 may reach the issuer", n, c.RRN, h.record(c.RRN).ReversedBy)
	}
	if r := h2.do(h2.completion(pre, 10000)); r.RC != "00" {
		t.Fatalf("completion after the restart: %+v", r.Result)
	}
}

// TestCompletionAdviceCard: a completion's advice carries the card's expiry (DE 14)
// and, when the terminal read the chip for the completion and sent its data (DE 55,
// F55 over cup), that chip data filtered as a stand-in's (no track, PAN or name),
// both sealed in the queue as the PAN is, never in its clear fields. A completion
// without chip data (the usual one) is advised without DE 55; chip data that does
// not parse is left out, the completion approved all the same.
func TestCompletionAdviceCard(t *testing.T) {
	h := newHarness(t)
	const arqc = "9F26081122334455667788" + "9F270180" + "9F3602000C"
	const track = "57106212345678901234D25122010000000F" + "5A086212345678901234" + "5F20055A48414E47"
	pre := h.approvedPreauth(10000)
	tx := h.completion(pre, 9000)
	tx.ICC = arqc + track
	c := h.do(tx)
	if c.RC != "00" {
		t.Fatalf("completion with chip data: %+v", c.Result)
	}
	pre2 := h.approvedPreauth(5000)
	plain := h.do(h.completion(pre2, 5000))
	pre3 := h.approvedPreauth(3000)
	bad := h.completion(pre3, 3000)
	bad.ICC = "9F2608AABB"
	unreadable := h.do(bad)
	if plain.RC != "00" || unreadable.RC != "00" {
		t.Fatalf("completions without chip data, with chip data that does not parse: %+v, %+v", plain.Result, unreadable.Result)
	}
	items := h.q.all()
	if len(items) != 3 || items[0].RRN != c.RRN || items[1].RRN != plain.RRN || items[2].RRN != unreadable.RRN {
		t.Fatalf("queued %+v; want the three completions' advices", items)
	}
	it := items[0]
	if strings.Contains(string(it.Binary[55]), "9F2608") || strings.Contains(string(it.Binary[55]), "6212345678901234") {
		t.Errorf("the queued advice holds the chip data in clear")
	}
	if icc, err := h.p.OpenSealedICC(it.Binary[55]); err != nil || icc != arqc {
		t.Errorf("completion advice DE 55 %q (%v), want %q: the cryptogram without track, PAN and name", icc, err, arqc)
	}
	for i, it := range items {
		if exp, err := h.p.OpenSealedExpiry(it.Binary[14]); err != nil || exp != tx.Expiry || it.Fields[14] != "" || it.Fields[55] != "" {
			t.Errorf("advice %d: DE 14 %q (%v), clear fields %v: want the expiry %q sealed, nothing of the card clear", i, exp, err, it.Fields, tx.Expiry)
		}
	}
	for _, it := range items[1:] {
		if _, ok := it.Binary[55]; ok {
			t.Errorf("advice of %s carries DE 55: its completion had none that parses", it.RRN)
		}
	}
}
