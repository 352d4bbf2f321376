package actorname

import "testing"

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
