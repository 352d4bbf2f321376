package ruleset

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"github.com/switchyard/switchyard/risk/state"
	"go.yaml.in/yaml/v3"
)

// exprPos maps a position inside an expression (1-based line, 0-based
// column) to file line and 1-based column, given the YAML node holding the
// expression and the file's lines.
func exprPos(n *yaml.Node, lines []string, line, col int) (int, int) {
	if n == nil {
		return 0, 0
	}
	switch n.Style {
	case yaml.FoldedStyle:
		// Folding joined the block's lines with spaces: walk them.
		if line == 1 {
			pos := 0
			for i := n.Line; i < len(lines); i++ {
				t := strings.TrimSpace(lines[i])
				if t == "" {
					continue
				}
				l := len([]rune(t))
				if col < pos+l+1 {
					indent := len([]rune(lines[i])) - len([]rune(strings.TrimLeft(lines[i], " ")))
					return i + 1, indent + col - pos + 1
				}
				pos += l + 1
			}
		}
		return n.Line + 1, 0
	case yaml.LiteralStyle:
		if line >= 1 && n.Line+line-1 < len(lines) {
			first := lines[n.Line] // the block's indentation is its first line's
			indent := len([]rune(first)) - len([]rune(strings.TrimLeft(first, " ")))
			return n.Line + line, indent + col + 1
		}
		return n.Line + line, 0
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line <= 1 {
			return n.Line, n.Column + 1 + col
		}
	default:
		if line <= 1 {
			return n.Line, n.Column + col
		}
	}
	return n.Line + line - 1, 0
}

type exprKind int

const (
	exprCondition exprKind = iota
	exprScore
	exprWhere
)

// vmPool holds VMs for reuse: a VM must not be shared by goroutines.
var vmPool = newVMPool()

// envRoots are the top-level names of the expression environment.
var envRoots = map[string]bool{"txn": true, "terminal": true, "merchant": true, "binding": true, "device": true, "velocity": true, "lists": true, "outcome": true}

// compileExpr checks and compiles one expression. node is the YAML node that
// holds it, for file:line in problems. cost is the bound of one run's work
// (exprCost); an expression over MaxExprCost is a problem.
func compileExpr(src string, kind exprKind, fileName string, node *yaml.Node, lines []string, rs *RuleSet, lists *state.Lists, what string) (prog *vm.Program, cost int64, problems []Problem) {
	report := func(loc file.Location, msg string) {
		line, col := 1, 0
		for i, r := range []rune(src) {
			if i >= loc.From {
				break
			}
			if r == '\n' {
				line++
				col = 0
			} else {
				col++
			}
		}
		fl, fc := exprPos(node, lines, line, col)
		problems = append(problems, Problem{File: fileName, Line: fl, Column: fc, Message: what + ": " + msg})
	}
	if msg, at := exprBounds(src); msg != "" {
		report(file.Location{From: utf8.RuneCountInString(src[:at])}, msg)
		return nil, 0, problems
	}
	tree, err := parser.Parse(src)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			fl, fc := exprPos(node, lines, fe.Line, fe.Column)
			return nil, 0, []Problem{{File: fileName, Line: fl, Column: fc, Message: what + ": " + cleanExprMessage(fe.Message) + fe.Snippet}}
		}
		return nil, 0, []Problem{{File: fileName, Line: exprLine(node), Message: what + ": " + err.Error()}}
	}
	index := map[string]int{}
	if rs != nil {
		for _, ctr := range rs.Counters {
			index[ctr.Name] = ctr.Index
		}
	}
	lint := &linter{kind: kind, index: index, report: report}
	if rs != nil {
		lint.bad = rs.badCounters
	}
	ast.Walk(&tree.Node, lint)
	if lint.velocityMembers < lint.velocityIdents {
		report(file.Location{}, "velocity is read as velocity.COUNTER, with COUNTER a declared counter")
	}
	if len(problems) > 0 {
		return nil, 0, problems
	}
	// Bound the work before compiling: the compiler's optimizer folds
	// constant parts, running them.
	cost = exprCost(tree.Node, report)
	if len(problems) > 0 {
		return nil, 0, problems
	}
	if cost > MaxExprCost {
		report(file.Location{}, fmt.Sprintf("costs up to %s per transaction, more than %d: it runs in the authorization path of every transaction; loop over less (ranges of at most %d, no loop inside a loop over the input), build smaller strings",
			costString(cost), MaxExprCost, MaxRange))
		return nil, 0, problems
	}
	opts := exprOptions(lists)
	opts = append(opts, expr.Patch(&velocityPatcher{index: index}))
	switch kind {
	case exprScore:
		opts = append(opts, expr.AsInt())
	default:
		opts = append(opts, expr.AsBool())
	}
	prog, err = expr.Compile(src, opts...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			fl, fc := exprPos(node, lines, fe.Line, fe.Column)
			return nil, 0, []Problem{{File: fileName, Line: fl, Column: fc, Message: what + ": " + cleanExprMessage(fe.Message) + fe.Snippet}}
		}
		return nil, 0, []Problem{{File: fileName, Line: exprLine(node), Message: what + ": " + cleanExprMessage(err.Error())}}
	}
	return prog, cost, nil
}

// costString writes a cost estimate, "more than 10^15" when it saturated.
func costString(c int64) string {
	if c >= costCap {
		return "more than 10^15"
	}
	return strconv.FormatInt(c, 10)
}

func exprLine(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

var exprTypeNames = strings.NewReplacer(
	"ruleset.Input", "the rule environment", "ruleset.Txn", "txn", "ruleset.Terminal", "terminal",
	"ruleset.Profile", "merchant.profile", "ruleset.Merchant", "merchant", "ruleset.Binding", "binding", "ruleset.Device", "device",
	"state.ListFlags", "lists", "ruleset.Outcome", "outcome", "[64]int", "velocity")

func cleanExprMessage(m string) string { return exprTypeNames.Replace(m) }

// velocityPatcher rewrites velocity.NAME to velocity[INDEX] so that a rule
// reads a counter by its slot, with no lookup by name at run time.
type velocityPatcher struct{ index map[string]int }

// Visit implements ast.Visitor.
func (p *velocityPatcher) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "velocity" {
		return
	}
	s, ok := m.Property.(*ast.StringNode)
	if !ok {
		return
	}
	if i, ok := p.index[s.Value]; ok {
		ast.Patch(node, &ast.MemberNode{Node: id, Property: &ast.IntegerNode{Value: i}})
	}
}

// refsOf lists the environment paths an expression reads, like "txn.amount".
func refsOf(src string) []string {
	tree, err := parseExpr(src)
	if err != nil {
		return nil
	}
	c := &refCollector{seen: map[string]bool{}}
	ast.Walk(&tree.Node, c)
	sort.Strings(c.refs)
	return c.refs
}

type refCollector struct {
	refs []string
	seen map[string]bool
}

// Visit implements ast.Visitor: it records member accesses on the roots.
func (c *refCollector) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || !envRoots[id.Value] {
		return
	}
	s, ok := m.Property.(*ast.StringNode)
	if !ok {
		return
	}
	ref := id.Value + "." + s.Value
	if !c.seen[ref] {
		c.seen[ref] = true
		c.refs = append(c.refs, ref)
	}
}

func mergeRefs(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string{}, a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
