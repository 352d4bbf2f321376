package ruleset

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/switchyard/switchyard/risk/state"
)

// linter checks what the expr type checker cannot: counter names, names that
// are not available in this kind of expression, constant arguments.
type linter struct {
	kind            exprKind
	index           map[string]int
	bad             map[string]bool // counters declared with a problem, reported at their declaration
	report          func(file.Location, string)
	velocityIdents  int
	velocityMembers int
}

// Visit implements ast.Visitor.
func (l *linter) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		switch n.Value {
		case "velocity":
			l.velocityIdents++
		case "lists":
			if l.kind == exprWhere {
				l.report(n.Location(), "lists is not available in a counter's where filter")
			}
		case "outcome":
			if l.kind != exprWhere {
				l.report(n.Location(), "outcome is only available in a counter's where filter (rules run before the answer is known)")
			}
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if !ok || id.Value != "velocity" {
			return
		}
		s, ok := n.Property.(*ast.StringNode)
		if !ok {
			return
		}
		l.velocityMembers++
		if _, ok := l.index[s.Value]; !ok && l.bad[s.Value] {
			l.report(n.Location(), fmt.Sprintf("counter velocity.%s is declared with a problem (reported at its declaration)", s.Value))
		} else if !ok {
			names := make([]string, 0, len(l.index))
			for k := range l.index {
				names = append(names, k)
			}
			sort.Strings(names)
			declared := "no counters are declared"
			if len(names) > 0 {
				declared = "declared: " + strings.Join(names, ", ")
			}
			l.report(n.Location(), fmt.Sprintf("unknown counter velocity.%s (%s)", s.Value, declared))
		}
	case *ast.BinaryNode:
		// A division by a constant zero: % panics on every transaction that reaches
		// it (the rule errors), / gives ±Inf or NaN and the comparison after it a
		// constant answer. The compiler folds only what is constant on both sides,
		// so txn.amount % (2 - 2) would pass the check and fail in production.
		if n.Operator == "/" || n.Operator == "%" {
			if v, ok := constNumber(n.Right); ok && v == 0 {
				l.report(n.Right.Location(), fmt.Sprintf("division by zero: the right of %s is a constant 0", n.Operator))
			}
		}
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok {
			return
		}
		switch id.Value {
		case "time_between":
			for _, a := range n.Arguments[min(1, len(n.Arguments)):] {
				if s, ok := a.(*ast.StringNode); ok && !validHHMM(s.Value) {
					l.report(a.Location(), fmt.Sprintf("time_between: %q is not a time like \"22:30\"", s.Value))
				}
			}
		case "hour_between":
			for _, a := range n.Arguments[min(1, len(n.Arguments)):] {
				if v, ok := a.(*ast.IntegerNode); ok && (v.Value < 0 || v.Value > 24) {
					l.report(a.Location(), fmt.Sprintf("hour_between: hour %d is not in 0..24", v.Value))
				}
			}
		case "in_list":
			if len(n.Arguments) >= 2 {
				if s, ok := n.Arguments[1].(*ast.StringNode); ok && !state.ValidListKind(s.Value) {
					l.report(n.Arguments[1].Location(), fmt.Sprintf("in_list: unknown kind %q (want bin, card, terminal, merchant or country)", s.Value))
				}
			}
		}
	}
}

func validHHMM(s string) bool {
	if len(s) != 5 || s[2] != ':' {
		return false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	return err1 == nil && err2 == nil && h >= 0 && h <= 24 && m >= 0 && m < 60 && (h < 24 || m == 0)
}

// constNumber returns the value of node when it is a number written with
// literals, signs and + - * alone (as (2 - 2) or -0.0), and false otherwise;
// literal reads the plain numbers.
func constNumber(node ast.Node) (float64, bool) {
	if v, ok := literal(node); ok {
		return v, true
	}
	switch n := node.(type) {
	case *ast.UnaryNode: // a sign before a bracket: -(2 - 2)
		if v, ok := constNumber(n.Node); ok && n.Operator == "-" {
			return -v, true
		} else if ok && n.Operator == "+" {
			return v, true
		}
	case *ast.BinaryNode:
		a, okA := constNumber(n.Left)
		b, okB := constNumber(n.Right)
		if !okA || !okB {
			return 0, false
		}
		switch n.Operator {
		case "+":
			return a + b, true
		case "-":
			return a - b, true
		case "*":
			return a * b, true
		}
	}
	return 0, false
}
