package ruleset

import (
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
	"github.com/switchyard/switchyard/risk/state"
	"go.yaml.in/yaml/v3"
)

// Retraction kinds: what takes an observed transaction (its original) back out of
// the counters that retract that kind (a counter's retract key).
const (
	RetractVoid     = "void"     // a void (0200, DE 3 02xxxx) of an approved purchase
	RetractReversal = "reversal" // a terminal's 0400, or the switch's own reversal of an approval the terminal may not have had
	RetractRefund   = "refund"   // an approved refund of (part of) the purchase
)

// Retraction describes what undoes an observed transaction.
type Retraction struct {
	// Kind is RetractVoid, RetractReversal or RetractRefund.
	Kind string
	// Amount is taken off sum counters: at most the original's amount; 0 means all of it.
	Amount int
	// Partial is true when the original is only partly undone (a refund of part of
	// its amount): sums lose Amount, counts keep the transaction.
	Partial bool
}

func retractBit(kind string) uint8 {
	switch kind {
	case RetractVoid:
		return 1
	case RetractReversal:
		return 2
	case RetractRefund:
		return 4
	}
	return 0
}

// compileRetract reads a counter's retract key: a kind or a list of kinds, [] for
// none. Without the key, a count or sum of approved transactions only (a where
// filter that requires outcome.approved) retracts voids and reversals: what the
// terminal or the switch took back did not happen for the cardholder or the merchant.
func (c *compiler) compileRetract(pf *parsedFile, node *yaml.Node, ctr *Counter, d *counterDoc) bool {
	line := keyLine(node, "retract")
	var kinds []string
	switch d.Retract.Kind {
	case 0:
		if ctr.Measure != state.MeasureDistinctCards && requiresApproval(ctr.Where) {
			kinds = []string{RetractVoid, RetractReversal}
		}
	case yaml.ScalarNode:
		kinds = []string{d.Retract.Value}
	case yaml.SequenceNode:
		kinds = []string{}
		for _, e := range d.Retract.Content {
			kinds = append(kinds, e.Value)
		}
	default:
		c.errorf(pf.name, line, "counter %s: retract: want a list of void, reversal and refund, or [] for none", ctr.Name)
		return false
	}
	ok := true
	for _, k := range kinds {
		b := retractBit(k)
		switch {
		case b == 0:
			c.errorf(pf.name, line, "counter %s: retract: unknown kind %q (want void, reversal or refund)", ctr.Name, k)
			ok = false
		case ctr.retract&b != 0:
			c.errorf(pf.name, line, "counter %s: retract: %s given twice", ctr.Name, k)
			ok = false
		}
		ctr.retract |= b
	}
	if ctr.retract != 0 && ctr.Measure == state.MeasureDistinctCards {
		c.errorf(pf.name, line, "counter %s: retract: a distinct_cards counter cannot retract (a card seen stays seen); use a count or a sum", ctr.Name)
		ok = false
	}
	if len(kinds) > 0 {
		ctr.Retract = kinds
	}
	return ok
}

// requiresApproval reports whether a where filter passes approved transactions
// only: outcome.approved is one of the terms it joins with &&.
func requiresApproval(where string) bool {
	if !strings.Contains(where, "outcome.approved") {
		return false
	}
	tree, err := parseExpr(where)
	if err != nil {
		return false
	}
	var conj func(n ast.Node) bool
	conj = func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.BinaryNode:
			if x.Operator == "&&" || x.Operator == "and" {
				return conj(x.Left) || conj(x.Right)
			}
		case *ast.MemberNode:
			id, ok1 := x.Node.(*ast.IdentifierNode)
			prop, ok2 := x.Property.(*ast.StringNode)
			return ok1 && ok2 && id.Value == "outcome" && prop.Value == "approved"
		}
		return false
	}
	return conj(tree.Node)
}

// Retract takes orig, observed earlier with outcome out, back out of every counter
// that retracts r.Kind and that it fed (its where filter passes orig with out, as it
// did when orig was observed): its amount (r.Amount of it) from sums and, unless
// r.Partial, one from counts, in the bucket of orig's time. A bucket never goes below
// zero, and an original older than a counter's window is no longer in it. Call it
// once per retraction.
func (rs *RuleSet) Retract(orig *Input, out Outcome, r Retraction, store *state.Velocity) []RuleError {
	bit := retractBit(r.Kind)
	if bit == 0 || rs.retracts&bit == 0 || store == nil || orig.Txn.Time.IsZero() {
		return nil
	}
	amount := r.Amount
	if amount <= 0 || amount > orig.Txn.Amount {
		amount = orig.Txn.Amount
	}
	out.Unavailable = UnavailableCode(out.ResponseCode)
	var box any
	var m *vm.VM
	var errs []RuleError
	t := orig.Txn.Time.UnixNano()
	for _, c := range rs.Counters {
		if c.retract&bit == 0 {
			continue
		}
		key, ok := writeKey(c, orig)
		if !ok {
			continue
		}
		if c.where != nil {
			if box == nil {
				env := *orig
				env.bound()
				env.Txn.setLocal(rs.Location)
				env.Outcome = out
				env.Velocity = [MaxCounters]int{}
				env.Lists = state.ListFlags{}
				box = env
				m = vmPool.get()
				defer vmPool.put(m)
			}
			res, err := m.Run(c.where, box)
			if err != nil {
				errs = append(errs, RuleError{Rule: "counter " + c.Name, Error: "retract: " + err.Error()})
				continue
			}
			if pass, _ := res.(bool); !pass {
				continue
			}
		}
		store.Retract(&c.spec, key, t, amount, !r.Partial)
	}
	return errs
}

// Retracts reports whether some counter of rs retracts kind.
func (rs *RuleSet) Retracts(kind string) bool { return rs.retracts&retractBit(kind) != 0 }
