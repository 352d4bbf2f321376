package risk

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/risk/state"
)

// ErrNotFound is returned (wrapped) by History.ByRRN for an unknown RRN.
var ErrNotFound = errors.New("no such transaction in the journal")

// NotEvaluatedError is History.ByRRN's error for a transaction the journal holds
// but the rules never saw: declined before them (binding, MAC, a blocked card) or a
// network message. It is ErrNotFound to errors.Is (there is nothing to explain) but
// says that the transaction exists and who answered it, where "no such transaction
// in the journal" sent an analyst looking for a mistyped RRN.
type NotEvaluatedError struct {
	RRN          string // DE 37
	ResponseCode string // DE 39 the terminal got ("" none)
	DecidedBy    string // who set it: binding, switch, issuer...
	Reason       string // why
}

// Error implements error.
func (e *NotEvaluatedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "RRN %s is in the journal but never reached the rules", e.RRN)
	if e.ResponseCode != "" || e.DecidedBy != "" {
		b.WriteString(" (answered")
		if e.ResponseCode != "" {
			b.WriteString(" " + e.ResponseCode)
		}
		if e.DecidedBy != "" {
			b.WriteString(" by " + e.DecidedBy)
		}
		if e.Reason != "" {
			b.WriteString(": " + e.Reason)
		}
		b.WriteString(")")
	}
	b.WriteString(": there is nothing to explain")
	return b.String()
}

// Is makes a NotEvaluatedError ErrNotFound.
func (e *NotEvaluatedError) Is(target error) bool { return target == ErrNotFound }

// Record is one journaled transaction as the risk tools need it.
type Record struct {
	// Time is when the switch received the request (UTC); same as Input.Txn.Time.
	Time time.Time `json:"time"`
	// RRN is DE 37.
	RRN string `json:"rrn"`
	// Input is the snapshot given to Evaluate (velocity is not stored: the
	// tools re-derive it by replaying the journal in time order).
	Input Input `json:"input"`
	// Outcome is the answer the terminal got.
	Outcome Outcome `json:"outcome"`
	// Decision is what the rules decided then, with every hit and the rule-set version.
	Decision Decision `json:"decision"`
	// OriginalRRN is, for a void, a reversal or a refund, the RRN of its original.
	OriginalRRN string `json:"original_rrn,omitempty"`
	// ReversedBy is what reversed this transaction, as the journal holds it now: the RRN
	// of a void or a terminal's reversal, or "switch:..." for the switch's own reversal.
	ReversedBy string `json:"reversed_by,omitempty"`
	// Refunded is how much of it approved refunds took back (minor units).
	Refunded int `json:"refunded,omitempty"`
	// Label is the ground truth the request carried (DE 48 LB, set by the bench's
	// generated traffic), "" for real traffic: backtest reports rates by label.
	Label string `json:"label,omitempty"`
	// Undecided marks a transaction the rules did not decide (a merchant-presented QR
	// payment, docs/qr.md; a purchase of nothing the switch declined itself; an
	// offline advice the card approved) but the velocity counters count: a replay
	// observes it, a backtest does not evaluate the rules on it, explain refuses it.
	Undecided bool `json:"undecided,omitempty"`
	// RetractOnly marks a record the counters never saw that took its original
	// back: a terminal's approved reversal (0400), which runs no rules and journals
	// no facts. A replay neither observes nor evaluates it; it retracts the original
	// (when the original names it in ReversedBy), as the live engine did when the
	// reversal was approved. Input.Txn holds only its type and time.
	RetractOnly bool `json:"retract_only,omitempty"`
}

// replayRetract takes back, in a replay of the journal through rs on store, what rec
// (just observed with out) retracts, as the live engine did: an approved void,
// reversal or refund retracts its original (read from h; a void or reversal only if
// the original names it in ReversedBy), and an approval the switch reversed itself
// (ReversedBy "switch:...") is retracted right after it is counted. refunded holds,
// per original, what the refunds replayed so far took back (the journal holds only
// the total of all of them): a refund is partial until they cover the original.
func replayRetract(ctx context.Context, h History, rs *RuleSet, store *state.Velocity, rec *Record, out Outcome, refunded map[string]int) {
	if !out.Approved {
		return
	}
	if strings.HasPrefix(rec.ReversedBy, "switch:") {
		if rs.Retracts(RetractReversal) {
			rs.Retract(&rec.Input, out, Retraction{Kind: RetractReversal}, store)
		}
		return
	}
	kind := rec.Input.Txn.Type
	if rec.OriginalRRN == "" || (kind != RetractVoid && kind != RetractReversal && kind != RetractRefund) || !rs.Retracts(kind) {
		return
	}
	orig, err := h.ByRRN(ctx, rec.OriginalRRN)
	if err != nil {
		return
	}
	r := Retraction{Kind: kind}
	if kind == RetractRefund {
		refunded[orig.RRN] += rec.Input.Txn.Amount
		r.Amount, r.Partial = rec.Input.Txn.Amount, refunded[orig.RRN] < orig.Input.Txn.Amount
	} else if orig.ReversedBy != rec.RRN {
		return
	}
	if orig.Input.Txn.Time.IsZero() {
		orig.Input.Txn.Time = orig.Time
	}
	oout := orig.Outcome
	oout.RiskDeclined = orig.Decision.Declined()
	rs.Retract(&orig.Input, oout, r, store)
}

// History is the journal as the backtest and explain tools read it. The
// switch's journal implements it.
type History interface {
	// Range calls fn for every transaction with from <= Time < to, in time
	// order, and stops at the first error fn returns.
	Range(ctx context.Context, from, to time.Time, fn func(Record) error) error
	// ByRRN returns the transaction with the given RRN, or an error wrapping ErrNotFound.
	ByRRN(ctx context.Context, rrn string) (Record, error)
}

// Explanation tells which rules hit one journaled transaction and the values
// they saw.
type Explanation struct {
	Record Record `json:"record"` // the journaled transaction
	// Version is the version of the rule set used to re-evaluate.
	Version string `json:"version"`
	// SameVersion is true when that is the version that decided at the time.
	SameVersion bool `json:"same_version"`
	// Replayed is how many earlier transactions were replayed to rebuild the counters.
	Replayed int `json:"replayed"`
	// Decision is the re-evaluated decision.
	Decision Decision `json:"decision"`
	// Rules trace every rule, hit or not.
	Rules []RuleTrace `json:"rules"`
}

// Explain finds the transaction rrn in h, rebuilds the velocity counters by
// replaying the warmup before it (negative: the set's longest window), and
// traces every rule of rs over it.
func Explain(ctx context.Context, h History, rs *RuleSet, rrn string, warmup time.Duration) (*Explanation, error) {
	rec, err := h.ByRRN(ctx, rrn)
	if err != nil {
		return nil, fmt.Errorf("explain RRN %s: %w", rrn, err)
	}
	if rec.Undecided {
		// Counted, but not decided by the rules (Record.Undecided): nothing to
		// explain, and re-evaluating it would show a decision never made.
		return nil, fmt.Errorf("explain RRN %s: %w", rrn, &NotEvaluatedError{RRN: rrn, ResponseCode: rec.Outcome.ResponseCode})
	}
	if warmup < 0 {
		warmup = rs.MaxWindow()
	}
	store := state.NewVelocity(nil, 0, 0)
	profiles := DefaultProfileReplay(rs.Location)
	refunded := map[string]int{}
	n := 0
	if warmup > 0 {
		err = h.Range(ctx, rec.Time.Add(-warmup), rec.Time, func(r Record) error {
			if r.RRN == rec.RRN {
				return nil
			}
			if r.RetractOnly {
				replayRetract(ctx, h, rs, store, &r, r.Outcome, refunded)
				return nil
			}
			if r.Input.Txn.Time.IsZero() {
				r.Input.Txn.Time = r.Time
			}
			if err := profiles.fill(ctx, h, &r.Input, false); err != nil {
				return err
			}
			out := r.Outcome
			out.RiskDeclined = r.Decision.Declined()
			rs.Observe(&r.Input, out, store)
			replayRetract(ctx, h, rs, store, &r, out, refunded)
			n++
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("explain RRN %s: replay the journal before it: %w", rrn, err)
		}
	}
	if rec.Input.Txn.Time.IsZero() {
		rec.Input.Txn.Time = rec.Time
	}
	if err := profiles.fill(ctx, h, &rec.Input, true); err != nil {
		return nil, fmt.Errorf("explain RRN %s: %w", rrn, err)
	}
	d, traces := rs.Trace(&rec.Input, store, rs.Lists())
	sort.SliceStable(traces, func(i, j int) bool { return traces[i].Hit && !traces[j].Hit })
	// The values the traces show are masked (RefValues); so are the free text
	// a terminal sent and the run-time errors, which can quote it
	// (int(device.id) on track data): explain's text and JSON carry no card number.
	maskDevice(&rec.Input.Device)
	rec.Input.Terminal.AppVersion, _ = carddata.MaskText(rec.Input.Terminal.AppVersion) // DE 48 AV, free text too
	for i := range d.Errors {
		d.Errors[i].Error, _ = carddata.MaskText(d.Errors[i].Error)
	}
	for i := range traces {
		traces[i].Error, _ = carddata.MaskText(traces[i].Error)
	}
	return &Explanation{Record: rec, Version: rs.Version, SameVersion: rs.Version == rec.Decision.Version,
		Replayed: n, Decision: d, Rules: traces}, nil
}

// maskDevice masks the card numbers in the free text of d a terminal sent (DE 48
// DI, the findings), in place: a copy of the journal's for output. The findings
// slice is replaced, not written through.
func maskDevice(d *Device) {
	d.ID, _ = carddata.MaskText(d.ID)
	var out []string
	for i, f := range d.Findings {
		if m, n := carddata.MaskText(f); n > 0 {
			if out == nil {
				out = slices.Clone(d.Findings)
			}
			out[i] = m
		}
	}
	if out != nil {
		d.Findings = out
	}
}
