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
// too. It recurses as well for the operators that nest to the right: each ?:
// of a chain (a ? b : c ? d : ...), each ** or ^ of a chain (a ** b ** ...),
// each if of an else if and each let of a sequence is a level inside the one
// before; until the fifteenth release of 8 December 2026 those were not
// counted, and a chain of 2,000 ?: within the length loaded.
const (
	// MaxExprLength is the longest expression (a condition, a score, a
	// counter's where) in bytes: the default pack's longest is 478.
	MaxExprLength = 8192
	// MaxExprDepth is the deepest an expression may nest brackets ( [ { ,
	// unary operators (! - + not), and the operators that nest to the right
	// (?:, ** and ^, if ... else if, let) inside one another: the default
	// pack's deepest is 3.
	MaxExprDepth = 64
)

// The levels that nest to the right, open in the bracket being read (exprBounds).
const (
	chainThen byte = iota // a ?: whose : is to come: the next : ends what it holds
	chainElse             // a ?: past its :, or an if: they run to the next , : ; or closing bracket
	chainLet              // a let: its body runs to the next , : or closing bracket, past a ;
)

// exprBounds checks src against MaxExprLength and MaxExprDepth. It returns ""
// when src is within them, else what is wrong and the byte offset where the
// nesting first passes MaxExprDepth (0 for the length). It reads src once and
// allocates at most about 3*MaxExprDepth ints, whatever src holds.
func exprBounds(src string) (msg string, at int) {
	if len(src) > MaxExprLength {
		return fmt.Sprintf("the expression is %d bytes long, more than %d: split it into several rules or counters", len(src), MaxExprLength), 0
	}
	// run counts the unary operators, and the ** and ^, just read: they apply
	// to the operand that follows, with its calls, indexes and members, so the
	// count lasts until another binary operator or a separator. An opening
	// bracket saves it. chains holds the open ?:, if and let (chainThen...),
	// those of each bracket after those of the brackets around it: an opening
	// bracket saves how many there are, its closing drops those opened inside.
	type frame struct{ run, chains int }
	var saved []frame
	var chains []byte
	depth, run := 0, 0 // depth: brackets open and the runs saved with them
	operand := false   // whether the last token ended an operand (then - + not are binary)
	for i := 0; i < len(src); i++ {
		base := 0 // the chains of the brackets around the one being read
		if n := len(saved); n > 0 {
			base = saved[n-1].chains
		}
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
			saved = append(saved, frame{run, len(chains)})
			depth += 1 + run
			run, operand = 0, false
		case c == ')' || c == ']' || c == '}':
			if n := len(saved); n > 0 {
				depth -= 1 + saved[n-1].run
				chains = chains[:saved[n-1].chains]
				saved = saved[:n-1]
			}
			run, operand = 0, true
		case c == '!' && (i+1 >= len(src) || src[i+1] != '='):
			run++
			operand = false
		case (c == '-' || c == '+') && !operand:
			run++
		case c == '*' && i+1 < len(src) && src[i+1] == '*' || c == '^':
			// Right-associative: a ** b ** c is a ** (b ** c).
			if c == '*' {
				i++
			}
			run++
			operand = false
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
			case (word == "if" || word == "let") && !operand:
				// if c {a} else if d {b} else {e}: the second if is inside
				// the first; let x = 1; let y = 2; e: the second let is
				// inside the first.
				kind := chainElse
				if word == "let" {
					kind = chainLet
				}
				chains = append(chains, kind)
				run, operand = 0, false
			case wordOperators[word] || word == "not" || word == "else":
				run, operand = 0, false
			default:
				operand = true
			}
			i = j - 1
		case c == '?' && i+1 < len(src) && src[i+1] == '.':
			i++
			operand = false
		case c == '?' && i+1 < len(src) && src[i+1] == '?':
			i++ // ?? is a binary operator, left-associative
			run, operand = 0, false
		case c == '?':
			// a ? b : c ? d : e is a ? b : (c ? d : e), and a ?: b ?: c
			// likewise.
			chains = append(chains, chainThen)
			run, operand = 0, false
		case c == ':':
			// It ends what the innermost ?: waiting for it holds (the ?: and
			// if past their : and the let inside that), and that ?: is then
			// past its own; or ends a map key or a slice bound.
			for len(chains) > base && chains[len(chains)-1] != chainThen {
				chains = chains[:len(chains)-1]
			}
			if len(chains) > base {
				chains[len(chains)-1] = chainElse
			}
			run, operand = 0, false
		case c == ',':
			chains = chains[:base]
			run, operand = 0, false
		case c == ';':
			// It ends the ?: and if of a let's value or of a sequence's
			// expression, not the let.
			for len(chains) > base && chains[len(chains)-1] == chainElse {
				chains = chains[:len(chains)-1]
			}
			run, operand = 0, false
		default: // a binary operator: & | = < > * / %
			run, operand = 0, false
		}
		if depth+run+len(chains) > MaxExprDepth {
			return fmt.Sprintf("nests more than %d deep (brackets; unary operators such as ! and - in a row; chains of ?:, ** or ^, else if, let): simplify it", MaxExprDepth), i
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
