package risk

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/switchyard/switchyard/risk/state"
)

// ErrNotFound is returned (wrapped) by History.ByRRN for an unknown RRN.
var ErrNotFound = errors.New("no such transaction in the journal")

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
	if warmup < 0 {
		warmup = rs.MaxWindow()
	}
	store := state.NewVelocity(nil, 0, 0)
	profiles := DefaultProfileReplay(rs.Location)
	n := 0
	if warmup > 0 {
		err = h.Range(ctx, rec.Time.Add(-warmup), rec.Time, func(r Record) error {
			if r.RRN == rec.RRN {
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
	return &Explanation{Record: rec, Version: rs.Version, SameVersion: rs.Version == rec.Decision.Version,
		Replayed: n, Decision: d, Rules: traces}, nil
}
