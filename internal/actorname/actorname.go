// Package actorname says when two principals' names would be read as one
// person's. The two-person review, the key ceremonies' dual control and the
// operations log know a person by name only (an admin token's name in the
// configuration, a console user's name in the registry): "alice" and "Alice",
// or "alice" and "a1ice", are different strings that a reviewer, an auditor or
// the person who holds both reads as one name. A token and a console account, or
// two console accounts, with such names would let one person request a change
// and approve it, or enter two components of a key.
package actorname

import (
	"fmt"
	"strings"
	"unicode"
)

// Key returns how name reads to a person: in lower case, without the separators
// '-', '_', '.' and spaces, with the digits and letters that look alike in most
// fonts taken as one ('0' as 'o'; '1', 'i' and '|' as 'l'; '5' as 's'; "rn" as
// "m"; "vv" as "w"), and the Cyrillic and Greek letters and full-width forms that
// look like ASCII ones taken as those (a token's name in the configuration may be
// any text: "аlice" with a Cyrillic а). Two names with the same Key are one name
// for the checks that tell people apart (Same). Other letters are compared in
// lower case.
func Key(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range strings.ToLower(strings.TrimSpace(name)) {
		if r >= 0xFF01 && r <= 0xFF5E { // full-width ASCII
			r = unicode.ToLower(r - 0xFF01 + '!')
		}
		if a, ok := confusable[r]; ok {
			r = a
		}
		switch r {
		case '-', '_', '.', ' ':
			continue
		case '0':
			r = 'o'
		case '1', 'i', '|':
			r = 'l'
		case '5':
			r = 's'
		}
		b.WriteRune(r)
	}
	return pairs.Replace(b.String())
}

// pairs are the two-letter look-alikes Key takes as one letter.
var pairs = strings.NewReplacer("rn", "m", "vv", "w")

// Same reports whether names a and b would be read as one person's (their Keys
// are equal). Two empty names are the same.
func Same(a, b string) bool {
	return a == b || Key(a) == Key(b)
}

// confusable maps the lower-case Cyrillic and Greek letters that look like a
// lower-case ASCII letter to it.
var confusable = map[rune]rune{
	// Cyrillic
	'а': 'a', 'в': 'b', 'е': 'e', 'ё': 'e', 'һ': 'h', 'і': 'i', 'ї': 'i', 'ј': 'j', 'к': 'k', 'м': 'm',
	'н': 'h', 'о': 'o', 'р': 'p', 'с': 'c', 'т': 't', 'у': 'y', 'х': 'x', 'ѕ': 's', 'ԁ': 'd', 'ԛ': 'q',
	'ԝ': 'w', 'ь': 'b',
	// Greek
	'α': 'a', 'β': 'b', 'ε': 'e', 'η': 'n', 'ι': 'i', 'κ': 'k', 'ν': 'v', 'ο': 'o', 'ρ': 'p', 'τ': 't',
	'υ': 'u', 'χ': 'x', 'ω': 'w',
}

// LookAlike says how a and b, different texts that read as one (Same: a
// merchant ID "00000000000000I" for "000000000000001", a name with a Cyrillic
// "А" for "A"), differ, naming each differing character by its code point:
// "U+0049 'I' where the other has U+0031 '1' (character 15)". It returns "" when
// a and b are equal or do not read as one. A review screen shows it beside a
// change that would otherwise look like no change at all.
func LookAlike(a, b string) string {
	if a == b || !Same(a, b) {
		return ""
	}
	ra, rb := []rune(a), []rune(b)
	if len(ra) != len(rb) {
		return fmt.Sprintf("%d characters where the other has %d (%s; %s)", len(rb), len(ra), codePoints(rb), codePoints(ra))
	}
	var diffs []string
	for i := range ra {
		if ra[i] != rb[i] {
			diffs = append(diffs, fmt.Sprintf("%U %q where the other has %U %q (character %d)", rb[i], rb[i], ra[i], ra[i], i+1))
		}
	}
	return strings.Join(diffs, "; ")
}

// codePoints lists rs's characters outside printable ASCII by code point, the
// others as they are.
func codePoints(rs []rune) string {
	var b strings.Builder
	for _, r := range rs {
		if r > 0x20 && r < 0x7F {
			b.WriteRune(r)
			continue
		}
		fmt.Fprintf(&b, "<%U>", r)
	}
	return b.String()
}
