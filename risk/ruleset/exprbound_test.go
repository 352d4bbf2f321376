package ruleset

import (
	"fmt"
	"strings"
	"testing"
)

// An expression nested deeper than expr's parser can recurse (the tester's
// 750,000 `!`, a run of unary `-`, 400,000 parentheses) is refused at load with
// file:line, quickly, instead of overflowing the stack: a fatal error that
// would crash this test binary as it crashed the switch at a reload.
func TestDeepOrLongExpressionRefused(t *testing.T) {
	deep := strings.Repeat("!", 750000) + "(txn.amount > 1)"
	minus := strings.Repeat("-", 750000) + "txn.amount > 1"
	parens := strings.Repeat("(", 400000) + "txn.amount > 1" + strings.Repeat(")", 400000)
	long := "txn.amount > 1" + strings.Repeat(" || txn.amount == 7", 500)
	cases := []struct {
		name, file, want string
	}{
		{"run of !", "rules:\n  - {id: deep, condition: \"" + deep + "\", action: review}\n",
			"x.yaml:2:28: rule deep: condition: the expression is 750016 bytes long, more than 8192"},
		{"run of unary -", "rules:\n  - {id: deep, condition: \"" + minus + "\", action: review}\n",
			"x.yaml:2:28: rule deep: condition: the expression is 750014 bytes long, more than 8192"},
		{"nested parentheses", "rules:\n  - {id: deep, condition: \"" + parens + "\", action: review}\n",
			"x.yaml:2:28: rule deep: condition: the expression is 800014 bytes long, more than 8192"},
		{"score", "rules:\n  - {id: deep, condition: \"txn.amount > 1\", score: \"" + minus + "\", action: alert}\n",
			"rule deep: score: the expression is 750014 bytes long, more than 8192"},
		{"long", "rules:\n  - {id: long, condition: \"" + long + "\", action: review}\n",
			"x.yaml:2:28: rule long: condition: the expression is 9514 bytes long, more than 8192"},
		// Within the length, deeper than MaxExprDepth: the column is where
		// the nesting passes it.
		{"deep !", "rules:\n  - {id: deep, condition: \"" + strings.Repeat("!", 4000) + "(txn.amount > 1)\", action: review}\n",
			"x.yaml:2:92: rule deep: condition: nests more than 64 deep"},
		{"deep parentheses", "rules:\n  - {id: deep, condition: \"" + strings.Repeat("(", 4000) + "txn.amount > 1" + strings.Repeat(")", 4000) + "\", action: review}\n",
			"x.yaml:2:92: rule deep: condition: nests more than 64 deep"},
		{"where", "counters:\n  - {name: c, dimension: card, window: 1h, where: \"" + strings.Repeat("-", 4000) + "txn.amount > 1\"}\n" +
			"rules:\n  - {id: r, condition: \"velocity.c > 1\", action: alert}\n",
			"x.yaml:2:116: counter c: where: nests more than 64 deep"},
		{"where reading velocity", "counters:\n  - {name: c, dimension: card, window: 1h, where: \"" + strings.Repeat("!", 4000) + "(velocity.c > 1)\"}\n" +
			"rules:\n  - {id: r, condition: \"velocity.c > 1\", action: alert}\n",
			"x.yaml:2:116: counter c: where: nests more than 64 deep"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := problems(t, map[string]string{"x.yaml": tc.file}); !strings.Contains(got, tc.want) {
				t.Fatalf("got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// The depth counts brackets and unary operators in a row, not those a binary
// operator separates, nor any inside a string or a comment.
func TestExprBoundsDepth(t *testing.T) {
	cases := []struct {
		src  string
		deep bool
	}{
		{strings.Repeat("!", MaxExprDepth) + "true", false},
		{strings.Repeat("!", MaxExprDepth+1) + "true", true},
		{strings.Repeat("not ", MaxExprDepth+1) + "true", true},
		{strings.Repeat("(", MaxExprDepth) + "1" + strings.Repeat(")", MaxExprDepth) + " > 0", false},
		{strings.Repeat("[", MaxExprDepth+1) + "1" + strings.Repeat("]", MaxExprDepth+1), true},
		// ! then ( nest: each pair is two levels.
		{strings.Repeat("!(", MaxExprDepth/2+1) + "true" + strings.Repeat(")", MaxExprDepth/2+1), true},
		// The unary operators apply to a call and its arguments.
		{strings.Repeat("!!!!!!!!!!!!!!!!f(", 4) + "x" + strings.Repeat(")", 4), true},
		{"txn.amount > 1" + strings.Repeat(" && !(txn.amount == 2)", 100), false},
		{"1" + strings.Repeat(" - -1", 200) + " > 0", false},
		{"txn.mcc not in [\"5411\"]" + strings.Repeat(" and not false", 100), false},
		{`device.id == "` + strings.Repeat("(", 200) + `" || device.id == '` + strings.Repeat("[", 200) + `\'' || device.id == ` + "`" + strings.Repeat("{", 200) + "`", false},
		{"true // " + strings.Repeat("(", 200) + "\n && /* " + strings.Repeat("!", 200) + " */ true", false},
	}
	for _, tc := range cases {
		msg, _ := exprBounds(tc.src)
		if (msg != "") != tc.deep {
			t.Errorf("exprBounds(%.60q...) = %q, want refused %v", tc.src, msg, tc.deep)
		}
	}
}

// The operators that nest to the right count one level each in a chain: ?:
// (a ? b : c ? d : ...), ** and ^, else if, let. Until the fifteenth release of
// 8 December 2026 they did not count: a chain of thousands within the length
// loaded, its tree thousands deep. Chains a , ; : or closing bracket ends, and
// the left-nesting ?? and ?., do not add up.
func TestExprBoundsRightNested(t *testing.T) {
	ternary := func(n int) string { return strings.Repeat("txn.amount > 1 ? 1 : ", n) + "0" }
	elvis := func(n int) string { return strings.Repeat("device.id ?: ", n) + `"x"` }
	power := func(n int, op string) string { return strings.Repeat("2"+op, n) + "2" }
	elseIf := func(n int) string {
		return "if txn.amount > 0 {1}" + strings.Repeat(" else if txn.amount > 1 {2}", n-1) + " else {0}"
	}
	lets := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "let v%d = %d; ", i, i)
		}
		return b.String() + "v0 > 0"
	}
	cases := []struct {
		name string
		src  string
		deep bool
	}{
		{"?: at the bound", ternary(MaxExprDepth), false},
		{"?: past it", ternary(MaxExprDepth + 1), true},
		{"?: of 2,000", ternary(2000)[:MaxExprLength-1], true},
		{"?: in the middle", strings.Repeat("txn.amount > 1 ? ", MaxExprDepth+1) + "1" + strings.Repeat(" : 0", MaxExprDepth+1), true},
		{"?: elvis", elvis(MaxExprDepth + 1), true},
		{"?: elvis at the bound", elvis(MaxExprDepth), false},
		{"** at the bound", power(MaxExprDepth, " ** "), false},
		{"** past it", power(MaxExprDepth+1, " ** "), true},
		{"^ past it", power(MaxExprDepth+1, "^"), true},
		{"** and unary - add up", strings.Repeat("2 ** -", MaxExprDepth/2+1) + "2", true},
		{"else if at the bound", elseIf(MaxExprDepth - 1), false}, // and its last { }
		{"else if past it", elseIf(MaxExprDepth + 1), true},
		{"let at the bound", lets(MaxExprDepth), false},
		{"let past it", lets(MaxExprDepth + 1), true},
		// Ended by a bracket, a , or a : they do not add up.
		{"?: in brackets", strings.Repeat("(txn.amount > 1 ? 1 : 0) + ", 200) + "0 > 1", false},
		{"?: as arguments", "max(" + strings.Repeat("txn.amount > 1 ? 1 : 0, ", 200) + "0) > 1", false},
		{"?: in the middle, ended", strings.Repeat("(txn.amount > 1 ? txn.amount > 2 ? 1 : 2 : 3) + ", 100) + "0 > 1", false},
		{"?: map values", "{" + strings.Repeat(`a: txn.amount > 1 ? 1 : 0, `, 100) + "b: 0}.a > 0", false},
		{"** in brackets", strings.Repeat("(2 ** 2) + ", 200) + "0 > 1", false},
		{"** then +", strings.Repeat("2 ** 2 + ", 200) + "0 > 1", false},
		{"if in a sequence", strings.Repeat("if true {1} else {2}; ", 100) + "true", false},
		{"?? chain", strings.Repeat("device.id ?? ", 200) + `"" == ""`, false},
		{"?. chain", "device" + strings.Repeat("?.id", 200) + ` == ""`, false},
	}
	for _, tc := range cases {
		msg, _ := exprBounds(tc.src)
		if (msg != "") != tc.deep {
			t.Errorf("%s: exprBounds(%.60q...) = %q, want refused %v", tc.name, tc.src, msg, tc.deep)
		}
		if tc.deep && !strings.Contains(msg, "nests more than 64 deep") {
			t.Errorf("%s: %q, want the nesting error", tc.name, msg)
		}
	}
}

// A rule whose condition is a chain of ?: deeper than the bound is refused at
// load with file:line:column, as a deep run of ! is; one at the bound loads.
func TestDeepTernaryChainRefused(t *testing.T) {
	chain := func(n int) string { return strings.Repeat("txn.amount > 1 ? true : ", n) + "false" }
	got := problems(t, map[string]string{"x.yaml": "rules:\n  - {id: deep, condition: \"" + chain(2000)[:8000] + "\", action: review}\n"})
	if want := "x.yaml:2:1579: rule deep: condition: nests more than 64 deep"; !strings.Contains(got, want) {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	dir := writeRules(t, map[string]string{"x.yaml": "rules:\n  - {id: chain, condition: \"" + chain(MaxExprDepth) + "\", action: review}\n"})
	if _, err := Load(dir, LoadOptions{}); err != nil {
		t.Fatalf("a chain of %d ?: : %v", MaxExprDepth, err)
	}
}
