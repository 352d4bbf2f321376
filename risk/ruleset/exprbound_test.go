package ruleset

import (
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
