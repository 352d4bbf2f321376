package admin

import (
	"strings"
	"testing"
)

// A token needs the name of who holds it: the audit logs record it, and the
// switch's own name ("system") would let its holder act as the switch.
func TestTokenNames(t *testing.T) {
	good := Token{Token: "t1", Principal: Principal{Name: "alice", Role: RoleOperator}}
	if _, err := NewAuthenticator([]Token{good}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "  ", SystemName} {
		bad := Token{Token: "t2", Principal: Principal{Name: name, Role: RoleOperator}}
		if _, err := NewAuthenticator([]Token{good, bad}); err == nil || !strings.Contains(err.Error(), "admin token 1") {
			t.Errorf("a token named %q: %v, want refused", name, err)
		}
	}
}
