package risk

import (
	"context"
	"fmt"
	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/risk/state"
	"sort"
	"time"
)

// BacktestOptions configure Backtest.
type BacktestOptions struct {
	// From and To bound the transactions reported on: From <= Time < To.
	From, To time.Time
	// Warmup is replayed before From, counted but not reported, so that the
	// counters start warm. Negative means the rule set's longest window.
	Warmup time.Duration
	// Progress, when set, is called now and then with the share done (0 to 1)
	// and the transactions read so far.
	Progress func(done float64, read int)
	// MaxChanges bounds the changed decisions listed (0 = MaxListedChanges, which
	// also bounds any larger value); BacktestReport.Changed counts them all.
	MaxChanges int
	// Profiles recompute merchant.profile as it was (nil: DefaultProfileReplay
	// in the rule set's zone; Off: the tiers' defaults).
	Profiles *ProfileReplay
}

// MaxListedChanges is the most changed decisions a backtest lists, whatever
// MaxChanges asks: each takes about 300 bytes, and a candidate that changes a share
// of a long range's decisions would otherwise hold them all in memory (a month at
// 3,000 transactions/s changing 1% of them is 78 million). The count
// (BacktestReport.Changed) and the per-rule figures cover every transaction.
const MaxListedChanges = 100_000

// maxListedChanges is MaxListedChanges, lowered by tests.
var maxListedChanges = MaxListedChanges

// RuleStats is one rule's (or score threshold's) results in a backtest.
type RuleStats struct {
	Rule   string `json:"rule"`   // rule or thresholds id
	Mode   Mode   `json:"mode"`   // enforce or shadow
	Action Action `json:"action"` // its action (a threshold's strongest)
	// Hits counts the transactions the rule hit.
	Hits int `json:"hits"`
	// Decided counts the transactions where the rule was the deciding one.
	Decided int `json:"decided"`
	// WouldDecline counts hits of a decline rule, shadow ones included:
	// what the rule alone would decline.
	WouldDecline int `json:"would_decline"`
	// WouldDeclineAmount sums their amounts (minor units) whatever their
	// currency: a figure only when the transactions are of one currency.
	// WouldDeclineAmounts has the sum of each currency (DE 49; "" unknown).
	WouldDeclineAmount  int64            `json:"would_decline_amount"`
	WouldDeclineAmounts map[string]int64 `json:"would_decline_amounts,omitempty"`
	// HitsBefore counts the transactions the rule hit when they happened.
	HitsBefore int `json:"hits_before"`
	// Errors counts the transactions on which the rule's expression (or its
	// score) failed at run time: it counted as not hit there.
	Errors int `json:"errors,omitempty"`
	// FirstError is the first of them: the RRN and the error.
	FirstError string `json:"first_error,omitempty"`
}

// DecisionSummary is the part of a decision a backtest compares.
type DecisionSummary struct {
	Action       Action `json:"action"`                  // allow when nothing acted
	ResponseCode string `json:"response_code,omitempty"` // DE 39 of a decline
	Rule         string `json:"rule,omitempty"`          // the deciding rule
	Reason       string `json:"reason,omitempty"`        // its reason
}

func summarize(d *Decision) DecisionSummary {
	a := d.Action
	if a == "" {
		a = ActionAllow
	}
	return DecisionSummary{Action: a, ResponseCode: d.ResponseCode, Rule: d.Rule, Reason: d.Reason}
}

// Change is one transaction whose decision differs under the candidate rules.
type Change struct {
	Time     time.Time       `json:"time"`                  // of the transaction
	RRN      string          `json:"rrn"`                   // DE 37
	Terminal string          `json:"terminal"`              // DE 41
	Merchant string          `json:"merchant"`              // DE 42
	TxnType  string          `json:"txn_type"`              // purchase, refund, ...
	Amount   int             `json:"amount"`                // minor units of Currency
	Currency string          `json:"currency,omitempty"`    // DE 49
	Outcome  string          `json:"outcome_response_code"` // DE 39 the terminal got
	Before   DecisionSummary `json:"before"`                // the decision as it happened
	After    DecisionSummary `json:"after"`                 // the candidate rules' decision
}

// BacktestReport is the result of Backtest.
type BacktestReport struct {
	Version      string    `json:"version"`             // of the candidate rules
	From         time.Time `json:"from"`                // first reported time
	To           time.Time `json:"to"`                  // end (exclusive)
	Warmup       string    `json:"warmup"`              // replayed before From
	WarmupTxns   int       `json:"warmup_transactions"` // transactions in the warm-up
	Transactions int       `json:"transactions"`        // transactions reported on
	// DeclinesBefore and DeclinesAfter count risk declines as they happened and
	// under the candidate rules; the amounts sum them whatever their currency (a
	// figure only when the transactions are of one currency), the maps by
	// currency (DE 49; "" unknown). Until the third release of 6 December 2026
	// only the sums across currencies were reported, yen added to fen.
	DeclinesBefore       int              `json:"declines_before"`
	DeclinesAfter        int              `json:"declines_after"`        // see DeclinesBefore
	DeclineAmountBefore  int64            `json:"decline_amount_before"` // minor units
	DeclineAmountAfter   int64            `json:"decline_amount_after"`  // minor units
	DeclineAmountsBefore map[string]int64 `json:"decline_amounts_before,omitempty"`
	DeclineAmountsAfter  map[string]int64 `json:"decline_amounts_after,omitempty"`
	Changed              int              `json:"changed"` // transactions whose decision differs
	// RunErrors counts the rules' and counters' run-time errors over the replay
	// (warm-up included); CounterErrors are the counters' (a where that failed
	// leaves the transaction out of that counter), by counter name.
	RunErrors     int            `json:"run_errors"`
	CounterErrors map[string]int `json:"counter_errors,omitempty"`
	Rules         []*RuleStats   `json:"rules"`      // per rule and score threshold
	Changes       []Change       `json:"changes"`    // the first changed decisions (MaxChanges)
	Elapsed       time.Duration  `json:"elapsed_ns"` // how long the replay took
	// Labels are the outcomes by the ground-truth label the requests carried (the
	// bench's DE 48 LB), in label order; empty when no reported record has a label.
	Labels []*LabelStats `json:"labels,omitempty"`
}

// LabelStats are the reported transactions of one ground-truth label: for a fraud
// scenario Rate is the candidate rules' catch rate, for legitimate traffic their
// false-positive rate.
type LabelStats struct {
	Label    string `json:"label"`
	Attempts int    `json:"attempts"` // reported transactions with the label
	// DeclinedBefore is how many the rules declined as it happened.
	DeclinedBefore int `json:"declined_before"`
	// Declined is how many the candidate rules decline; Rate is Declined / Attempts.
	Declined int     `json:"declined"`
	Rate     float64 `json:"rate"`
	// DeclinedOther is how many of the rest the issuer or the switch declined as it
	// happened (unknown, so not counted, for those the old rules declined);
	// StoppedRate is (Declined + DeclinedOther) / Attempts: what the terminal would see.
	DeclinedOther int     `json:"declined_other"`
	StoppedRate   float64 `json:"stopped_rate"`
}

func (l *LabelStats) add(before, after, approvedOtherwise bool) {
	l.Attempts++
	if before {
		l.DeclinedBefore++
	}
	switch {
	case after:
		l.Declined++
	case !approvedOtherwise:
		l.DeclinedOther++
	}
}

// Backtest replays the journal through rs in time order, on fresh counters,
// and reports per rule the hits and would-be declines, and every decision
// that differs from what happened.
//
// Counters learn each replayed transaction with the outcome it would have
// had: declined with the candidate's code when the candidate declines, as it
// happened otherwise (a transaction the old rules declined but the candidate
// would pass counts as approved: the issuer's answer is unknown).
func Backtest(ctx context.Context, h History, rs *RuleSet, opts BacktestOptions) (*BacktestReport, error) {
	if !opts.To.After(opts.From) {
		return nil, fmt.Errorf("backtest: --to %s must be after --from %s", opts.To.Format(time.RFC3339), opts.From.Format(time.RFC3339))
	}
	warmup := opts.Warmup
	if warmup < 0 {
		warmup = rs.MaxWindow()
	}
	start := time.Now()
	rep := &BacktestReport{Version: rs.Version, From: opts.From, To: opts.To, Warmup: warmup.String(), Changes: []Change{}}
	stats := map[string]*RuleStats{}
	for _, r := range rs.Rules {
		st := &RuleStats{Rule: r.ID, Mode: r.Mode, Action: r.Action}
		stats[r.ID] = st
		rep.Rules = append(rep.Rules, st)
	}
	for _, t := range rs.Thresholds {
		if t != nil {
			st := &RuleStats{Rule: t.ID, Mode: t.Mode, Action: ActionDecline}
			if t.Decline == 0 {
				st.Action = ActionReview
			}
			stats[t.ID] = st
			rep.Rules = append(rep.Rules, st)
		}
	}
	store := state.NewVelocity(nil, 0, 0)
	profiles := opts.Profiles
	if profiles == nil {
		profiles = DefaultProfileReplay(rs.Location)
	}
	refunded := map[string]int{} // per original: what the refunds replayed so far took back
	observe := func(in *Input, out Outcome) {
		for _, e := range rs.Observe(in, out, store) {
			rep.RunErrors++
			if rep.CounterErrors == nil {
				rep.CounterErrors = map[string]int{}
			}
			rep.CounterErrors[e.Rule]++
		}
	}
	labels := map[string]*LabelStats{}
	listed := opts.MaxChanges
	if listed <= 0 || listed > maxListedChanges {
		listed = maxListedChanges
	}
	begin := opts.From.Add(-warmup)
	span := opts.To.Sub(begin)
	read := 0
	lastProgress := time.Time{}
	err := h.Range(ctx, begin, opts.To, func(rec Record) error {
		read++
		if opts.Progress != nil && read%256 == 0 && time.Since(lastProgress) > 100*time.Millisecond {
			lastProgress = time.Now()
			opts.Progress(float64(rec.Time.Sub(begin))/float64(span), read)
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if rec.RetractOnly {
			replayRetract(ctx, h, rs, store, &rec, rec.Outcome, refunded)
			return nil
		}
		in := &rec.Input
		if in.Txn.Time.IsZero() {
			in.Txn.Time = rec.Time
		}
		if err := profiles.fill(ctx, h, in, !rec.Time.Before(opts.From)); err != nil {
			return err
		}
		if rec.Time.Before(opts.From) || rec.Undecided {
			out := rec.Outcome
			out.RiskDeclined = rec.Decision.Declined()
			observe(in, out)
			replayRetract(ctx, h, rs, store, &rec, out, refunded)
			if rec.Time.Before(opts.From) {
				rep.WarmupTxns++
			}
			return nil
		}
		rep.Transactions++
		d := rs.Evaluate(in, store, rs.Lists())
		for _, e := range d.Errors {
			rep.RunErrors++
			if st := stats[e.Rule]; st != nil {
				if st.Errors++; st.FirstError == "" {
					// The error can quote what a terminal sent (int(device.id)
					// on track data): masked, as the engine logs it.
					msg, _ := carddata.MaskText(e.Error)
					st.FirstError = "RRN " + rec.RRN + ": " + msg
				}
			}
		}
		for _, hit := range d.Hits {
			st := stats[hit.Rule]
			if st == nil {
				continue
			}
			st.Hits++
			if hit.Action == ActionDecline {
				st.WouldDecline++
				st.WouldDeclineAmount += int64(in.Txn.Amount)
				st.WouldDeclineAmounts = addAmount(st.WouldDeclineAmounts, in.Txn.Currency, in.Txn.Amount)
			}
		}
		for _, hit := range rec.Decision.Hits {
			if st := stats[hit.Rule]; st != nil {
				st.HitsBefore++
			}
		}
		if st := stats[d.Rule]; st != nil {
			st.Decided++
		}
		if rec.Decision.Declined() {
			rep.DeclinesBefore++
			rep.DeclineAmountBefore += int64(in.Txn.Amount)
			rep.DeclineAmountsBefore = addAmount(rep.DeclineAmountsBefore, in.Txn.Currency, in.Txn.Amount)
		}
		out := rec.Outcome
		if d.Declined() {
			rep.DeclinesAfter++
			rep.DeclineAmountAfter += int64(in.Txn.Amount)
			rep.DeclineAmountsAfter = addAmount(rep.DeclineAmountsAfter, in.Txn.Currency, in.Txn.Amount)
			out = Outcome{Approved: false, ResponseCode: d.ResponseCode, RiskDeclined: true}
		} else if rec.Decision.Declined() {
			out = Outcome{Approved: true, ResponseCode: "00"}
		} else {
			out.RiskDeclined = false
		}
		if rec.Label != "" {
			l := labels[rec.Label]
			if l == nil {
				l = &LabelStats{Label: rec.Label}
				labels[rec.Label] = l
			}
			l.add(rec.Decision.Declined(), d.Declined(), out.Approved)
		}
		before, after := summarize(&rec.Decision), summarize(&d)
		if before != after {
			rep.Changed++
			if len(rep.Changes) < listed {
				rep.Changes = append(rep.Changes, Change{Time: rec.Time, RRN: rec.RRN, Terminal: in.Terminal.ID,
					Merchant: in.Merchant.ID, TxnType: in.Txn.Type, Amount: in.Txn.Amount, Currency: in.Txn.Currency,
					Outcome: rec.Outcome.ResponseCode, Before: before, After: after})
			}
		}
		observe(in, out)
		replayRetract(ctx, h, rs, store, &rec, out, refunded)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backtest: read the journal from %s to %s: %w", begin.Format(time.RFC3339), opts.To.Format(time.RFC3339), err)
	}
	if opts.Progress != nil {
		opts.Progress(1, read)
	}
	for _, l := range labels {
		l.Rate = float64(l.Declined) / float64(l.Attempts)
		l.StoppedRate = float64(l.Declined+l.DeclinedOther) / float64(l.Attempts)
		rep.Labels = append(rep.Labels, l)
	}
	sort.Slice(rep.Labels, func(i, j int) bool { return rep.Labels[i].Label < rep.Labels[j].Label })
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// addAmount adds amount to m's sum of currency cur, making m when nil.
func addAmount(m map[string]int64, cur string, amount int) map[string]int64 {
	if m == nil {
		m = map[string]int64{}
	}
	m[cur] += int64(amount)
	return m
}
