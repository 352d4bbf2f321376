package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
)

// decidingRules share a reason between a decline and a later alert (as the default
// pack's cashout-repeat-card and cashout-repeat-card-score do), have two reviews
// that hit together, an allow rule and a shadow decline.
const decidingRules = `rules:
  - {id: big-decline, condition: "txn.amount >= 1000", action: decline, response_code: "59", reason: shared}
  - {id: big-alert, condition: "txn.amount >= 1000", action: alert, reason: shared}
  - {id: mid-review-1, condition: "txn.amount >= 500", action: review, reason: mid-1}
  - {id: mid-review-2, condition: "txn.amount >= 500", action: review}
  - {id: seven-allow, condition: "txn.amount == 7", action: allow, reason: seven}
  - {id: any-shadow, condition: "txn.amount >= 100", action: decline, mode: shadow, reason: shadow}
`

// memRecords is a journal of risk records in time order, for risk.Backtest.
type memRecords []risk.Record

func (m memRecords) Range(_ context.Context, from, to time.Time, fn func(risk.Record) error) error {
	for _, r := range m {
		if !r.Time.Before(from) && r.Time.Before(to) {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m memRecords) ByRRN(_ context.Context, rrn string) (risk.Record, error) {
	for _, r := range m {
		if r.RRN == rrn {
			return r, nil
		}
	}
	return risk.Record{}, fmt.Errorf("%w: RRN %s", risk.ErrNotFound, rrn)
}

// TestRiskRecordDecidingRule checks that the decision read back from a journal
// record (what backtest compares with and explain shows as "then") is the one the
// engine made: the first enforced hit of the strongest action, with its reason, not
// the last hit sharing the decline's reason nor a review without its reason; and so
// that a backtest of the rules in force changes no decision.
func TestRiskRecordDecidingRule(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(decidingRules), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := risk.New(dir, risk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	start := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	var recs memRecords
	for i, amount := range []int{7, 50, 100, 600, 1500} {
		var in risk.Input
		in.Txn = risk.Txn{MTI: "0200", ProcCode: "000000", Type: risk.TxnPurchase, Amount: amount, Currency: "156", BIN: "476173",
			CardHash: fmt.Sprintf("card%d", i), RRN: fmt.Sprintf("%012d", i+1), Time: start.Add(time.Duration(i) * time.Minute)}
		in.Terminal = risk.Terminal{ID: "T0000001", Kind: "pos", Status: "active"}
		in.Merchant = risk.Merchant{ID: "000000000000001", MCC: "5411", Tier: "standard", Status: "active"}
		d := e.Evaluate(&in)
		// As the pipeline journals it (assess, decline).
		jr := &journal.Record{RRN: in.Txn.RRN, MTI: "0200", ProcCode: "000000", Currency: "156", Amount: int64(amount), CardHash: in.Txn.CardHash,
			Received: in.Txn.Time, RuleSet: d.Version, Facts: in.AppendBinary(nil), RC: "00", DecidedBy: "issuer"}
		for _, h := range d.Hits {
			jr.RuleHits = append(jr.RuleHits, journal.RuleHit{ID: h.Rule, Action: string(h.Action), Mode: string(h.Mode), Reason: h.Reason, Score: h.Score})
		}
		if d.Declined() {
			jr.RC, jr.DecidedBy, jr.Reason = d.ResponseCode, "risk", d.Reason
		}
		rec, ok := RiskRecord(jr)
		if !ok {
			t.Fatalf("amount %d: record not replayable", amount)
		}
		got := rec.Decision
		if got.Action != d.Action || got.Rule != d.Rule || got.Reason != d.Reason || got.ResponseCode != d.ResponseCode {
			t.Errorf("amount %d: read back %s %q by %q (%q), the engine decided %s %q by %q (%q)", amount,
				got.Action, got.ResponseCode, got.Rule, got.Reason, d.Action, d.ResponseCode, d.Rule, d.Reason)
		}
		recs = append(recs, rec)
	}
	rep, err := risk.Backtest(context.Background(), recs, e.RuleSet(), risk.BacktestOptions{From: start, To: start.Add(time.Hour), Warmup: 0})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Transactions != 5 || rep.Changed != 0 {
		t.Errorf("backtest of the rules in force: %d transaction(s), %d changed decision(s), want 5 and 0: %+v", rep.Transactions, rep.Changed, rep.Changes)
	}
}

// TestHistoryByRRNNotEvaluated: explain of a transaction declined before the rules
// says that it is in the journal, who answered it and why, rather than "no such
// transaction in the journal" (which sent the analyst looking for a mistyped RRN);
// an unknown RRN still says that.
func TestHistoryByRRNNotEvaluated(t *testing.T) {
	j, write := settleJournal(t)
	rec := write(&journal.Record{Received: time.Now().UTC(), MTI: "0200", Type: "purchase", RC: "05", DecidedBy: "binding", Reason: "terminal-unbound", Amount: 1000, Currency: "156"})
	rs, err := risk.Load("../../rules", risk.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = risk.Explain(context.Background(), History{J: j}, rs, rec.RRN, 0)
	want := "RRN " + rec.RRN + " is in the journal but never reached the rules (answered 05 by binding: terminal-unbound)"
	if !errors.Is(err, risk.ErrNotFound) || err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "no such transaction") {
		t.Errorf("explain of a transaction declined before the rules: %v, want ErrNotFound saying %q", err, want)
	}
	_, err = risk.Explain(context.Background(), History{J: j}, rs, "999999999999", 0)
	if !errors.Is(err, risk.ErrNotFound) || !strings.Contains(fmt.Sprint(err), "no such transaction in the journal") {
		t.Errorf("explain of an unknown RRN: %v", err)
	}
}

// TestProbeRecordsNotDecided: a request the switch declined itself before the rules
// but whose facts it journaled for the counters (pipeline's probe: a purchase of
// nothing, answered 13; an offline advice) is counted by a backtest's replay but not
// evaluated: a candidate rule that would "decline" it changes no decision, since the
// rules never decided it; and explain says the rules never saw it.
func TestProbeRecordsNotDecided(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(`counters:
  - {name: card_attempts, dimension: card, window: 1h}
rules:
  - {id: everything, condition: "txn.amount >= 0", action: decline}
  - {id: second-attempt, condition: "velocity.card_attempts >= 1", action: review}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := risk.Load(dir, risk.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	var in risk.Input
	in.Txn = risk.Txn{MTI: "0200", ProcCode: "000000", Type: risk.TxnPurchase, Currency: "156", BIN: "476173", CardHash: "card1", RRN: "000000000001", Time: start}
	in.Terminal = risk.Terminal{ID: "T0000001", Kind: "pos", Status: "active"}
	in.Merchant = risk.Merchant{ID: "000000000000001", MCC: "5411", Tier: "standard", Status: "active"}
	// As the pipeline journals a probe: facts, no rule-set version, no hits.
	probe := &journal.Record{RRN: in.Txn.RRN, MTI: "0200", ProcCode: "000000", Currency: "156", CardHash: "card1", Received: start,
		Facts: in.AppendBinary(nil), RC: "13", DecidedBy: "switch", Reason: "invalid-amount"}
	rec, ok := RiskRecord(probe)
	if !ok || !rec.Undecided {
		t.Fatalf("a probe's record: replayable %v, undecided %v; want both", ok, rec.Undecided)
	}
	// A purchase the rules decided, a minute later, with the same card.
	in.Txn.RRN, in.Txn.Time, in.Txn.Amount = "000000000002", start.Add(time.Minute), 1000
	decided := &journal.Record{RRN: in.Txn.RRN, MTI: "0200", ProcCode: "000000", Currency: "156", CardHash: "card1", Received: in.Txn.Time, Amount: 1000,
		Facts: in.AppendBinary(nil), RC: "00", DecidedBy: "issuer", RuleSet: "v1"}
	rec2, ok := RiskRecord(decided)
	if !ok || rec2.Undecided {
		t.Fatalf("a decided record: replayable %v, undecided %v", ok, rec2.Undecided)
	}
	rep, err := risk.Backtest(context.Background(), memRecords{rec, rec2}, rs, risk.BacktestOptions{From: start, To: start.Add(time.Hour), Warmup: 0})
	if err != nil {
		t.Fatal(err)
	}
	var second *risk.RuleStats
	for _, r := range rep.Rules {
		if r.Rule == "second-attempt" {
			second = r
		}
	}
	if rep.Transactions != 1 || rep.DeclinesAfter != 1 || rep.Changed != 1 || len(rep.Changes) != 1 || rep.Changes[0].RRN != "000000000002" || second == nil || second.Hits != 1 {
		t.Errorf("backtest: %d transaction(s), %d declines after, %d changed (%+v), second-attempt %+v; want the decided one alone reported, the probe counted", rep.Transactions, rep.DeclinesAfter, rep.Changed, rep.Changes, second)
	}
	_, err = risk.Explain(context.Background(), memRecords{rec, rec2}, rs, "000000000001", 0)
	if !errors.Is(err, risk.ErrNotFound) || !strings.Contains(fmt.Sprint(err), "never reached the rules (answered 13)") {
		t.Errorf("explain of a probe: %v", err)
	}
}

// TestReplayTakesReversalsBack: a terminal's approved reversal (0400) runs no rules
// and journals no facts, but the live engine took its original back out of the
// counters when it was approved; a replay must too. Until 7 December 2026 the
// backtest and explain skipped it: the reversed purchase still counted, and a
// backtest of the rules in force listed the card's next purchase as declined.
func TestReplayTakesReversalsBack(t *testing.T) {
	dir := t.TempDir()
	const rules = `counters:
  - {name: card_sum_30m, dimension: card, measure: sum, window: 30m, where: 'outcome.approved && txn.txn_type == "purchase"'}
rules:
  - {id: split, condition: 'txn.txn_type == "purchase" && velocity.card_sum_30m + txn.amount > 1500', action: decline}
`
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := risk.New(dir, risk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	j, write := settleJournal(t)
	start := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	// purchase evaluates and journals a purchase of amount as the pipeline does
	// (the live engine's counters observe it when approved).
	purchase := func(rrn string, at time.Time, reversedBy string) (*journal.Record, risk.Decision) {
		var in risk.Input
		in.Txn = risk.Txn{MTI: "0200", ProcCode: "000000", Type: risk.TxnPurchase, Amount: 1000, Currency: "156", BIN: "476173",
			CardHash: "card-1", RRN: rrn, Time: at}
		in.Terminal = risk.Terminal{ID: "T0000001", Kind: "pos", Status: "active"}
		in.Merchant = risk.Merchant{ID: "000000000000001", MCC: "5411", Tier: "standard", Status: "active"}
		d := e.Evaluate(&in)
		rec := &journal.Record{RRN: rrn, Received: at, MTI: "0200", ProcCode: "000000", Type: "purchase", Currency: "156", Amount: 1000,
			CardHash: "card-1", RuleSet: d.Version, Facts: in.AppendBinary(nil), RC: "00", DecidedBy: "issuer", ReversedBy: reversedBy}
		if d.Declined() {
			rec.RC, rec.DecidedBy, rec.Reason = "05", "risk", d.Reason
		} else {
			e.Observe(&in, risk.Outcome{Approved: true, ResponseCode: "00"})
		}
		return write(rec), d
	}
	first, _ := purchase("000000000001", start, "000000000002")
	// The reversal as the pipeline journals it: no facts, its original named; the
	// live engine retracts the original.
	write(&journal.Record{RRN: "000000000002", Received: start.Add(time.Minute), MTI: "0400", Type: "reversal", Amount: 1000,
		Currency: "156", OriginalRRN: first.RRN, RC: "00", DecidedBy: "switch"})
	if orig, err := RiskRecord(first); !err {
		t.Fatal("the purchase is not replayable")
	} else {
		e.Retract(&orig.Input, orig.Outcome, risk.Retraction{Kind: risk.RetractReversal})
	}
	second, d := purchase("000000000003", start.Add(2*time.Minute), "")
	if d.Declined() {
		t.Fatalf("the live engine declined the card's purchase after its reversed one: %+v", d)
	}
	h := History{J: j}
	rep, err := risk.Backtest(t.Context(), h, e.RuleSet(), risk.BacktestOptions{From: start, To: start.Add(time.Hour), Warmup: 0})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Transactions != 2 || rep.Changed != 0 {
		t.Errorf("backtest of the rules in force: %d transaction(s), %d changed decision(s), want 2 and 0: %+v", rep.Transactions, rep.Changed, rep.Changes)
	}
	x, err := risk.Explain(t.Context(), h, e.RuleSet(), second.RRN, -1)
	if err != nil {
		t.Fatal(err)
	}
	if x.Decision.Declined() {
		t.Errorf("explain of the purchase after the reversed one: %s by %q; want allow", x.Decision.Action, x.Decision.Rule)
	}
	// The reversal itself is still nothing explain explains.
	if _, err := risk.Explain(t.Context(), h, e.RuleSet(), "000000000002", -1); !errors.Is(err, risk.ErrNotFound) {
		t.Errorf("explain of the reversal: %v; want it never reached the rules", err)
	}
}
