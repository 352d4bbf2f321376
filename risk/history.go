package risk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
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

// RefValue is the value one input name had for a rule.
type RefValue struct {
	Name  string `json:"name"`            // like txn.amount
	Value any    `json:"value"`           // what it was
	Error string `json:"error,omitempty"` // why it could not be read
}

// Text formats the value for people.
func (v RefValue) Text() string {
	if v.Error != "" {
		return "error(" + v.Error + ")"
	}
	switch x := v.Value.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case time.Time:
		return x.Format(time.RFC3339)
	case []string:
		return "[" + strings.Join(x, ",") + "]"
	}
	b, err := json.Marshal(v.Value)
	if err != nil {
		return fmt.Sprint(v.Value)
	}
	return string(b)
}

// RuleTrace is how one rule fared on one transaction.
type RuleTrace struct {
	Rule   string     `json:"rule"`             // rule id
	File   string     `json:"file"`             // rule file
	Line   int        `json:"line"`             // line of the rule
	Mode   Mode       `json:"mode"`             // enforce or shadow
	Action Action     `json:"action"`           // the rule's action
	Hit    bool       `json:"hit"`              // whether it hit
	Score  int        `json:"score,omitempty"`  // its score if it hit
	Reason string     `json:"reason,omitempty"` // its reason if it hit
	Error  string     `json:"error,omitempty"`  // run-time error
	Values []RefValue `json:"values"`           // every name it reads, with its value
}

// refProgs caches the small programs that read one input name.
var refProgs sync.Map // key: version + "\x00" + ref -> *vm.Program

func (rs *RuleSet) refProgram(ref string) (*vm.Program, error) {
	key := rs.Version + "\x00" + ref
	if p, ok := refProgs.Load(key); ok {
		return p.(*vm.Program), nil
	}
	index := map[string]int{}
	for _, c := range rs.Counters {
		index[c.Name] = c.Index
	}
	opts := append(exprOptions(rs.lists), expr.Patch(&velocityPatcher{index: index}))
	p, err := expr.Compile(ref, opts...)
	if err != nil {
		return nil, err
	}
	refProgs.Store(key, p)
	return p, nil
}

// refValues evaluates each name r reads over a prepared environment.
func (rs *RuleSet) refValues(r *Rule, env Input) []RefValue {
	box := any(env)
	m := vmPool.get()
	defer vmPool.put(m)
	out := make([]RefValue, 0, len(r.Refs))
	for _, ref := range r.Refs {
		v := RefValue{Name: ref}
		p, err := rs.refProgram(ref)
		if err == nil {
			v.Value, err = m.Run(p, box)
		}
		if err != nil {
			v.Error = err.Error()
		}
		out = append(out, v)
	}
	return out
}

// Trace evaluates in like Evaluate would with the given counter store and
// reports every rule with the values it saw.
func (rs *RuleSet) trace(in *Input, store *velocityStore, lists *Lists) (Decision, []RuleTrace) {
	env := rs.prepare(in, store, lists, nil)
	d := rs.decide(env)
	traces := make([]RuleTrace, 0, len(rs.Rules))
	for _, r := range rs.Rules {
		t := RuleTrace{Rule: r.ID, File: r.File, Line: r.Line, Mode: r.Mode, Action: r.Action, Values: rs.refValues(r, env)}
		if h, ok := d.Hit(r.ID); ok {
			t.Hit, t.Score, t.Reason = true, h.Score, h.Reason
		}
		for _, e := range d.Errors {
			if e.Rule == r.ID {
				t.Error = e.Error
			}
		}
		traces = append(traces, t)
	}
	return d, traces
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
	store := newVelocityStore(nil, 0, 0)
	n := 0
	if warmup > 0 {
		err = h.Range(ctx, rec.Time.Add(-warmup), rec.Time, func(r Record) error {
			if r.RRN == rec.RRN {
				return nil
			}
			out := r.Outcome
			out.RiskDeclined = r.Decision.Declined()
			rs.observe(&r.Input, out, store)
			n++
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("explain RRN %s: replay the journal before it: %w", rrn, err)
		}
	}
	d, traces := rs.trace(&rec.Input, store, rs.lists)
	sort.SliceStable(traces, func(i, j int) bool { return traces[i].Hit && !traces[j].Hit })
	return &Explanation{Record: rec, Version: rs.Version, SameVersion: rs.Version == rec.Decision.Version,
		Replayed: n, Decision: d, Rules: traces}, nil
}
