package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/registry"
)

// A login with a name no user can have (too long, or with characters AddUser
// refuses) is refused like a wrong password, and what was typed is neither
// kept in the oplog nor counted for a lockout: the login form is open to
// anyone, and a form value may be megabytes.
func TestLoginMalformedName(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	long := strings.Repeat("a", 200000)
	for _, name := range []string{long, "<script>alert(1)</script>", "4111 1111 1111 1111"} {
		resp, err := c.PostForm(f.srv.URL+"/console/login", url.Values{"user": {name}, "password": {"whatever-it-is"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("login as a %d-byte malformed name: %d, want 401", len(name), resp.StatusCode)
		}
	}
	es, err := f.reg.Oplog(registry.OplogFilter{Action: "console."})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("oplog: %d console entries, want one failed login per attempt", len(es))
	}
	for _, e := range es {
		if e.Action != "console.login-failed" || len(e.Target)+len(e.Reason)+len(e.Actor) > 200 || strings.Contains(e.Reason, "script") || strings.Contains(e.Reason, "4111") {
			t.Fatalf("oplog keeps what was typed: %s target %d bytes, reason %.80q", e.Action, len(e.Target), e.Reason)
		}
	}
	f.con.sessions.mu.Lock()
	n := len(f.con.sessions.failures)
	f.con.sessions.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d malformed names counted for lockouts, want none", n)
	}
	if resp := f.login(t, c, "operator", "operator-demo-pw"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a well-formed login after them: %d", resp.StatusCode)
	}
}
