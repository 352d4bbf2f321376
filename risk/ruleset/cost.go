package ruleset

import (
	"cmp"
	"fmt"
	"math/bits"
	"reflect"
	"regexp/syntax"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
)

// The cost check bounds, at load time, the work one run of an expression can
// do: expressions run in the authorization path of every transaction, and
// expr lets a condition loop (all, map, reduce over a range), build strings
// (+, repeat, join) and compile regular expressions. Without a bound a rule
// that passes `rules check` could take seconds per transaction
// (`let a = 1..99; any(a, any(a, any(a, any(a, # < 0))))`) or exhaust the
// switch's memory, which is a fatal error no recover catches (a string doubled
// by a chain of lets). expr's own VM memory budget counts range and array
// elements only, not the bytes of strings, and nothing bounds loops.
//
// The estimate is an upper bound in units of about one VM instruction, one
// loop iteration or one byte copied, over the parsed expression: a value's
// size (bytes of a string, elements of an array) is bounded from the
// constants and from what the input can hold (a string of the input at most
// MaxInputString bytes, a list at most MaxInputList elements), a loop costs
// its collection's size times its body, a let variable keeps its value's
// size. It is computed once per load and costs nothing per transaction.
const (
	// MaxExprCost is the most an expression (a condition, a score, a
	// counter's where) may cost.
	MaxExprCost = 20_000
	// MaxSetCost is the most all the expressions of a rule set together may
	// cost, each rule and counter filter counting costPerProgram besides: the
	// default pack's bound is 9,978 (8,688 until costPerProgram was 25).
	MaxSetCost = 100_000
	// MaxRange is the most elements a range (1..N) may have.
	MaxRange = 1000
	// MaxInputString is the bound the cost check takes for a string of the
	// input (DE 48 values are at most 999 bytes); the evaluation holds every
	// string of the input to it (Input.bound).
	MaxInputString = 999
	// MaxInputList is the bound it takes for a list of the input
	// (device.findings: comma-separated in DE 48, where 999 bytes give at most
	// 500, and a signed attestation's up to 4 more); the evaluation keeps the
	// first MaxInputList (Input.bound).
	MaxInputList = 500
	// costPerProgram is what running one program costs beyond its
	// instructions (the VM's set-up, the rule's program and constants brought
	// into the CPU's caches), in the same units: BenchmarkProgramCost measured a
	// rule `txn.amount == N` (6 units of expression) at 20-34 units among 3,000
	// to 5,000 such rules. Until 7 December 2026 it was 10, and 5,000 of them
	// passed at 80,000 while taking 2.4-5.7 ms a transaction, 10 to 20 times the
	// default pack.
	costPerProgram = 25
	// costCap keeps the arithmetic of estimates from overflowing.
	costCap = int64(1) << 50
)

// est is an upper bound of an expression's cost and of its value's size.
type est struct {
	cost int64 // work, in units of about one instruction or byte
	size int64 // bytes of a string, elements of an array (1 for a scalar)
}

// sat adds or multiplies without passing costCap.
func satAdd(a, b int64) int64 { return min(a+b, costCap) }

func satMul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > uint64(costCap) {
		return costCap
	}
	return int64(lo)
}

// coster computes est for the nodes of one expression; problems it finds
// (a range without constant bounds, a pattern built at run time) go to report.
type coster struct {
	vars   []costVar // let variables in scope, innermost last
	ptrs   []ptrScope
	report func(file.Location, string)
}

type costVar struct {
	name string
	size int64
}

// ptrScope is what #, #index and #acc stand for inside one predicate.
type ptrScope struct {
	elem int64 // size bound of # (an element)
	acc  int64 // size bound of #acc (reduce)
}

// exprCost is the cost estimate of a parsed expression.
func exprCost(n ast.Node, report func(file.Location, string)) int64 {
	c := &coster{report: report}
	return c.node(n).cost
}

func (c *coster) node(n ast.Node) est {
	switch n := n.(type) {
	case nil:
		return est{}
	case *ast.NilNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return est{1, 1}
	case *ast.StringNode:
		return est{1, int64(len(n.Value)) + 1}
	case *ast.BytesNode:
		return est{1, int64(len(n.Value)) + 1}
	case *ast.ConstantNode:
		v := reflect.ValueOf(n.Value)
		switch v.Kind() {
		case reflect.String, reflect.Slice, reflect.Array, reflect.Map:
			return est{1, int64(v.Len()) + 1}
		}
		return est{1, 1}
	case *ast.IdentifierNode:
		for i := len(c.vars) - 1; i >= 0; i-- {
			if c.vars[i].name == n.Value {
				return est{1, c.vars[i].size}
			}
		}
		return est{1, envSize(n.Value, nil)}
	case *ast.PointerNode:
		if len(c.ptrs) == 0 {
			return est{1, 1}
		}
		p := c.ptrs[len(c.ptrs)-1]
		switch n.Name {
		case "index":
			return est{1, 1}
		case "acc":
			return est{1, p.acc}
		}
		return est{1, p.elem}
	case *ast.ChainNode:
		return c.node(n.Node)
	case *ast.UnaryNode:
		e := c.node(n.Node)
		return est{satAdd(e.cost, 1), e.size}
	case *ast.MemberNode:
		base := c.node(n.Node)
		prop := c.node(n.Property)
		cost := satAdd(satAdd(base.cost, prop.cost), 1)
		if path, ok := envPath(n); ok {
			return est{cost, envSize(path[0], path[1:])}
		}
		return est{cost, base.size} // an element or field of base
	case *ast.SliceNode:
		base := c.node(n.Node)
		from, to := c.node(n.From), c.node(n.To)
		return est{satAdd(satAdd(base.cost, satAdd(from.cost, to.cost)), base.size), base.size}
	case *ast.BinaryNode:
		return c.binary(n)
	case *ast.ConditionalNode:
		cond, a, b := c.node(n.Cond), c.node(n.Exp1), c.node(n.Exp2)
		return est{satAdd(satAdd(cond.cost, max(a.cost, b.cost)), 1), max(a.size, b.size)}
	case *ast.VariableDeclaratorNode:
		v := c.node(n.Value)
		c.vars = append(c.vars, costVar{n.Name, v.size})
		e := c.node(n.Expr)
		c.vars = c.vars[:len(c.vars)-1]
		return est{satAdd(satAdd(v.cost, e.cost), 1), e.size}
	case *ast.SequenceNode:
		var out est
		for _, s := range n.Nodes {
			e := c.node(s)
			out = est{satAdd(out.cost, e.cost), e.size}
		}
		return out
	case *ast.ArrayNode:
		out := est{1, 1}
		for _, s := range n.Nodes {
			e := c.node(s)
			out = est{satAdd(satAdd(out.cost, e.cost), 1), satAdd(out.size, e.size)}
		}
		return out
	case *ast.MapNode:
		out := est{1, 1}
		for _, s := range n.Pairs {
			e := c.node(s)
			out = est{satAdd(satAdd(out.cost, e.cost), 1), satAdd(out.size, e.size)}
		}
		return out
	case *ast.PairNode:
		k, v := c.node(n.Key), c.node(n.Value)
		return est{satAdd(k.cost, v.cost), satAdd(k.size, v.size)}
	case *ast.PredicateNode:
		return c.node(n.Node)
	case *ast.CallNode:
		// The functions of functions.go: fixed work over scalars and input strings.
		out := est{costPerCall, 1}
		for _, a := range n.Arguments {
			e := c.node(a)
			out.cost = satAdd(satAdd(out.cost, e.cost), e.size)
		}
		return out
	case *ast.BuiltinNode:
		return c.builtin(n)
	}
	// A node this check does not know (a newer expr): as costly as allowed, so
	// that nothing unbounded slips through; it shows as over the limit.
	return est{costCap, costCap}
}

// costPerCall is the fixed cost of calling a function.
const costPerCall = 5

func (c *coster) binary(n *ast.BinaryNode) est {
	if n.Operator == ".." {
		lo, okLo := constInt(n.Left)
		hi, okHi := constInt(n.Right)
		if !okLo || !okHi {
			c.report(n.Location(), "a range needs whole numbers as bounds (like 1..10): a bound computed per transaction can make it as large as the number allows")
			return est{costCap, costCap}
		}
		size := max(int64(hi)-int64(lo)+1, 0)
		if size > MaxRange {
			c.report(n.Location(), fmt.Sprintf("range %d..%d has %d elements, more than %d", lo, hi, size, MaxRange))
		}
		return est{satAdd(size, 1), max(size, 1)}
	}
	l, r := c.node(n.Left), c.node(n.Right)
	cost := satAdd(satAdd(l.cost, r.cost), 1)
	switch n.Operator {
	case "+":
		// Strings and arrays are copied whole; numbers have size 1.
		size := satAdd(l.size, r.size)
		return est{satAdd(cost, size), size}
	case "matches":
		s, ok := n.Right.(*ast.StringNode)
		if !ok {
			c.report(n.Right.Location(), "matches: the pattern must be a constant string: a pattern built per transaction is compiled as a regular expression for every transaction")
			return est{costCap, 1}
		}
		// RE2 runs in time linear in the text, times the size of the compiled
		// program: a repeat such as {1000} compiles to a thousand copies of what
		// it repeats, so the source's length says nothing of it (until 7
		// December 2026 it was charged, and "(\\pL?\\pN?){1000}Q" on a
		// 900-byte device.id took 0.2 s a transaction within the bound).
		return est{satAdd(cost, satMul(l.size, patternSize(s.Value)+1)), 1}
	case "contains":
		return est{satAdd(cost, satAdd(l.size, r.size)), 1}
	case "in":
		// Each element is compared: bounded by the elements' sizes.
		return est{satAdd(cost, r.size), 1}
	case "==", "!=", "<", "<=", ">", ">=", "startsWith", "endsWith":
		// A comparison stops at the shorter operand.
		return est{satAdd(cost, min(l.size, r.size)), 1}
	case "??":
		return est{cost, max(l.size, r.size)}
	}
	return est{cost, 1}
}

// constInt is the value of an integer constant (or its negation).
func constInt(n ast.Node) (int, bool) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return n.Value, true
	case *ast.UnaryNode:
		if n.Operator == "-" {
			if v, ok := constInt(n.Node); ok {
				return -v, true
			}
		}
	}
	return 0, false
}

func (c *coster) builtin(n *ast.BuiltinNode) est {
	args := n.Arguments
	if len(args) >= 2 {
		if p, ok := args[1].(*ast.PredicateNode); ok {
			return c.loop(n, c.node(args[0]), p, args[2:])
		}
	}
	out := est{costPerCall, 1}
	var sum int64 // sizes of the arguments
	var first, second est
	for i, a := range args {
		e := c.node(a)
		out.cost = satAdd(out.cost, e.cost)
		sum = satAdd(sum, e.size)
		switch i {
		case 0:
			first = e
		case 1:
			second = e
		}
	}
	switch n.Name {
	case "repeat":
		times := int64(1e6) // expr refuses more
		if len(args) == 2 {
			if v, ok := constInt(args[1]); ok {
				times = int64(max(v, 0))
			}
		}
		out.size = satMul(first.size, times)
	case "replace":
		// Every byte may be replaced by the new string.
		if len(args) == 3 {
			out.size = satMul(first.size+1, c.node(args[2]).size+1)
		} else {
			out.size = satMul(first.size, 2)
		}
	case "join":
		out.size = satMul(first.size, second.size+1)
	case "string", "toJSON":
		// Numbers print as up to 24 bytes; escaped characters as 6.
		out.size = satMul(sum, 24)
	case "sort", "sortBy", "uniq":
		out.cost = satAdd(out.cost, satMul(sum, int64(bits.Len64(uint64(sum))+1)))
		out.size = sum
	case "len", "abs", "ceil", "floor", "round", "int", "float", "indexOf", "lastIndexOf",
		"hasPrefix", "hasSuffix", "max", "min", "mean", "median", "sum", "count", "type",
		"bitnot", "bitand", "bitor", "bitxor", "bitnand", "bitshl", "bitshr", "bitushr",
		"now", "duration", "date", "timezone":
		out.size = 1
	default:
		// Results no larger than their arguments together: trim, upper,
		// split, concat, flatten, take, first, keys, fromJSON...
		out.size = max(sum, 1)
	}
	out.cost = satAdd(out.cost, out.size)
	return out
}

// loop is the estimate of a builtin over a collection with a predicate
// (all, any, filter, map, reduce...): the body runs once per element.
func (c *coster) loop(n *ast.BuiltinNode, coll est, p *ast.PredicateNode, rest []ast.Node) est {
	elems := max(coll.size, 1)
	out := est{cost: satAdd(coll.cost, costPerCall), size: 1}
	if n.Name == "reduce" {
		acc := coll.size // #acc starts as the first element, or the initial value
		for _, a := range rest {
			e := c.node(a)
			out.cost = satAdd(out.cost, e.cost)
			acc = e.size
		}
		// The accumulator may grow at each step (#acc + #acc doubles it):
		// follow its bound step by step until it stops growing.
		for i := int64(0); i < elems; i++ {
			c.ptrs = append(c.ptrs, ptrScope{elem: coll.size, acc: acc})
			body := c.node(p.Node)
			c.ptrs = c.ptrs[:len(c.ptrs)-1]
			out.cost = satAdd(out.cost, satAdd(body.cost, 1))
			if body.size <= acc || out.cost >= costCap {
				// Stable: the remaining steps cost the same.
				out.cost = satAdd(out.cost, satMul(elems-i-1, satAdd(body.cost, 1)))
				break
			}
			acc = body.size
		}
		out.size = acc
		return out
	}
	c.ptrs = append(c.ptrs, ptrScope{elem: coll.size, acc: 1})
	body := c.node(p.Node)
	c.ptrs = c.ptrs[:len(c.ptrs)-1]
	out.cost = satAdd(out.cost, satMul(elems, satAdd(body.cost, 1)))
	switch n.Name {
	case "map":
		out.size = satMul(elems, body.size)
		out.cost = satAdd(out.cost, out.size)
	case "filter", "find", "findLast", "groupBy":
		out.size = coll.size
		out.cost = satAdd(out.cost, coll.size)
	case "sortBy":
		out.size = coll.size
		out.cost = satAdd(out.cost, satMul(elems, int64(bits.Len64(uint64(elems))+1)))
	}
	return out
}

// envPath is the names of a member access on the environment, like
// ["merchant", "profile", "hourly"], when n is one.
func envPath(n *ast.MemberNode) ([]string, bool) {
	var path []string
	var cur ast.Node = n
	for {
		switch m := cur.(type) {
		case *ast.MemberNode:
			s, ok := m.Property.(*ast.StringNode)
			if !ok {
				return nil, false
			}
			path = append(path, s.Value)
			cur = m.Node
		case *ast.IdentifierNode:
			if !envRoots[m.Value] {
				return nil, false
			}
			path = append(path, m.Value)
			for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
				path[i], path[j] = path[j], path[i]
			}
			return path, true
		default:
			return nil, false
		}
	}
}

// envSize bounds the size of the input's value at root.path...: a string or
// a list of the input at most MaxInputString, an array its length, a struct
// what printing it could take. Names that are not the input's (functions,
// let variables handled before) are scalars.
func envSize(root string, path []string) int64 {
	if root == "$env" {
		return structSize
	}
	f, ok := reflect.TypeFor[Input]().FieldByNameFunc(func(name string) bool {
		sf, _ := reflect.TypeFor[Input]().FieldByName(name)
		return exprName(sf) == root
	})
	if !ok {
		return 1
	}
	t := f.Type
	for _, name := range path {
		if t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Time]() {
			return typeSize(t) // an element of an array or list
		}
		sf, ok := t.FieldByNameFunc(func(n string) bool {
			ff, _ := t.FieldByName(n)
			return exprName(ff) == name
		})
		if !ok {
			return 1
		}
		t = sf.Type
	}
	return typeSize(t)
}

// structSize bounds a struct of the input printed (string(txn), toJSON($env)).
const structSize = 8192

func typeSize(t reflect.Type) int64 {
	switch t.Kind() {
	case reflect.String:
		return MaxInputString
	case reflect.Slice:
		return MaxInputList
	case reflect.Array:
		return int64(t.Len())
	case reflect.Struct:
		if t == reflect.TypeFor[time.Time]() {
			return 1
		}
		return structSize
	}
	return 1
}

// exprName is the name expr gives a struct field: its expr tag, else its name.
func exprName(f reflect.StructField) string {
	if tag, ok := f.Tag.Lookup("expr"); ok {
		return strings.Split(tag, ",")[0]
	}
	return f.Name
}

// exprCostEntry is one expression's cost bound, where it is declared.
type exprCostEntry struct {
	file string
	line int
	what string // "rule ID", "rule ID score", "counter NAME"
	cost int64
}

// addCost notes the cost bound of an expression compiled without problems
// (cost 0 means it was not compiled), plus what running a program costs.
func (c *compiler) addCost(file string, line int, what string, cost int64) {
	if cost <= 0 {
		return
	}
	c.costs = append(c.costs, exprCostEntry{file: file, line: line, what: what, cost: cost + costPerProgram})
}

// checkSetCost refuses a rule set whose expressions together cost more than
// MaxSetCost per transaction (many rules each under MaxExprCost), naming the
// most expensive, and records the total (RuleSet.Cost).
func (c *compiler) checkSetCost(rs *RuleSet) {
	var total int64
	for _, e := range c.costs {
		total = satAdd(total, e.cost)
	}
	rs.Cost = total
	if total <= MaxSetCost {
		return
	}
	top := slices.Clone(c.costs)
	slices.SortStableFunc(top, func(a, b exprCostEntry) int { return cmp.Compare(b.cost, a.cost) })
	var names []string
	for _, e := range top[:min(3, len(top))] {
		names = append(names, fmt.Sprintf("%s (%s:%d) %d", e.what, e.file, e.line, e.cost))
	}
	c.errorf("", 0, "the rules' expressions together cost up to %s per transaction, more than %d (%d expressions; the most expensive: %s)",
		costString(total), MaxSetCost, len(c.costs), strings.Join(names, ", "))
}

// patternSize is the number of instructions of pattern's compiled program, as
// regexp compiles it (Perl syntax, simplified), or its length in bytes when it
// does not compile (the compiler reports it).
func patternSize(pattern string) int64 {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return int64(len(pattern))
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return int64(len(pattern))
	}
	return int64(max(len(prog.Inst), len(pattern)))
}
