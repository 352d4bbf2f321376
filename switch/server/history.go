package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/pipeline"
)

// History is the journal as the risk tools read it (backtest, explain).
type History struct{ J *journal.Store }

// RiskRecord turns a journal record into what the risk tools replay. It reports false
// for records the rules never saw (declined before the rules, network messages). A
// record whose facts the counters saw but the rules never decided on is Undecided: a
// merchant-presented QR payment, and the probes (pipeline's probe: a purchase of
// nothing the switch declined itself, an offline advice the card approved), which
// run no rules and so journal no rule-set version. Until the sixth release of 6
// December 2026 the probes were not Undecided: a backtest evaluated candidate rules
// on them and counted their "declines" (of transactions the switch had declined
// already, or the card approved offline) as changed decisions, and explain explained
// them as if the rules had decided.
func RiskRecord(r *journal.Record) (risk.Record, bool) {
	if len(r.Facts) == 0 {
		return risk.Record{}, false
	}
	out := risk.Record{Time: r.Received, RRN: r.RRN, OriginalRRN: r.OriginalRRN, ReversedBy: r.ReversedBy, Refunded: int(r.Refunded), Label: r.Label,
		Undecided: r.Listener == pipeline.OrderListener || r.RuleSet == ""}
	var ok bool
	if out.Outcome, ok = pipeline.RecordInput(r, &out.Input); !ok {
		return out, false
	}
	out.Decision = risk.Decision{Action: risk.ActionAllow, Version: r.RuleSet}
	for _, h := range r.RuleHits {
		out.Decision.Hits = append(out.Decision.Hits, risk.Hit{Rule: h.ID, Action: risk.Action(h.Action), Mode: risk.Mode(h.Mode), Reason: h.Reason, Score: h.Score})
	}
	// The deciding hit is chosen as the engine chose it (journaled in the order
	// the engine made them): the first enforced hit of the strongest action. A
	// decline hit decided only if the switch declined for the rules (DecidedBy
	// risk): otherwise the request went on. Until the sixth release of 6
	// December 2026 a decline named the last enforced hit with the decline's
	// reason (an alert or review sharing it, cashout-repeat-card-score for
	// cashout-repeat-card) and a review or alert had no reason and the last
	// review: a backtest of the very rules in force listed those transactions as
	// changed decisions, and explain named the wrong rule.
	best := -1
	for i, h := range out.Decision.Hits {
		if h.Mode == risk.ModeShadow || (h.Action == risk.ActionDecline && r.DecidedBy != "risk") {
			continue
		}
		if best < 0 || h.Action.Rank() > out.Decision.Hits[best].Action.Rank() {
			best = i
		}
	}
	if best >= 0 {
		h := out.Decision.Hits[best]
		out.Decision.Action, out.Decision.Rule, out.Decision.Reason = h.Action, h.Rule, h.Reason
	}
	if r.DecidedBy == "risk" {
		// The answer as sent: its code and reason (the rule's, else its id).
		if best < 0 || out.Decision.Hits[best].Action != risk.ActionDecline {
			out.Decision.Rule = ""
		}
		out.Decision.Action, out.Decision.ResponseCode, out.Decision.Reason = risk.ActionDecline, r.RC, r.Reason
	}
	return out, true
}

// ReplayRecord is what a replay of the risk tools reads of a journal record
// (risk.History's Range): RiskRecord's, and for a terminal's approved reversal
// (0400), which the counters never saw (no facts), a risk.Record RetractOnly, so that
// the replay takes its original back as the live engine did. Until 7 December 2026
// the replays skipped those reversals: a reversed purchase still counted, and a
// backtest of the rules in force listed later requests as declined (a merchant's
// daily limit reached by reversed purchases), and explain showed counters too high.
func ReplayRecord(r *journal.Record) (risk.Record, bool) {
	if rec, ok := RiskRecord(r); ok {
		return rec, true
	}
	if r.MTI != "0400" || r.OriginalRRN == "" || !r.Approved() {
		return risk.Record{}, false
	}
	rec := risk.Record{Time: r.Received, RRN: r.RRN, OriginalRRN: r.OriginalRRN, RetractOnly: true,
		Outcome: risk.Outcome{Approved: true, ResponseCode: r.RC}}
	rec.Input.Txn.Type, rec.Input.Txn.Time = risk.RetractReversal, r.Received
	return rec, true
}

// Range implements risk.History.
func (h History) Range(ctx context.Context, from, to time.Time, fn func(risk.Record) error) error {
	var ferr error
	err := h.J.Scan(ctx, journal.Query{From: from, To: to}, func(r *journal.Record) bool {
		rec, ok := ReplayRecord(r)
		if !ok {
			return true
		}
		ferr = fn(rec)
		return ferr == nil
	})
	if ferr != nil {
		return ferr
	}
	return err
}

// ByRRN implements risk.History.
func (h History) ByRRN(_ context.Context, rrn string) (risk.Record, error) {
	r, err := h.J.Get(rrn)
	if errors.Is(err, journal.ErrNotFound) {
		return risk.Record{}, fmt.Errorf("%w: RRN %s", risk.ErrNotFound, rrn)
	}
	if err != nil {
		return risk.Record{}, err
	}
	rec, ok := RiskRecord(r)
	if !ok {
		return risk.Record{}, &risk.NotEvaluatedError{RRN: rrn, ResponseCode: r.RC, DecidedBy: r.DecidedBy, Reason: r.Reason}
	}
	return rec, nil
}
