package ruleset

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/risk/state"
)

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

// RefValues evaluates each name r reads over an environment made by Prepare.
// Card numbers in string values are masked (first 6, last 4; track data to the
// masked PAN): the input holds no PAN, but strings a terminal sends (device.id
// from DE 48 DI, terminal.app_version) are free text, and these values go to
// explain, review cases and failing rule tests.
func (rs *RuleSet) RefValues(r *Rule, env Input) []RefValue {
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
		v.Value = maskValue(v.Value)
		out = append(out, v)
	}
	return out
}

// Trace evaluates in like Evaluate would with the given counter store and
// reports every rule with the values it saw.
func (rs *RuleSet) Trace(in *Input, store *state.Velocity, lists *state.Lists) (Decision, []RuleTrace) {
	env, dbt := rs.prepare(in, store, lists, nil)
	d := rs.decide(env, dbt)
	traces := make([]RuleTrace, 0, len(rs.Rules))
	for _, r := range rs.Rules {
		t := RuleTrace{Rule: r.ID, File: r.File, Line: r.Line, Mode: r.Mode, Action: r.Action, Values: rs.RefValues(r, env)}
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

// maskValue masks card numbers in a string or list of strings (RefValues).
func maskValue(v any) any {
	switch x := v.(type) {
	case string:
		m, _ := carddata.MaskText(x)
		return m
	case []string:
		var out []string
		for i, s := range x {
			if m, n := carddata.MaskText(s); n > 0 {
				if out == nil {
					out = slices.Clone(x)
				}
				out[i] = m
			}
		}
		if out != nil {
			return out
		}
	}
	return v
}
