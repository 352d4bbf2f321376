package ruleset

import (
	"fmt"
	"strings"

	"github.com/expr-lang/expr/parser"
)

// The source of an expression is bounded before expr parses it. expr's parser
// recurses once per bracket and per unary operator: a condition of 750,000 `!`
// (or `-`) overflowed the goroutine's stack, a fatal error no recover catches,
// and crashed the switch at the reload, at every later start with the file in
// place, and in `rules check`; 400,000 nested parentheses took 15 s and 1 GB to
// load. The checker, the compiler and the cost check walk the tree recursively
// too.
const (
	// MaxExprLength is the longest expression (a condition, a score, a
	// counter's where) in bytes: the default pack's longest is 478.
	MaxExprLength = 8192
	// MaxExprDepth is the deepest an expression may nest brackets ( [ { and
	// unary operators (! - + not) inside one another: the default pack's
	// deepest is 3.
	MaxExprDepth = 64
)

// exprBounds checks src against MaxExprLength and MaxExprDepth. It returns ""
// when src is within them, else what is wrong and the byte offset where the
// nesting first passes MaxExprDepth (0 for the length). It reads src once and
// allocates at most MaxExprDepth ints, whatever src holds.
func exprBounds(src string) (msg string, at int) {
	if len(src) > MaxExprLength {
		return fmt.Sprintf("the expression is %d bytes long, more than %d: split it into several rules or counters", len(src), MaxExprLength), 0
	}
	// run counts the unary operators just read: they apply to the operand
	// that follows, with its calls, indexes and members, so the count lasts
	// until a binary operator or a separator. An opening bracket saves it.
	var saved []int
	depth, run := 0, 0 // depth: brackets open and the runs saved with them
	operand := false   // whether the last token ended an operand (then - + not are binary)
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		case c == '"' || c == '\'':
			for i++; i < len(src) && src[i] != c && src[i] != '\n'; i++ {
				if src[i] == '\\' {
					i++
				}
			}
			operand = true
		case c == '`':
			if j := strings.IndexByte(src[i+1:], '`'); j >= 0 {
				i += 1 + j
			} else {
				i = len(src)
			}
			operand = true
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			if j := strings.IndexByte(src[i:], '\n'); j >= 0 {
				i += j
			} else {
				i = len(src)
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			if j := strings.Index(src[i+2:], "*/"); j >= 0 {
				i += 2 + j + 1
			} else {
				i = len(src)
			}
		case c == '(' || c == '[' || c == '{':
			saved = append(saved, run)
			depth += 1 + run
			run, operand = 0, false
		case c == ')' || c == ']' || c == '}':
			if n := len(saved); n > 0 {
				depth -= 1 + saved[n-1]
				saved = saved[:n-1]
			}
			run, operand = 0, true
		case c == '!' && (i+1 >= len(src) || src[i+1] != '='):
			run++
			operand = false
		case (c == '-' || c == '+') && !operand:
			run++
		case c == '.':
			// A member (a.b, a?.b) or a decimal point: part of the operand.
			operand = false
		case c == '_' || c == '$' || c == '#' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80:
			j := i
			for j < len(src) && (src[j] == '_' || src[j] == '$' || src[j] == '#' || src[j] >= '0' && src[j] <= '9' ||
				src[j] >= 'a' && src[j] <= 'z' || src[j] >= 'A' && src[j] <= 'Z' || src[j] >= 0x80) {
				j++
			}
			switch word := src[i:j]; {
			case word == "not" && !operand:
				run++
			case wordOperators[word] || word == "not":
				run, operand = 0, false
			default:
				operand = true
			}
			i = j - 1
		case c == '?' && i+1 < len(src) && src[i+1] == '.':
			i++
			operand = false
		default: // a binary operator or a separator: , : ? & | = < > * / % ^ ;
			run, operand = 0, false
		}
		if depth+run > MaxExprDepth {
			return fmt.Sprintf("nests more than %d deep (brackets, and unary operators such as ! and - in a row): simplify it", MaxExprDepth), i
		}
	}
	return "", 0
}

// wordOperators are the binary operators written as words.
var wordOperators = map[string]bool{"and": true, "or": true, "in": true, "matches": true,
	"contains": true, "startsWith": true, "endsWith": true}

// parseExpr is parser.Parse for an expression within MaxExprLength and
// MaxExprDepth, an error otherwise: every parse of a rule file's expression
// goes through it.
func parseExpr(src string) (*parser.Tree, error) {
	if msg, _ := exprBounds(src); msg != "" {
		return nil, fmt.Errorf("%s", msg)
	}
	return parser.Parse(src)
}
