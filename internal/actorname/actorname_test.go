package actorname

import (
	"strings"
	"testing"
)

// TestSame: names differing in case, separators or look-alike characters are
// one name; different names are not.
func TestSame(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"alice", "alice", true},
		{"alice", "Alice", true},
		{"alice", "ALICE", true},
		{"alice", "a1ice", true},
		{"alice", "aIice", true},
		{"alice", "alice.", true},
		{"alice.w", "alice_w", true},
		{"demo-operator", "Demo-Operator", true},
		{"demo-operator", "demooperator", true},
		{"bob", "b0b", true},
		{"marn", "mam", true},
		{"system", "SYSTEM", true},
		{"system", "5ystem", true},
		{"alice", "\u0430lice", true},                     // Cyrillic а
		{"alice", "ALICE\uFF01", false},                   // a full-width '!' is another character
		{"alice", "\uFF41\uFF4C\uFF49\uFF43\uFF45", true}, // full-width
		{"bob", "\u0432\u043Eb", true},                    // воb
		{"operator", "\u03BFperator", true},               // Greek ο
		{"alice", "alicia", false},
		{"operator", "operator2", false},
		{"bob", "rob", false},
		{"reviewer", "reviewer2", false},
	} {
		if got := Same(c.a, c.b); got != c.same {
			t.Errorf("Same(%q, %q) = %v, want %v", c.a, c.b, got, c.same)
		}
	}
}

// TestLookAlike: two texts that read as one are told apart by the code points
// of the characters in which they differ; equal or plainly different texts give
// nothing.
func TestLookAlike(t *testing.T) {
	for _, c := range []struct{ a, b, want string }{
		{"000000000000001", "00000000000000I", "U+0049 'I' where the other has U+0031 '1' (character 15)"},
		{"Apple Store", "\u0410pple Store", "U+0410 'А' where the other has U+0041 'A' (character 1)"},
		{"alice", "alice.", "6 characters where the other has 5"},
		{"alice", "alice", ""},
		{"alice", "bob", ""},
	} {
		if got := LookAlike(c.a, c.b); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("LookAlike(%q, %q) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}
