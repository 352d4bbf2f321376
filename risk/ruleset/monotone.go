package ruleset

import (
	"github.com/expr-lang/expr/ast"
)

// mono is how an expression's value moves as one counter's value grows, the
// others and the rest of the input fixed: for a condition, false < true.
// A count read in doubt (state.Doubt) may be short of the true one, never over
// it, so the true value lies between the value read and doubtProbe: for a
// monotone expression, its two ends bound every result between.
type mono uint8

// The directions an expression can move in.
const (
	// monoConst: it does not read the counter.
	monoConst mono = iota
	// monoInc: it never decreases as the counter grows (a condition that
	// hits keeps hitting: velocity.x >= 3).
	monoInc
	// monoDec: it never increases as the counter grows (a condition that
	// misses keeps missing: velocity.x < 3, velocity.x == 0).
	monoDec
	// monoAny: unknown, or both ways (a band: velocity.x > 3 && velocity.x < 10).
	monoAny
)

// flip is m for the negation of the expression.
func (m mono) flip() mono {
	switch m {
	case monoInc:
		return monoDec
	case monoDec:
		return monoInc
	}
	return m
}

// join is the direction of a monotone combination (+, &&, ||) of a and b.
func join(a, b mono) mono {
	switch {
	case a == monoConst:
		return b
	case b == monoConst, a == b:
		return a
	}
	return monoAny
}

// maxScale bounds the literal a counter may be multiplied by in a monotone
// expression: doubtProbe (2^40) times it stays well inside an int64, where a
// larger product could wrap around and turn the direction over.
const maxScale = 1 << 20

// monotone is how the expression src moves with each counter of mask (by index
// in rs.Counters): inc holds the counters it never decreases with, dec those it
// never increases with; a counter it does not read is in both, one it moves
// both ways (or unknown) with in neither. An expression that does not parse
// (its compilation reports that) is in neither for every counter.
func monotone(src string, rs *RuleSet, mask uint64) (inc, dec uint64) {
	if mask == 0 {
		return 0, 0
	}
	tree, err := parseExpr(src)
	if err != nil {
		return 0, 0
	}
	for _, c := range rs.Counters {
		bit := uint64(1) << c.Index
		if mask&bit == 0 {
			continue
		}
		a := &monoAnalysis{name: c.Name, vars: map[string]mono{}}
		switch a.of(tree.Node) {
		case monoConst:
			inc |= bit
			dec |= bit
		case monoInc:
			inc |= bit
		case monoDec:
			dec |= bit
		}
	}
	return inc, dec
}

// monoAnalysis works out the direction of an expression in one counter.
type monoAnalysis struct {
	name string          // the counter: velocity.NAME
	vars map[string]mono // the let variables in scope, by name
}

// of is the direction of n.
func (a *monoAnalysis) of(n ast.Node) mono {
	switch n := n.(type) {
	case *ast.NilNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.StringNode, *ast.BytesNode, *ast.ConstantNode:
		return monoConst
	case *ast.IdentifierNode:
		return a.vars[n.Value] // monoConst for the environment's names
	case *ast.MemberNode:
		if a.isCounter(n) {
			return monoInc
		}
		return a.opaque(n)
	case *ast.UnaryNode:
		m := a.of(n.Node)
		switch n.Operator {
		case "!", "not", "-":
			return m.flip()
		case "+":
			return m
		}
		return a.opaque(n)
	case *ast.BinaryNode:
		return a.binary(n)
	case *ast.ConditionalNode:
		if a.of(n.Cond) != monoConst {
			return monoAny
		}
		return join(a.of(n.Exp1), a.of(n.Exp2))
	case *ast.VariableDeclaratorNode:
		v := a.of(n.Value)
		old, had := a.vars[n.Name]
		a.vars[n.Name] = v
		m := a.of(n.Expr)
		if had {
			a.vars[n.Name] = old
		} else {
			delete(a.vars, n.Name)
		}
		return m
	case *ast.BuiltinNode:
		switch n.Name {
		case "min", "max", "float", "int", "ceil", "floor", "round":
			m := monoConst
			for _, arg := range n.Arguments {
				if _, list := arg.(*ast.ArrayNode); list {
					return a.opaque(n)
				}
				m = join(m, a.of(arg))
			}
			return m
		}
	}
	return a.opaque(n)
}

// binary is the direction of a binary operation.
func (a *monoAnalysis) binary(n *ast.BinaryNode) mono {
	l, r := a.of(n.Left), a.of(n.Right)
	if l == monoConst && r == monoConst {
		return monoConst
	}
	switch n.Operator {
	case "&&", "and", "||", "or", "+":
		return join(l, r)
	case "-":
		return join(l, r.flip())
	case ">", ">=":
		return join(l, r.flip())
	case "<", "<=":
		return join(l.flip(), r)
	case "==", "!=":
		// A count is never negative: velocity.x == 0 is velocity.x <= 0.
		if (a.isCounterNode(n.Left) && isZero(n.Right)) || (a.isCounterNode(n.Right) && isZero(n.Left)) {
			if n.Operator == "==" {
				return monoDec
			}
			return monoInc
		}
	case "*":
		if c, ok := literal(n.Right); ok && l != monoConst {
			return scaled(l, c)
		}
		if c, ok := literal(n.Left); ok && r != monoConst {
			return scaled(r, c)
		}
	case "/":
		if c, ok := literal(n.Right); ok && c != 0 && l != monoConst {
			return scaled(l, c)
		}
	}
	return monoAny
}

// scaled is the direction of m times the literal c.
func scaled(m mono, c float64) mono {
	switch {
	case c == 0:
		return monoConst
	case c > maxScale || c < -maxScale:
		return monoAny
	case c < 0:
		return m.flip()
	}
	return m
}

// literal is the value of a number written in the expression (-2 included).
func literal(n ast.Node) (float64, bool) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return float64(n.Value), true
	case *ast.FloatNode:
		return n.Value, true
	case *ast.UnaryNode:
		if v, ok := literal(n.Node); ok && (n.Operator == "-" || n.Operator == "+") {
			if n.Operator == "-" {
				v = -v
			}
			return v, true
		}
	}
	return 0, false
}

// isZero reports whether n is the literal 0.
func isZero(n ast.Node) bool {
	v, ok := literal(n)
	return ok && v == 0
}

// isCounter reports whether m is velocity.NAME of the analysed counter.
func (a *monoAnalysis) isCounter(m *ast.MemberNode) bool {
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "velocity" {
		return false
	}
	s, ok := m.Property.(*ast.StringNode)
	return ok && s.Value == a.name
}

// isCounterNode reports whether n is velocity.NAME of the analysed counter.
func (a *monoAnalysis) isCounterNode(n ast.Node) bool {
	m, ok := n.(*ast.MemberNode)
	return ok && a.isCounter(m)
}

// opaque is the direction of an expression the analysis does not look into:
// monoConst when nothing in it reads the counter (directly or through a let
// variable that does), else monoAny.
func (a *monoAnalysis) opaque(n ast.Node) mono {
	d := &dependence{a: a}
	ast.Walk(&n, d)
	if d.reads {
		return monoAny
	}
	return monoConst
}

// dependence finds a read of the analysed counter in an expression.
type dependence struct {
	a     *monoAnalysis
	reads bool
}

// Visit implements ast.Visitor.
func (d *dependence) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.MemberNode:
		if d.a.isCounter(n) {
			d.reads = true
		}
	case *ast.IdentifierNode:
		if d.a.vars[n.Value] != monoConst {
			d.reads = true
		}
	}
}
